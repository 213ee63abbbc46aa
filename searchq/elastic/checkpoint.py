"""Supernet checkpoints: weights, optimizer / scheduler, loader shuffle state and the position in
the progressive-shrinking schedule, so a resumed run continues exactly."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from searchq._io import load_checkpoint_file, save_atomic
from searchq.errors import CheckpointError

__all__ = ["CHECKPOINT_VERSION", "TrainState", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_VERSION = 1


@dataclass
class TrainState:
    stage: int = 0
    epoch_in_stage: int = 0
    global_step: int = 0
    epoch: int = 0
    best_score: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(
    path: Path,
    *,
    model_state: dict[str, Any],
    optimizer: dict[str, Any] | None,
    scheduler: dict[str, Any] | None,
    loader_rng: torch.Tensor | None,
    state: TrainState,
    meta: dict[str, Any],
) -> None:
    payload = {
        "schema_version": CHECKPOINT_VERSION,
        "model": model_state,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "loader_rng": loader_rng,
        "state": json.dumps(asdict(state)),
        "meta": json.dumps(meta),
    }
    save_atomic(path, payload)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(
            f"{p}: no supernet checkpoint here; train one with searchq run elastic"
        )
    payload = load_checkpoint_file(p, version=CHECKPOINT_VERSION, fix="retrain")
    payload["state"] = TrainState(**json.loads(payload["state"]))
    payload["meta"] = json.loads(payload["meta"])
    return payload
