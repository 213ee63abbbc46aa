"""Evaluation: a model → metrics protocol, top-1 accuracy, subsets and a cache by assignment."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Protocol

import torch
from torch import nn

from searchq.errors import ConfigError, TaskError

__all__ = ["AccuracyEvaluator", "CachedEvaluator", "Evaluator", "accuracy"]


class Evaluator(Protocol):
    """``evaluator(model) -> {"accuracy": ..., ...}`` (accuracy first, in percent)."""

    def __call__(self, model: nn.Module) -> Mapping[str, float]: ...


def _split(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        for xk, yk in (("input", "target"), ("x", "y"), ("image", "label")):
            if xk in batch and yk in batch:
                return batch[xk], batch[yk]
    raise TaskError(
        f"cannot split a validation batch of type {type(batch).__name__} into (input, target); "
        "yield (input, target) pairs or pass your own evaluator"
    )


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable[Any], *, max_samples: int | None = None) -> float:
    """Top-1 accuracy in percent over ``batches`` (up to ``max_samples`` samples)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for batch in batches:
            x, y = _split(batch)
            if max_samples is not None and total + x.shape[0] > max_samples:
                keep = max_samples - total
                x, y = x[:keep], y[:keep]
            if x.shape[0] == 0:
                break
            pred = model(x).argmax(dim=-1)
            correct += int((pred == y).sum())
            total += int(y.numel())
            if max_samples is not None and total >= max_samples:
                break
    finally:
        model.train(was_training)
    return 100.0 * correct / total if total else float("nan")


class AccuracyEvaluator:
    """Top-1 accuracy on the first ``subset_ratio`` of a validation loader (a fixed subset)."""

    def __init__(self, loader: Iterable[Any], *, subset_ratio: float = 1.0) -> None:
        if not 0.0 < subset_ratio <= 1.0:
            raise ConfigError(
                f"eval_subset_ratio {subset_ratio} must be in (0, 1]", key="eval_subset_ratio"
            )
        self.loader = loader
        self.subset_ratio = subset_ratio
        size = _dataset_size(loader)
        self.max_samples = (
            None if size is None or subset_ratio >= 1.0 else max(1, math.ceil(size * subset_ratio))
        )

    def __call__(self, model: nn.Module) -> dict[str, float]:
        return {"accuracy": accuracy(model, self.loader, max_samples=self.max_samples)}


def _dataset_size(loader: Iterable[Any]) -> int | None:
    dataset = getattr(loader, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None  # type: ignore[arg-type]
    except TypeError:
        return None


class CachedEvaluator:
    """Remember results by a key (e.g. ``Assignment.key()``); counts hits and misses."""

    def __init__(self, evaluate: Callable[[nn.Module], Mapping[str, float]]) -> None:
        self.evaluate = evaluate
        self.cache: dict[Hashable, dict[str, float]] = {}
        self.hits = 0
        self.misses = 0

    def __call__(self, model: nn.Module, key: Hashable) -> dict[str, float]:
        if key in self.cache:
            self.hits += 1
            return dict(self.cache[key])
        self.misses += 1
        result = dict(self.evaluate(model))
        self.cache[key] = result
        return dict(result)
