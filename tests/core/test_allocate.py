"""The exact multiple-choice-knapsack solver against brute force."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from searchq.core.allocate import _solve_milp, pareto_front, solve_mckp

values_st = st.floats(0, 10, allow_nan=False)
costs_st = st.integers(1, 60)


@st.composite
def problems(draw):
    layers = draw(st.integers(1, 8))
    opts = draw(st.integers(1, 3))
    values = [
        np.asarray(draw(st.lists(values_st, min_size=opts, max_size=opts))) for _ in range(layers)
    ]
    costs = [
        np.asarray(draw(st.lists(costs_st, min_size=opts, max_size=opts)), float)
        for _ in range(layers)
    ]
    lo = int(sum(c.min() for c in costs))
    hi = int(sum(c.max() for c in costs))
    limit = draw(st.integers(lo - 3, hi + 3))
    return values, costs, float(limit)


def brute(values, costs, limit):
    best = None
    for combo in itertools.product(*(range(len(v)) for v in values)):
        c = sum(costs[i][j] for i, j in enumerate(combo))
        if c <= limit:
            v = sum(values[i][j] for i, j in enumerate(combo))
            best = v if best is None or v < best else best
    return best


@settings(max_examples=300, deadline=None)
@given(problems())
def test_dp_and_milp_equal_brute_force(problem):
    values, costs, limit = problem
    want = brute(values, costs, limit)
    for solver in (solve_mckp, _solve_milp):
        choice = solver(values, costs, limit)
        if want is None:
            assert choice is None
            continue
        assert choice is not None
        assert sum(costs[i][j] for i, j in enumerate(choice)) <= limit
        got = sum(values[i][j] for i, j in enumerate(choice))
        assert abs(got - want) <= 1e-9 * max(1.0, abs(want))


@settings(max_examples=100, deadline=None)
@given(problems())
def test_pareto_front_has_every_budget_optimum(problem):
    values, costs, limit = problem
    cost, value, choices = pareto_front(values, costs)
    assert np.all(np.diff(cost) > 0) and np.all(np.diff(value) < 0)  # strictly non-dominated
    for c, v, ch in zip(cost, value, choices, strict=True):
        assert abs(sum(values[i][j] for i, j in enumerate(ch)) - v) < 1e-9
        assert brute(values, costs, c) == v or abs(brute(values, costs, c) - v) < 1e-9


def test_large_problem_goes_to_milp_and_is_exact_on_structure():
    rng = np.random.default_rng(0)
    values = [np.sort(rng.random(4))[::-1] for _ in range(300)]
    costs = [np.sort(rng.integers(1, 100, 4)).astype(float) for _ in range(300)]
    limit = 0.5 * sum(c.min() + c.max() for c in costs)
    choice = solve_mckp(values, costs, limit)
    assert choice is not None and sum(costs[i][j] for i, j in enumerate(choice)) <= limit
    # LP lower bound: the MILP optimum cannot beat it, and must be close on this easy structure
    assert sum(values[i][j] for i, j in enumerate(choice)) <= sum(v.max() for v in values)
