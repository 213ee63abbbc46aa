"""Each range initializer against a direct numpy computation of its definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchq.core.ranges import RANGE_INIT_TYPES, make_observer
from searchq.errors import ConfigError


def _batches(seed=0, n=5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, 5, 5, generator=g) * (i + 1) + 0.3 for i in range(n)]


def _run(init_type, batches, **kw):
    obs = make_observer(init_type, {"min_percentile": 1.0, "max_percentile": 97.0}, **kw)
    for b in batches:
        obs.update(b)
    lo, hi = obs.range()
    return lo.numpy(), hi.numpy()


def test_min_max():
    bs = _batches()
    a = np.concatenate([b.numpy().ravel() for b in bs])
    lo, hi = _run("min_max", bs, symmetric=False)
    assert np.allclose([lo[0], hi[0]], [a.min(), a.max()])


def test_min_max_symmetric_uses_abs_max():
    bs = _batches()
    a = np.concatenate([b.numpy().ravel() for b in bs])
    lo, hi = _run("min_max", bs, symmetric=True)
    assert np.isclose(hi[0], np.abs(a).max()) and np.isclose(lo[0], -np.abs(a).max())


def test_mean_min_max():
    bs = _batches()
    lo, hi = _run("mean_min_max", bs, symmetric=False)
    assert np.isclose(lo[0], np.mean([b.numpy().min() for b in bs]))
    assert np.isclose(hi[0], np.mean([b.numpy().max() for b in bs]))


def test_mean_min_max_per_channel():
    bs = _batches()
    lo, hi = _run("mean_min_max", bs, symmetric=False, ch_axis=1)
    want_lo = np.mean([b.numpy().min(axis=(0, 2, 3)) for b in bs], axis=0)
    want_hi = np.mean([b.numpy().max(axis=(0, 2, 3)) for b in bs], axis=0)
    assert np.allclose(lo, want_lo) and np.allclose(hi, want_hi)


def test_threesigma():
    bs = _batches()
    a = np.concatenate([b.numpy().ravel() for b in bs])
    med = np.median(a)
    sigma = 1.4826 * np.median(np.abs(a - med))
    lo, hi = _run("threesigma", bs, symmetric=False)
    # torch.median takes the lower middle element for even counts; allow that difference
    assert abs(lo[0] - (med - 3 * sigma)) < 0.02 and abs(hi[0] - (med + 3 * sigma)) < 0.02


def test_percentile():
    bs = _batches()
    a = np.concatenate([b.numpy().ravel() for b in bs])
    lo, hi = _run("percentile", bs, symmetric=False)
    assert np.isclose(lo[0], np.percentile(a, 1.0), atol=1e-4)
    assert np.isclose(hi[0], np.percentile(a, 97.0), atol=1e-4)


def test_mean_percentile():
    bs = _batches()
    lo, hi = _run("mean_percentile", bs, symmetric=False)
    assert np.isclose(lo[0], np.mean([np.percentile(b.numpy(), 1.0) for b in bs]), atol=1e-4)
    assert np.isclose(hi[0], np.mean([np.percentile(b.numpy(), 97.0) for b in bs]), atol=1e-4)


def test_mixed_min_max_per_sample_for_activations():
    bs = _batches()
    per_sample = np.concatenate([b.numpy().reshape(4, -1) for b in bs])
    lo, hi = _run("mixed_min_max", bs, symmetric=False)
    assert np.isclose(hi[0], per_sample.max(axis=1).mean())
    assert np.isclose(lo[0], per_sample.min(axis=1).mean())  # asymmetric: mean of minima
    lo_s, hi_s = _run("mixed_min_max", bs, symmetric=True)
    assert np.isclose(hi_s[0], np.abs(per_sample).max(axis=1).mean())


def test_mixed_min_max_is_plain_min_max_for_weights():
    w = torch.randn(8, 3, 3, 3)
    lo, hi = _run("mixed_min_max", [w], symmetric=False, weights=True)
    assert np.isclose(lo[0], w.min().item()) and np.isclose(hi[0], w.max().item())


@pytest.mark.parametrize("init_type", RANGE_INIT_TYPES)
def test_every_type_brackets_the_bulk_of_the_data(init_type):
    lo, hi = _run(init_type, _batches(), symmetric=False)
    assert lo[0] < 0.3 < hi[0]


def test_unknown_type_and_bad_percentiles():
    with pytest.raises(ConfigError, match="not one of"):
        make_observer("minmax")
    with pytest.raises(ConfigError, match="percentiles"):
        make_observer("percentile", {"min_percentile": 90, "max_percentile": 10})


def test_threesigma_falls_back_when_most_values_are_zero():
    relu = [torch.relu(b - 1.0) for b in _batches()]  # well over half the values are 0
    lo, hi = _run("threesigma", relu, symmetric=False)
    a = np.concatenate([b.numpy().ravel() for b in relu])
    assert np.isclose(lo[0], a.min()) and np.isclose(hi[0], a.max())
