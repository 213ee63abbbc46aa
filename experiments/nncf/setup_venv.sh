#!/usr/bin/env bash
# Create (idempotently) the NNCF 2.19.0 venv used by experiments/nncf/*.py.
#
#   bash experiments/nncf/setup_venv.sh            # venv at /work/nncf-venv
#   NNCF_VENV=/some/where bash experiments/nncf/setup_venv.sh
#
# The venv lives OUTSIDE the repo. torch is pinned to ==2.13.0 (the local CPU wheel); never let pip
# resolve a bare "torch" (it would pull a multi-GB CUDA build). The last step imports NNCF's torch
# backend and runs one tiny quantized forward, which builds NNCF's CPU C++ extension once (cached
# under ~/.cache/nncf), so that one-time build never lands inside a timed run.
set -euo pipefail

VENV="${NNCF_VENV:-/work/nncf-venv}"
PY="$VENV/bin/python"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [ ! -x "$PY" ]; then
    echo "[setup] creating venv $VENV"
    python3 -m venv "$VENV"
fi

# Pinned set; "pip install" is a no-op when everything is already satisfied.
"$VENV/bin/pip" install --quiet \
    'torch==2.13.0' \
    'nncf==2.19.0' \
    'numpy<2.3' \
    scikit-learn \
    ninja

# Versions + one-time extension build (kept out of every timed run).
cd "$REPO"
NNCF_EXTENSION_LOAD_TIMEOUT="${NNCF_EXTENSION_LOAD_TIMEOUT:-0}" NNCF_TORCH_LEGACY_TRACING=1 PYTHONPATH="$REPO" "$PY" experiments/nncf/_nncf_common.py --warmup
