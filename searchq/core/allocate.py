"""Exact bit allocation under a budget: a multiple-choice knapsack solved as a MILP.

The decision units are the quantizer *adjacency groups* of a :class:`QuantSpace` (an input
activation quantizer plus the weight quantizers of the ops reading it). Each group has a short
list of options — one bitwidth per member weight, with the activation's bits derived by NNCF's
rule (below) — and every cost searchq budgets (bit complexity, model size, latency) is a sum
over groups. Choosing one option per group to minimise Σ value subject to Σ cost ≤ limit is a
multiple-choice knapsack, solved exactly by ``scipy.optimize.milp`` (HiGHS, zero MIP gap).

Activation bits given the group's weight bits ``W`` and the activation's allowed bits ``A``
(NNCF 2.x ``hawq_init.py``):

* liberal: ``A``'s only value; else ``min(A ∩ W)``; else ``min(A)``;
* strict: all members share one bitwidth from the group's common set.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from searchq.core.assignment import Assignment
from searchq.core.cost import FP32_BITS, LatencyTable
from searchq.core.graph import ModelGraph
from searchq.core.space import QuantSpace
from searchq.errors import ConfigError, InfeasibleBudgetError

__all__ = [
    "BUDGET_KINDS",
    "AllocationGroup",
    "Budget",
    "FeasibleProjection",
    "GroupOption",
    "allocation_groups",
    "cost_table",
    "solve_mckp",
]

BUDGET_KINDS = ("bit_complexity_ratio", "size_ratio", "latency_ms")
MAX_OPTIONS_PER_GROUP = 4096


@dataclass(frozen=True)
class GroupOption:
    """One joint choice for a group: bits per member weight and for the activation."""

    weights: tuple[tuple[str, int], ...]
    activation: tuple[str, int] | None

    def items(self) -> list[tuple[str, int]]:
        return [*self.weights, *([self.activation] if self.activation else [])]


@dataclass(frozen=True)
class AllocationGroup:
    activation: str | None
    weights: tuple[str, ...]
    options: tuple[GroupOption, ...]


def _derive_activation(allowed: Sequence[int], weight_bits: set[int], strict: bool) -> int:
    if strict:
        common = sorted(set(allowed) & weight_bits)
        if not common:
            raise InfeasibleBudgetError(
                f"strict mode: no activation bitwidth in {sorted(allowed)} matches weight bits "
                f"{sorted(weight_bits)}; use bitwidth_assignment_mode 'liberal'"
            )
        return common[0]
    if len(allowed) == 1:
        return allowed[0]
    both = sorted(set(allowed) & weight_bits)
    return both[0] if both else min(allowed)


def allocation_groups(
    space: QuantSpace, *, derive_activations: bool = True
) -> list[AllocationGroup]:
    """The decision units of ``space`` with every legal option.

    ``derive_activations`` (HAWQ): activation bits follow the weights by NNCF's rule. Otherwise
    (AutoQ, which chooses activations itself) every allowed activation bitwidth is an option too.
    """
    strict = space.assignment_mode == "strict"
    groups: list[AllocationGroup] = []
    for members in space.groups:
        points = [space.point(q) for q in members]
        act = next((p for p in points if p.kind == "activation"), None)
        weights = tuple(p.qname for p in points if p.kind == "weight")
        if strict:
            choices: list[tuple[int, ...]] = [
                (b,) * len(weights) for b in space.group_bits(members)
            ]
        else:
            sizes = math.prod(len(space.point(w).bits) for w in weights)
            if sizes > MAX_OPTIONS_PER_GROUP:
                raise ConfigError(
                    f"{len(weights)} weight quantizers read one tensor ({act.qname if act else ''})"
                    f" and give {sizes} joint options; use bitwidth_assignment_mode 'strict' or "
                    "fewer bits"
                )
            choices = list(itertools.product(*(space.point(w).bits for w in weights)))
        options = []
        for combo in choices:
            pairs = tuple(zip(weights, combo, strict=True))
            if act is None:
                options.append(GroupOption(pairs, None))
            elif derive_activations or strict:
                derived = _derive_activation(act.bits, set(combo), strict)
                options.append(GroupOption(pairs, (act.qname, derived)))
            else:
                options.extend(GroupOption(pairs, (act.qname, a)) for a in act.bits)
        groups.append(AllocationGroup(act.qname if act else None, weights, tuple(options)))
    return groups


@dataclass(frozen=True)
class Budget:
    """``bit_complexity_ratio`` ≥ target, or ``size_ratio`` / ``latency_ms`` ≤ target."""

    kind: str
    target: float
    latency: LatencyTable | None = None

    def __post_init__(self) -> None:
        if self.kind not in BUDGET_KINDS:
            raise ConfigError(f"budget kind {self.kind!r} is not one of {list(BUDGET_KINDS)}")
        if not (isinstance(self.target, (int, float)) and math.isfinite(self.target)) or (
            self.target <= 0
        ):
            raise ConfigError(f"{self.kind} target {self.target!r} must be a positive number")
        if self.kind == "latency_ms" and self.latency is None:
            raise ConfigError("a latency budget needs a latency table (--latency-table FILE)")

    @property
    def higher_is_better(self) -> bool:
        return self.kind == "bit_complexity_ratio"


def cost_table(
    graph: ModelGraph, groups: Sequence[AllocationGroup], budget: Budget
) -> tuple[list[np.ndarray], float, Callable[[float], float]]:
    """Per-group option costs, the cost limit of ``budget``, and cost → budget-metric map."""
    op_of = {op.weight_qname: op for op in graph.ops}
    costs: list[np.ndarray] = []
    for g in groups:
        row = []
        for opt in g.options:
            a_bits = opt.activation[1] if opt.activation else None
            total = 0.0
            for qname, w in opt.weights:
                op = op_of[qname]
                a = a_bits if a_bits is not None else w
                if budget.kind == "bit_complexity_ratio":
                    total += op.macs * max(w, a)
                elif budget.kind == "size_ratio":
                    total += op.weight_numel * w
                else:
                    assert budget.latency is not None
                    total += budget.latency.op_latency(op.name, op.kind, w, a)
            row.append(total)
        costs.append(np.asarray(row, dtype=np.float64))
    quantized = [op_of[w] for g in groups for w in g.weights]
    if budget.kind == "bit_complexity_ratio":
        ref = float(sum(op.macs * 8 for op in quantized))
        return costs, ref / budget.target, lambda c: ref / c if c else math.inf
    if budget.kind == "size_ratio":
        ref = float(sum(op.weight_numel * FP32_BITS for op in quantized))
        return costs, ref * budget.target, lambda c: c / ref
    return costs, float(budget.target), lambda c: c


def solve_mckp(
    values: Sequence[np.ndarray],
    costs: Sequence[np.ndarray],
    limit: float,
    *,
    max_front: int = 20_000,
) -> list[int] | None:
    """Exact: pick one option per group minimising Σ value with Σ cost ≤ limit (None: none fits).

    Up to 64 groups use a Pareto dynamic programme (group by group, keep only the (cost, value)
    pairs no other pair beats — exact, about a millisecond for tens of layers); larger problems,
    or fronts beyond ``max_front`` pairs, go to a 0/1 MILP solved by HiGHS with a zero relative
    MIP gap (dominated options pre-removed).
    """
    if sum(float(c.min()) for c in costs) > limit * (1 + 1e-12):
        return None
    front = (
        pareto_front(values, costs, limit=limit, max_front=max_front) if len(values) <= 64 else None
    )
    if front is not None:
        cost, value, choices = front
        ok = np.nonzero(cost <= limit * (1 + 1e-12))[0]
        if len(ok) == 0:
            return None
        best = ok[int(np.argmin(value[ok]))]
        return [int(c) for c in choices[best]]
    return _solve_milp(values, costs, limit)


def pareto_front(
    values: Sequence[np.ndarray],
    costs: Sequence[np.ndarray],
    *,
    limit: float = math.inf,
    max_front: int = 20_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """All (Σ cost, Σ value) pairs that no other joint choice beats on both, with their choices
    (one row of option indices per pair); None if the front grows beyond ``max_front``."""
    cost = np.zeros(1)
    value = np.zeros(1)
    choices = np.zeros((1, 0), dtype=np.int32)
    for v, c in zip(values, costs, strict=True):
        new_cost = (cost[:, None] + c[None, :]).ravel()
        new_value = (value[:, None] + v[None, :]).ravel()
        parent = np.repeat(np.arange(len(cost)), len(c))
        option = np.tile(np.arange(len(c), dtype=np.int32), len(cost))
        keep = new_cost <= limit * (1 + 1e-12)
        order = np.lexsort((new_value[keep], new_cost[keep]))
        idx = np.nonzero(keep)[0][order]
        vals = new_value[idx]
        # keep a pair only if its value beats every cheaper pair's
        prev_min = np.minimum.accumulate(np.concatenate([[np.inf], vals[:-1]]))
        tol = 1e-12 * np.maximum(1.0, np.abs(prev_min))
        idx = idx[vals < prev_min - np.where(np.isfinite(prev_min), tol, 0.0)]
        if len(idx) > max_front:
            return None
        cost, value = new_cost[idx], new_value[idx]
        choices = np.concatenate([choices[parent[idx]], option[idx, None]], axis=1)
    return cost, value, choices


def _solve_milp(
    values: Sequence[np.ndarray], costs: Sequence[np.ndarray], limit: float
) -> list[int] | None:
    from scipy.optimize import Bounds, LinearConstraint, milp

    if sum(float(c.min()) for c in costs) > limit * (1 + 1e-12):
        return None
    keep = [_undominated(v, c) for v, c in zip(values, costs, strict=True)]
    free = [i for i, k in enumerate(keep) if len(k) > 1]
    fixed = {i: int(keep[i][0]) for i, k in enumerate(keep) if len(k) == 1}
    rest = limit - sum(float(costs[i][j]) for i, j in fixed.items())
    if not free:
        return [fixed[i] for i in range(len(values))]
    v = np.concatenate([values[i][keep[i]] for i in free])
    c = np.concatenate([costs[i][keep[i]] for i in free])
    scale_c = max(float(np.abs(c).max()), 1e-300)
    scale_v = max(float(np.abs(v).max()), 1e-300)
    n = len(v)
    rows = np.zeros((len(free), n))
    start = 0
    for r, i in enumerate(free):
        rows[r, start : start + len(keep[i])] = 1.0
        start += len(keep[i])
    for shrink in (0.0, 1e-7, 1e-5):  # retry only if HiGHS's tolerance overshot the limit
        cap = rest / scale_c * (1.0 - shrink)
        res = milp(
            c=v / scale_v,
            constraints=[
                LinearConstraint(rows, lb=1.0, ub=1.0),
                LinearConstraint((c / scale_c)[None, :], ub=cap),
            ],
            integrality=np.ones(n),
            bounds=Bounds(0, 1),
            options={"mip_rel_gap": 0.0, "presolve": True},
        )
        if res.x is None:
            return None
        x = np.round(res.x).astype(int)
        out = dict(fixed)
        start = 0
        for i in free:
            seg = x[start : start + len(keep[i])]
            out[i] = int(keep[i][int(np.argmax(seg))])
            start += len(keep[i])
        if sum(float(costs[i][j]) for i, j in out.items()) <= limit * (1 + 1e-12):
            break
    return [out[i] for i in range(len(values))]


def _undominated(values: np.ndarray, costs: np.ndarray) -> np.ndarray:
    order = np.lexsort((values, costs))  # by cost, then value
    kept: list[int] = []
    best = math.inf
    for j in order:
        if values[j] < best - 1e-15 * max(1.0, abs(best)) or not kept:
            kept.append(int(j))
            best = min(best, float(values[j]))
    return np.asarray(kept)


def to_assignment(
    groups: Sequence[AllocationGroup], choice: Sequence[int], base: Assignment | None = None
) -> Assignment:
    weights = dict(base.weights) if base else {}
    acts = dict(base.activations) if base else {}
    for g, j in zip(groups, choice, strict=True):
        opt = g.options[j]
        weights.update(dict(opt.weights))
        if opt.activation:
            acts[opt.activation[0]] = opt.activation[1]
    return Assignment(weights=weights, activations=acts)


def achievable_range(
    costs: Sequence[np.ndarray], metric: Callable[[float], float]
) -> tuple[float, float]:
    lo = metric(sum(float(c.min()) for c in costs))
    hi = metric(sum(float(c.max()) for c in costs))
    return (min(lo, hi), max(lo, hi))


def group_values(
    groups: Sequence[AllocationGroup], value_of: Mapping[str, Mapping[int, float]]
) -> list[np.ndarray]:
    """Σ of per-quantizer values (e.g. HAWQ's Ω) for every option of every group.

    Weights must all have values; an activation counts when ``value_of`` has it (HAWQ with
    activation sensitivity), else it adds nothing (NNCF's weights-only objective).
    """

    def value(opt: GroupOption) -> float:
        total = sum(value_of[q][b] for q, b in opt.weights)
        if opt.activation is not None and opt.activation[0] in value_of:
            total += value_of[opt.activation[0]][opt.activation[1]]
        return total

    return [np.asarray([value(opt) for opt in g.options]) for g in groups]


def complete_activations(space: QuantSpace, weights: Mapping[str, int]) -> Assignment:
    """An assignment with ``weights`` and every activation's bits derived by NNCF's rule."""
    strict = space.assignment_mode == "strict"
    acts: dict[str, int] = {}
    for members in space.groups:
        act = next((q for q in members if space.point(q).kind == "activation"), None)
        if act is None:
            continue
        wbits = {weights[q] for q in members if q in weights}
        acts[act] = _derive_activation(space.point(act).bits, wbits, strict)
    return Assignment(weights=dict(weights), activations=acts)


def closest_feasible(
    space: QuantSpace, proposal: Assignment, budget: Budget
) -> tuple[Assignment, bool]:
    """The legal assignment meeting ``budget`` nearest to ``proposal``; (assignment, changed).

    Distance: Σ over quantizers of |Δ index| / k in the quantizer's allowed list of k values —
    the L1 distance in an agent's [0, 1] action space. Solved exactly (same knapsack as HAWQ), so
    the fix is the smallest one wherever it falls, not a walk from the last layer backwards.
    For many proposals in one space, build a :class:`FeasibleProjection` once instead.
    """
    return FeasibleProjection(space, budget)(proposal)


class FeasibleProjection:
    """:func:`closest_feasible` for many proposals under one ``budget``: the groups, option costs
    and option bit indices are computed once, so a proposal that already fits costs a repair and
    a lookup, and one that does not, the knapsack solve."""

    def __init__(self, space: QuantSpace, budget: Budget) -> None:
        self.space, self.budget = space, budget
        self.groups = allocation_groups(space, derive_activations=False)
        self.costs, self.limit, self.metric = cost_table(space.graph, self.groups, budget)
        self._members: list[tuple[str, ...]] = []  # a group's quantizers, in option item order
        self._option_of: list[dict[tuple[int, ...], int]] = []  # their bits → first option
        self._index: list[np.ndarray] = []  # options × members: index into the allowed bits
        self._levels: list[np.ndarray] = []  # members: number of allowed bits k
        for g in self.groups:
            names = tuple(q for q, _ in g.options[0].items())
            allowed = [space.point(q).bits for q in names]
            option_of: dict[tuple[int, ...], int] = {}
            for j, o in enumerate(g.options):
                option_of.setdefault(tuple(b for _, b in o.items()), j)
            self._members.append(names)
            self._option_of.append(option_of)
            self._index.append(
                np.asarray(
                    [[a.index(b) for a, (_, b) in zip(allowed, o.items(), strict=True)]
                     for o in g.options],
                    dtype=np.float64,
                ).reshape(len(g.options), len(names))
            )  # fmt: skip
            self._levels.append(np.asarray([len(a) for a in allowed], dtype=np.float64))

    def __call__(self, proposal: Assignment) -> tuple[Assignment, bool]:
        proposal = self.space.repair(proposal)
        wanted = proposal.bits
        current = [
            option_of[tuple(wanted[q] for q in names)]
            for names, option_of in zip(self._members, self._option_of, strict=True)
        ]
        used = sum(float(c[j]) for c, j in zip(self.costs, current, strict=True))
        if used <= self.limit * (1 + 1e-12):
            return proposal, False
        values = []
        for names, index, levels in zip(self._members, self._index, self._levels, strict=True):
            want = np.asarray([self.space.point(q).bits.index(wanted[q]) for q in names])
            values.append((np.abs(index - want) / levels).sum(axis=1))
        choice = solve_mckp(values, self.costs, self.limit)
        if choice is None:
            lo, hi = achievable_range(self.costs, self.metric)
            raise InfeasibleBudgetError(
                f"{self.budget.kind} {self.budget.target:g} is out of reach: the achievable range "
                f"is {lo:.3g}–{hi:.3g} with the allowed bits on target "
                f"'{self.space.hardware.name}'"
            )
        return to_assignment(self.groups, choice, proposal), True
