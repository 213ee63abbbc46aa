"""HAWQ bit selection: the exact optimum, and NNCF's trace-order-monotone rule for comparison.

``exact`` minimises Σ Ω over every legal assignment under the budget (a multiple-choice
knapsack, :mod:`searchq.core.allocate`). ``monotone`` is NNCF 2.x's rule: order the weight
quantizers by ascending average trace, enumerate every non-decreasing bit sequence in that order
(C(L+m−1, m−1) of them), derive activation bits, keep the sequences meeting the budget and take
the one with the least Σ Ω. The monotone family is a subset of the exact search space, so exact
is never worse on Σ Ω.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from searchq.core.allocate import (
    Budget,
    achievable_range,
    allocation_groups,
    complete_activations,
    cost_table,
    group_values,
    pareto_front,
    solve_mckp,
    to_assignment,
)
from searchq.core.assignment import Assignment
from searchq.core.cost import LatencyTable, bit_complexity_ratio, size_ratio
from searchq.core.graph import ModelGraph
from searchq.core.space import QuantSpace, snap
from searchq.errors import ConfigError, InfeasibleBudgetError

__all__ = [
    "SELECTIONS",
    "Allocation",
    "allocate",
    "budget_metric",
    "check_reachable",
    "frontier",
    "objective",
]

SELECTIONS = ("exact", "monotone")
MAX_MONOTONE_SEQUENCES = 200_000
_NAMES = {
    "bit_complexity_ratio": "compression_ratio",
    "size_ratio": "size ratio",
    "latency_ms": "latency (ms)",
}


@dataclass(frozen=True)
class Allocation:
    assignment: Assignment
    objective: float
    achieved: float
    selection: str
    candidates: int = 0


def budget_metric(graph: ModelGraph, assignment: Assignment, budget: Budget) -> float:
    if budget.kind == "bit_complexity_ratio":
        return bit_complexity_ratio(graph, assignment)
    if budget.kind == "size_ratio":
        return size_ratio(graph, assignment)
    assert budget.latency is not None
    return budget.latency.latency(graph, assignment)


def _meets(value: float, budget: Budget) -> bool:
    eps = 1e-9 * max(1.0, abs(budget.target))
    if budget.higher_is_better:
        return value >= budget.target - eps
    return value <= budget.target + eps


def _out_of_reach(space: QuantSpace, budget: Budget, lo: float, hi: float) -> InfeasibleBudgetError:
    bits = sorted({b for p in space.weight_points for b in p.bits})
    return InfeasibleBudgetError(
        f"{_NAMES[budget.kind]} {budget.target:g} is out of reach: with bits {bits} on target "
        f"'{space.hardware.name}' the achievable range is {lo:.2f}–{hi:.2f}; choose a target in "
        "that range or allow more bits"
    )


def check_reachable(space: QuantSpace, budget: Budget) -> tuple[float, float]:
    """The achievable range of ``budget``'s metric; raises if its target lies outside."""
    groups = allocation_groups(space)
    costs, limit, metric = cost_table(space.graph, groups, budget)
    lo, hi = achievable_range(costs, metric)
    if sum(float(c.min()) for c in costs) > limit * (1 + 1e-12):
        raise _out_of_reach(space, budget, lo, hi)
    return lo, hi


def allocate(
    space: QuantSpace,
    omega: Mapping[str, Mapping[int, float]],
    budget: Budget,
    *,
    selection: str = "exact",
    traces: Mapping[str, float] | None = None,
) -> Allocation:
    """The assignment minimising Σ Ω under ``budget`` (``traces`` are needed for monotone)."""
    if selection not in SELECTIONS:
        raise ConfigError(
            f"selection {selection!r} is not one of {list(SELECTIONS)}", key="selection"
        )
    groups = allocation_groups(space)
    costs, limit, metric = cost_table(space.graph, groups, budget)
    lo, hi = achievable_range(costs, metric)
    if selection == "monotone":
        if traces is None:
            raise ConfigError("monotone selection needs the traces", key="selection")
        return _monotone(space, omega, budget, traces, lo, hi)
    values = group_values(groups, omega)
    choice = solve_mckp(values, costs, limit)
    if choice is None:
        raise _out_of_reach(space, budget, lo, hi)
    assignment = to_assignment(groups, choice)
    objective = float(sum(values[g][j] for g, j in enumerate(choice)))
    return Allocation(
        assignment, objective, budget_metric(space.graph, assignment, budget), "exact"
    )


