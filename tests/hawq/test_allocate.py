"""HAWQ selection on real quantizer spaces: exact vs brute force, NNCF's monotone rule,
infeasible budgets, activation-bit rules."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from searchq.core.allocate import Budget, complete_activations
from searchq.core.cost import bit_complexity_ratio
from searchq.core.graph import ModelGraph
from searchq.core.space import QuantSpace
from searchq.errors import InfeasibleBudgetError
from searchq.hawq.allocate import allocate, frontier


def _chain(layers: int) -> nn.Module:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Conv2d(2 + i % 2, 2 + (i + 1) % 2, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*mods)


def _space(layers: int, bits=(2, 4, 8), mode="liberal", hw="trial") -> QuantSpace:
    model = _chain(layers)
    graph = ModelGraph.build(model, torch.randn(1, 2, 4, 4))
    return QuantSpace(graph, hw, weight_bits=bits, activation_bits=bits, assignment_mode=mode)


@settings(max_examples=60, deadline=None)
@given(
    layers=st.integers(1, 8),
    seed=st.integers(0, 10_000),
    target=st.floats(0.8, 4.2),
    mode=st.sampled_from(["liberal", "strict"]),
    activations=st.booleans(),
)
def test_exact_selection_equals_brute_force(layers, seed, target, mode, activations):
    """Σ Ω over weights, and with activation terms too (activation sensitivity)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    space = _space(layers, mode=mode)
    scored = space.points if activations else space.weight_points
    omega = {p.qname: {b: float(rng.random()) / b for b in p.bits} for p in scored}
    budget = Budget("bit_complexity_ratio", target)
    best = None
    for combo in itertools.product(*(p.bits for p in space.weight_points)):
        weights = {p.qname: b for p, b in zip(space.weight_points, combo, strict=True)}
        a = complete_activations(space, weights)
        if not space.is_legal(a):
            continue
        if bit_complexity_ratio(space.graph, a) >= target - 1e-9:
            value = sum(omega[q][b] for q, b in a.bits.items() if q in omega)
            best = value if best is None or value < best else best
    if best is None:
        with pytest.raises(InfeasibleBudgetError, match="achievable range"):
            allocate(space, omega, budget)
        return
    got = allocate(space, omega, budget)
    assert got.achieved >= target - 1e-9
    assert got.objective == pytest.approx(best, rel=1e-9, abs=1e-12)
    space.check(got.assignment)


def test_monotone_reproduces_nncf_rule_on_a_worked_example():
    # three layers of equal MACs; bits {4, 8}; traces order (ascending): L2 < L0 < L1
    space = _space(3, bits=(4, 8))
    names = [p.qname for p in space.weight_points]
    traces = {names[0]: 2.0, names[1]: 5.0, names[2]: 1.0}
    noise = {4: 1.0, 8: 0.01}
    omega = {q: {b: traces[q] * noise[b] for b in (4, 8)} for q in names}
    # NNCF's candidates in trace order (L2, L0, L1), non-decreasing:
    # 444, 448, 488, 888 -> per layer (L0, L1, L2): (4,4,4) (4,8,4) (8,8,4) (8,8,8)
    # with a = min(weight bits) per layer, ratios: 2.0, ~1.6, ~1.33, 1.0 (MACs differ a bit)
    budget = Budget("bit_complexity_ratio", 1.3)
    got = allocate(space, omega, budget, selection="monotone", traces=traces)
    assert got.candidates == 4
    feasible = []
    for combo in [(4, 4, 4), (4, 8, 4), (8, 8, 4), (8, 8, 8)]:
        a = complete_activations(space, dict(zip(names, combo, strict=True)))
        r = bit_complexity_ratio(space.graph, a)
        if r >= 1.3:
            feasible.append((sum(omega[q][b] for q, b in a.weights.items()), combo))
    want = min(feasible)[1]
    assert tuple(got.assignment.weights[q] for q in names) == want
    exact = allocate(space, omega, budget)
    assert exact.objective <= got.objective + 1e-12


def test_monotone_is_never_better_than_exact():
    import numpy as np

    rng = np.random.default_rng(3)
    space = _space(6)
    traces = {p.qname: float(rng.random()) for p in space.weight_points}
    omega = {q: {b: t * float(rng.random()) / b for b in (2, 4, 8)} for q, t in traces.items()}
    for target in (1.2, 1.5, 2.0, 3.0):
        budget = Budget("bit_complexity_ratio", target)
        mono = allocate(space, omega, budget, selection="monotone", traces=traces)
        exact = allocate(space, omega, budget)
        assert exact.objective <= mono.objective + 1e-12


def test_infeasible_ratio_names_the_range():
    space = _space(3, bits=(4, 8), hw="npu")
    omega = {p.qname: {b: 1.0 / b for b in p.bits} for p in space.weight_points}
    with pytest.raises(
        InfeasibleBudgetError,
        match=r"compression_ratio 9 is out of reach: with "
        r"bits \[4, 8\] on target 'npu' the achievable range is 1\.00–2\.00",
    ):
        allocate(space, omega, Budget("bit_complexity_ratio", 9.0))


def test_size_budget_and_frontier():
    space = _space(4)
    omega = {p.qname: {b: 1.0 / b**2 for b in p.bits} for p in space.weight_points}
    got = allocate(space, omega, Budget("size_ratio", 0.15))
    assert got.achieved <= 0.15 + 1e-12
    curve = frontier(space, omega)
    xs = [x for x, _ in curve]
    ys = [y for _, y in curve]
    assert xs == sorted(xs) and ys == sorted(ys)  # more compression, more Σ Ω
