"""Temporary train/eval modes that restore every submodule's own flag afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["eval_mode", "untouched_rng"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Everything in eval mode (BatchNorm statistics frozen, dropout off) for the block."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def untouched_rng(loader: Any) -> Iterator[None]:
    """Draw from ``loader`` without moving its shuffling state (its own ``generator`` and torch's
    global RNG), so training later sees the batches it would have seen without this draw — and
    results do not depend on which optional steps (e.g. loading cached traces) ran before."""
    gen = getattr(loader, "generator", None)
    if not isinstance(gen, torch.Generator):
        gen = None
    state = gen.get_state() if gen is not None else None
    with torch.random.fork_rng():
        yield
    if gen is not None and state is not None:
        gen.set_state(state)
