"""The one training recipe behind the built-in tasks (SGD + Nesterov, one-cycle or cosine LR).

Training is deterministic given the recipe: the model is initialised and the data shuffled from
explicit ``torch.Generator`` objects, and nothing here reads or sets the global RNG.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Sized
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from searchq.errors import TaskError
from searchq.tasks.metrics import split_batch

__all__ = ["RECIPE_VERSION", "SCHEDULES", "TrainRecipe", "fit"]

RECIPE_VERSION = 1
"""Bump when the training code changes its result, so old cached weights are not reused."""

SCHEDULES = ("onecycle", "cosine")


@dataclass(frozen=True)
class TrainRecipe:
    """Hyper-parameters of :func:`fit`; every field is part of the cache key."""

    epochs: int = 10
    """Passes over the training set."""
    lr: float = 0.1
    """Peak learning rate."""
    schedule: str = "onecycle"
    """``onecycle``: linear warm-up over ``warmup_fraction`` then cosine to ~0; ``cosine``:
    cosine from ``lr`` to 0 without warm-up."""
    warmup_fraction: float = 0.15
    """Share of steps spent warming up (``onecycle`` only)."""
    momentum: float = 0.9
    """SGD momentum (Nesterov)."""
    weight_decay: float = 5e-4
    """L2 penalty on all parameters."""
    label_smoothing: float = 0.0
    """Passed to ``nn.CrossEntropyLoss``."""
    batch_size: int = 64
    """Training batch size."""

    def __post_init__(self) -> None:
        checks = {
            "epochs": isinstance(self.epochs, int) and self.epochs >= 1,
            "lr": self.lr > 0,
            "schedule": self.schedule in SCHEDULES,
            "warmup_fraction": 0 <= self.warmup_fraction < 1,
            "momentum": 0 <= self.momentum < 1,
            "weight_decay": self.weight_decay >= 0,
            "label_smoothing": 0 <= self.label_smoothing < 1,
            "batch_size": isinstance(self.batch_size, int) and self.batch_size >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                allowed = f"one of {list(SCHEDULES)}" if name == "schedule" else "see TrainRecipe"
                raise TaskError(
                    f"TrainRecipe.{name}={getattr(self, name)!r} is invalid; allowed: {allowed}: "
                    f"fix {name}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lr_factor(recipe: TrainRecipe, step: int, total: int) -> float:
    """LR multiplier at ``step`` (0-based) of ``total``: warm-up then half-cosine to 0."""
    warmup = int(recipe.warmup_fraction * total) if recipe.schedule == "onecycle" else 0
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _show_progress(progress: bool | None) -> bool:
    """An explicit flag wins, then ``$SEARCHQ_PROGRESS`` (0/false/no/off), then "is a TTY"."""
    if progress is not None:
        return progress
    env = os.environ.get("SEARCHQ_PROGRESS", "").strip().lower()
    if env:
        return env not in ("0", "false", "no", "off")
    return sys.stderr.isatty()


def fit(
    model: nn.Module,
    loader: DataLoader | Iterable[Any],
    recipe: TrainRecipe,
    *,
    progress: bool | None = None,
    desc: str = "train",
) -> list[float]:
    """Train ``model`` in place on ``loader`` with ``recipe``; return the mean loss of each epoch.

    ``progress``: show a tqdm bar (default: ``$SEARCHQ_PROGRESS`` if set, else only when stderr is
    a terminal). The model is left in
    eval mode. Determinism comes from the caller: a seeded model and a loader whose shuffling uses
    its own ``torch.Generator``.
    """
    batches_per_epoch = len(loader) if isinstance(loader, Sized) else None
    if not batches_per_epoch:
        raise TaskError(
            "the training loader is empty or has no length; fit() needs a finite DataLoader: "
            "check its dataset"
        )
    total = recipe.epochs * batches_per_epoch
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.momentum > 0,
        weight_decay=recipe.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(recipe, step, total)
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    device = next(model.parameters()).device
    epoch_losses: list[float] = []
    model.train()
    with tqdm(total=total, desc=desc, unit="step", disable=not _show_progress(progress)) as bar:
        for epoch in range(recipe.epochs):
            loss_sum = torch.zeros((), dtype=torch.float64)
            seen = 0
            for batch in loader:
                inputs, targets = split_batch(batch)
                if targets is None:
                    raise TaskError(
                        "a training batch has no targets; fit() needs (inputs, targets) batches"
                    )
                inputs, targets = inputs.to(device), targets.to(device)
                loss: Tensor = criterion(model(inputs), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                loss_sum += loss.detach().double() * len(targets)
                seen += len(targets)
                bar.update(1)
            epoch_losses.append(float(loss_sum) / max(1, seen))
            bar.set_postfix(epoch=epoch + 1, loss=f"{epoch_losses[-1]:.3f}")
    model.eval()
    return epoch_losses
