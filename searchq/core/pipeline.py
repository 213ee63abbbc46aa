"""Evaluate assignments on one quantized model: set bits → BN adaptation → evaluator, cached.

Every evaluation starts from the same BatchNorm state (a snapshot taken at construction) and
adapts on the same fixed samples, so a result depends only on the assignment — never on which
assignment ran before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from searchq.core._modes import untouched_rng
from searchq.core.assignment import Assignment
from searchq.core.bn import adapt_batchnorm
from searchq.core.insert import QuantizedModel, iterate_inputs

__all__ = ["QuantEvaluation", "take_samples"]


def take_samples(batches: Iterable[Any], num_samples: int) -> list[Tensor]:
    """The first ``num_samples`` model inputs of ``batches`` as a fixed list of tensors."""
    out: list[Tensor] = []
    seen = 0
    if num_samples <= 0:
        return out
    with untouched_rng(batches):
        for x in iterate_inputs(batches):
            take = min(num_samples - seen, x.shape[0])
            out.append(x[:take].detach().clone())
            seen += take
            if seen >= num_samples:
                break
    return out


def _bn_state(model: nn.Module) -> dict[str, Tensor]:
    state = {}
    for name, m in model.named_modules():
        if isinstance(m, _BatchNorm) and m.track_running_stats:
            for buf in ("running_mean", "running_var", "num_batches_tracked"):
                t = getattr(m, buf)
                if t is not None:
                    state[f"{name}.{buf}"] = t.detach().clone()
    return state


@torch.no_grad()
def _load_bn_state(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    modules = dict(model.named_modules())
    for key, value in state.items():
        name, buf = key.rsplit(".", 1)
        getattr(modules[name], buf).copy_(value)


class QuantEvaluation:
    """``evaluation(assignment) -> metrics`` with BN adaptation and a cache by assignment."""

    def __init__(
        self,
        qmodel: QuantizedModel,
        evaluator: Callable[[nn.Module], Mapping[str, float]],
        *,
        bn_samples: list[Tensor] | None = None,
    ) -> None:
        self.qmodel = qmodel
        self.evaluator = evaluator
        self.bn_samples = bn_samples or []
        self._bn_snapshot = _bn_state(qmodel.model)
        self.cache: dict[tuple, dict[str, float]] = {}
        self.evaluations = 0

    @property
    def model(self) -> nn.Module:
        return self.qmodel.model

    def __call__(self, assignment: Assignment) -> dict[str, float]:
        key = assignment.key()
        if key in self.cache:
            return dict(self.cache[key])
        self.activate(assignment)
        metrics = {k: float(v) for k, v in self.evaluator(self.model).items()}
        self.cache[key] = metrics
        self.evaluations += 1
        return dict(metrics)

    def activate(self, assignment: Assignment) -> None:
        """Put the model in ``assignment``'s state (bits + adapted BN) without evaluating."""
        _load_bn_state(self.model, self._bn_snapshot)
        self.qmodel.set_bits(assignment)
        if self.bn_samples:
            adapt_batchnorm(self.model, self.bn_samples, sum(x.shape[0] for x in self.bn_samples))

    def float_metrics(self) -> dict[str, float]:
        """Metrics of the float model (quantizers disabled, original BN statistics)."""
        _load_bn_state(self.model, self._bn_snapshot)
        with self.qmodel.disabled():
            return {k: float(v) for k, v in self.evaluator(self.model).items()}
