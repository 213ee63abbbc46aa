"""Quantization-aware fine-tuning: a short, seeded SGD loop through the fake quantizers (STE)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from searchq.core.evaluate import _split
from searchq.errors import ConfigError

__all__ = ["finetune"]


def finetune(
    model: nn.Module,
    batches: Iterable[Any],
    criterion: Callable[[Tensor, Tensor], Tensor],
    *,
    epochs: int = 1,
    lr: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``model`` (weights and quantizer ranges) for ``epochs``; returns the mean loss per
    epoch. ``schedule``: ``cosine`` decay or ``constant``; the model is left in eval mode."""
    if schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule {schedule!r} is not one of ['cosine', 'constant']")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps = max(1, epochs * _length(batches))
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        if schedule == "cosine"
        else torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    )
    losses = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # dropout and friends; the loader brings its own generator
        for epoch in range(epochs):
            model.train()
            total, count = 0.0, 0
            for batch in batches:
                x, y = _split(batch)
                opt.zero_grad(set_to_none=True)
                loss = criterion(model(x), y)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * int(x.shape[0])
                count += int(x.shape[0])
            losses.append(total / max(count, 1))
            if on_epoch is not None:
                on_epoch(epoch, losses[-1])
    model.eval()
    return losses


def _length(batches: Iterable[Any]) -> int:
    try:
        return len(batches)  # type: ignore[arg-type]
    except TypeError:
        return 1