def objective(assignment: Assignment, omega: Mapping[str, Mapping[int, float]]) -> float:
    """Σ Ω over the assignment's quantizers that ``omega`` scores (weights, maybe activations)."""
    return float(sum(omega[q][b] for q, b in assignment.bits.items() if q in omega))


def _monotone(
    space: QuantSpace,
    omega: Mapping[str, Mapping[int, float]],
    budget: Budget,
    traces: Mapping[str, float],
    lo: float,
    hi: float,
) -> Allocation:
    points = space.weight_points
    order = sorted(
        range(len(points)), key=lambda i: traces[points[i].qname]
    )  # stable: ties by index
    bits = sorted({b for p in points for b in p.bits})
    count = sum(
        math.comb(len(bits), j) * math.comb(len(points) - 1, j - 1) for j in range(1, len(bits) + 1)
    )
    if count > MAX_MONOTONE_SEQUENCES:
        raise ConfigError(
            f"monotone selection would enumerate {count} sequences ({len(points)} layers, bits "
            f"{bits}); use selection 'exact', which solves this size directly",
            key="selection",
        )
    seen: set[tuple[int, ...]] = set()
    best: tuple[float, Assignment, float] | None = None
    evaluated = 0
    excessive = _excessive_bits(space)
    for seq in _non_decreasing(bits, len(points)):
        per_point = [0] * len(points)
        for rank, i in enumerate(order):
            per_point[i] = snap_down(seq[rank], points[i].bits)
        key = tuple(per_point)
        if key in seen:
            continue
        seen.add(key)
        if excessive and excessive <= set(per_point):
            continue  # NNCF drops sequences that use every weight-only bitwidth
        weights = {p.qname: b for p, b in zip(points, per_point, strict=True)}
        if space.assignment_mode == "strict" and not _groups_agree(space, weights):
            continue
        assignment = complete_activations(space, weights)
        evaluated += 1
        achieved = budget_metric(space.graph, assignment, budget)
        if not _meets(achieved, budget):
            continue
        value = objective(assignment, omega)
        if best is None or value < best[0]:
            best = (value, assignment, achieved)
    if best is None:
        raise _out_of_reach(space, budget, lo, hi)
    return Allocation(best[1], best[0], best[2], "monotone", evaluated)


def snap_down(value: int, allowed: Sequence[int]) -> int:
    """NNCF's 'first closest' bitwidth: nearest allowed value, the smaller one on a tie."""
    return min(allowed, key=lambda b: (abs(b - value), b))


def _non_decreasing(bits: Sequence[int], length: int):  # noqa: ANN202
    return itertools.combinations_with_replacement(bits, length)


def _groups_agree(space: QuantSpace, weights: Mapping[str, int]) -> bool:
    for members in space.groups:
        values = {weights[q] for q in members if q in weights}
        if len(values) > 1:
            return False
    return True


def _excessive_bits(space: QuantSpace) -> set[int]:
    if space.hardware.name == "trial":
        return set()
    w = {b for p in space.weight_points for b in p.bits}
    a = {b for p in space.activation_points for b in p.bits}
    return w - a if a else set()


def frontier(
    space: QuantSpace,
    omega: Mapping[str, Mapping[int, float]],
    kind: str = "bit_complexity_ratio",
    *,
    points: int = 48,
    latency: LatencyTable | None = None,
) -> list[tuple[float, float]]:
    """(budget value, least Σ Ω) along the exact trade-off curve, for plots."""
    groups = allocation_groups(space)
    costs, _, metric = cost_table(space.graph, groups, Budget(kind, 1.0, latency))
    values = group_values(groups, omega)
    front = pareto_front(values, costs) if len(groups) <= 64 else None
    if front is not None:
        pairs = [(metric(float(c)), float(v)) for c, v in zip(front[0], front[1], strict=True)]
    else:
        lo_c = sum(float(c.min()) for c in costs)
        hi_c = sum(float(c.max()) for c in costs)
        pairs = []
        for limit in np.linspace(lo_c, hi_c, points):
            choice = solve_mckp(values, costs, float(limit))
            if choice is not None:
                used = sum(float(costs[g][j]) for g, j in enumerate(choice))
                pairs.append((metric(used), float(sum(values[g][j] for g, j in enumerate(choice)))))
    return sorted(set(pairs))


__all__ += ["snap", "snap_down"]
