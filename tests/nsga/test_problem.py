"""Encoding, optimiser and indicator against independent references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from searchq.elastic.supernet import Supernet
from searchq.nsga.indicators import hypervolume, non_dominated
from searchq.nsga.problem import Encoding
from searchq.nsga.search import make_algorithm
from searchq.tasks.models import mbv2_tiny


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return Supernet(
        mbv2_tiny().eval(),
        torch.randn(2, 1, 8, 8),
        space_options={"max_num_kernels": 2, "multipliers": (1.0, 0.5)},
    )


def test_encoding_round_trips_every_config_of_a_small_space(supernet):
    enc = Encoding.build(supernet, depth_indicator=1)
    upper = enc.upper
    total = int(np.prod(upper + 1))
    assert enc.n_var == len(supernet.space.widths) + len(supernet.space.kernels) + 1
    seen = set()
    for x in itertools.islice(itertools.product(*(range(u + 1) for u in upper)), 5000):
        cfg, _ = enc.decode(x)
        supernet.space.validate(cfg)  # every genome is a legal subnet
        assert tuple(enc.encode(cfg)) == tuple(x)
        seen.add(cfg.key())
    assert len(seen) == min(total, 5000)  # distinct genomes, distinct subnets


def _brute_hv(points, ref):
    """2-D hypervolume by sweeping the sorted non-dominated points."""
    pts = sorted(p for p in map(tuple, points) if p[0] < ref[0] and p[1] < ref[1])
    area, best_y = 0.0, ref[1]
    for x, y in pts:
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-1, 0), st.floats(0, 1.04)), min_size=1, max_size=30))
def test_hypervolume_equals_brute_force(points):
    pts = np.asarray(points, dtype=float)
    assert hypervolume(pts[non_dominated(pts)]) == pytest.approx(
        _brute_hv(pts, (0.0, 1.05)), abs=1e-9
    )


def test_nsga2_recovers_a_known_front():
    """8 integer variables in 0..3: f1 = -Σx (accuracy-like), f2 = Σ w·x (cost-like, w ≥ 1).
    The exact front (by enumeration of 65,536 genomes) is recovered within 3,000 evaluations."""
    from pymoo.core.problem import Problem
    from pymoo.optimize import minimize

    w = np.asarray([1, 2, 3, 1, 2, 5, 1, 4], dtype=float)

    def f(X):
        return np.stack([-X.sum(axis=1), X @ w], axis=1)

    class Toy(Problem):
        def __init__(self):
            super().__init__(n_var=8, n_obj=2, xl=np.zeros(8), xu=np.full(8, 3.0), vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            out["F"] = f(np.round(X))

    grid = np.asarray(list(itertools.product(range(4), repeat=8)), dtype=float)
    F = f(grid)
    true_front = {tuple(p) for p in F[non_dominated(F)]}
    res = minimize(Toy(), make_algorithm(population=40), ("n_eval", 3000), seed=1, verbose=False)
    found = {tuple(p) for p in res.F}
    assert len(found & true_front) >= 0.9 * len(true_front)
    assert hypervolume(res.F / [24, 76] + [0, 0]) >= 0.97 * hypervolume(
        np.asarray(sorted(true_front)) / [24, 76]
    )
