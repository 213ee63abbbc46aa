"""The AutoQ environment: one step per quantizer, in execution order (HAQ, Wang et al. 2019).

State of a step (HAQ's layer embedding, each feature min-max normalised over all steps):
``[step index, is depthwise, c_in, c_out, stride, kernel, elements quantized, input feature-map
size, previous action, is weight]``. Conv1d / Conv2d / depthwise / Linear fill every field; any
other op gets zeros for the fields it lacks instead of an error.

Action → bits (HAQ's rounding ``round(b_min − 0.5 + a·(b_max − b_min + 1))``, applied to the
index into the quantizer's OWN allowed list b_0 < … < b_{k−1}): ``index = ⌊a·k⌋`` clipped to
[0, k−1]. Every allowed value has an equal share of [0, 1], so arbitrary sets such as
{3, 4, 5, 6, 8} are all reachable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from searchq.core.assignment import Assignment
from searchq.core.graph import ModelGraph, OpInfo
from searchq.core.space import QuantPoint, QuantSpace

__all__ = ["QuantizerStep", "StepPlan", "bits_from_action", "plan_steps"]

FEATURES = (
    "index",
    "depthwise",
    "c_in",
    "c_out",
    "stride",
    "kernel",
    "numel",
    "feature_map",
    "prev_action",
    "is_weight",
)
_PREV = FEATURES.index("prev_action")


def bits_from_action(action: float, allowed: Sequence[int]) -> int:
    """HAQ's rounding rule applied to the index of ``allowed`` (sorted ascending)."""
    k = len(allowed)
    a = min(max(float(action), 0.0), 1.0)
    return sorted(allowed)[min(int(math.floor(a * k)), k - 1)]


def action_for_bits(bits: int, allowed: Sequence[int]) -> float:
    """The centre of ``bits``' share of [0, 1] (for replaying a constrained policy)."""
    ordered = sorted(allowed)
    return (ordered.index(bits) + 0.5) / len(ordered)


@dataclass(frozen=True)
class QuantizerStep:
    point: QuantPoint
    op: OpInfo | None
    features: np.ndarray  # raw (not normalised), without previous action


@dataclass(frozen=True)
class StepPlan:
    steps: tuple[QuantizerStep, ...]
    low: np.ndarray
    high: np.ndarray

    @property
    def state_dim(self) -> int:
        return len(FEATURES)

    def __len__(self) -> int:
        return len(self.steps)

    @cached_property
    def _normalised(self) -> np.ndarray:
        """Every step's static features, min-max normalised once (float32, one row per step)."""
        table = np.stack([s.features for s in self.steps])
        span = np.where(self.high > self.low, self.high - self.low, 1.0)
        return ((table - self.low) / span).astype(np.float32)

    def state(self, t: int, prev_action: float) -> np.ndarray:
        out = self._normalised[t].copy()
        out[_PREV] = prev_action  # already in [0, 1]
        return out

    def assignment(self, bits: Sequence[int]) -> Assignment:
        weights: dict[str, int] = {}
        acts: dict[str, int] = {}
        for step, b in zip(self.steps, bits, strict=True):
            (weights if step.point.kind == "weight" else acts)[step.point.qname] = int(b)
        return Assignment(weights=weights, activations=acts)


def _features(index: int, point: QuantPoint, op: OpInfo | None) -> np.ndarray:
    f = np.zeros(len(FEATURES))
    f[0] = index
    f[FEATURES.index("numel")] = point.numel
    f[FEATURES.index("is_weight")] = 1.0 if point.kind == "weight" else 0.0
    if op is not None:
        f[FEATURES.index("depthwise")] = 1.0 if op.is_depthwise else 0.0
        f[FEATURES.index("c_in")] = op.in_channels
        f[FEATURES.index("c_out")] = op.out_channels
        f[FEATURES.index("stride")] = op.stride[0] if op.stride else 1
        f[FEATURES.index("kernel")] = op.kernel_size[0] if op.kernel_size else 1
        spatial = op.in_shape[1:] if op.kind != "linear" else op.in_shape[:-1]
        f[FEATURES.index("feature_map")] = math.prod(spatial) if spatial else 1
    return f


def plan_steps(graph: ModelGraph, space: QuantSpace) -> StepPlan:
    """Quantizers in execution order: an op's input quantizer (first time it is read), then its
    weights."""
    order: list[QuantPoint] = []
    seen: set[str] = set()
    names = {p.qname for p in space.points}
    for op in graph.ops:
        for qname in (op.input_group, op.weight_qname):
            if qname in names and qname not in seen:
                order.append(space.point(qname))
                seen.add(qname)
    ops = {op.name: op for op in graph.ops}
    steps = tuple(
        QuantizerStep(p, ops.get(p.ops[0]), _features(i, p, ops.get(p.ops[0])))
        for i, p in enumerate(order)
    )
    table = np.stack([s.features for s in steps])
    return StepPlan(steps=steps, low=table.min(axis=0), high=table.max(axis=0))
