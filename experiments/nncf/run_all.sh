#!/usr/bin/env bash
# The reference NNCF 2.19 runs: export the searchq digits task, then HAWQ at ratio 1.5 and 2.5 and
# AutoQ at model-size ratio 0.15, each with 5 QAT epochs. JSON -> experiments/nncf/results/,
# logs -> experiments/nncf/out/ (git-ignored).
#
#   bash experiments/nncf/run_all.sh              # THREADS=1 (default), SEED=0, QAT_EPOCHS=5
#   THREADS=2 SEED=1 bash experiments/nncf/run_all.sh
#
# THREADS=1 is the default because on this shared 2-core machine a second busy process stalls every
# 2-thread torch op at OpenMP barriers (~0.1 ms -> ~30 ms per conv); 1 thread only loses its share.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
THREADS="${THREADS:-1}"
SEED="${SEED:-0}"
QAT_EPOCHS="${QAT_EPOCHS:-5}"
NNCF_PY="${NNCF_VENV:-/work/nncf-venv}/bin/python"
TASK=experiments/nncf/out/digits_task.pt
mkdir -p experiments/nncf/out experiments/nncf/results

[ -x "$NNCF_PY" ] || bash experiments/nncf/setup_venv.sh
if [ ! -f "$TASK" ]; then
    "$REPO/.venv/bin/python" experiments/nncf/export_task.py --task digits --seed 0 --out "$TASK"
fi

export PYTHONPATH="$REPO" NNCF_TORCH_LEGACY_TRACING=1
for R in 1.5 2.5; do
    tag="hawq_r${R}_s${SEED}_t${THREADS}"
    "$NNCF_PY" experiments/nncf/run_nncf_hawq.py --task-file "$TASK" --ratio "$R" --bits 2,4,8 \
        --num-data-points 100 --iter-number 200 --tolerance 1e-4 --seed "$SEED" \
        --qat-epochs "$QAT_EPOCHS" --threads "$THREADS" \
        --out "experiments/nncf/results/${tag}.json" > "experiments/nncf/out/${tag}.log" 2>&1
    grep -E '^\[(hawq|qat)\]' "experiments/nncf/out/${tag}.log"
done
tag="autoq_r0.15_s${SEED}_t${THREADS}"
"$NNCF_PY" experiments/nncf/run_nncf_autoq.py --task-file "$TASK" --ratio 0.15 --bits 2,4,8 \
    --iter-number 30 --warmup-iter-number 10 --eval-subset-ratio 1.0 --seed "$SEED" \
    --qat-epochs "$QAT_EPOCHS" --threads "$THREADS" \
    --out "experiments/nncf/results/${tag}.json" > "experiments/nncf/out/${tag}.log" 2>&1
grep -E '^\[(autoq|qat)\]' "experiments/nncf/out/${tag}.log"
