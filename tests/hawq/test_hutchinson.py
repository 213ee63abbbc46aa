"""Traces against the exact Hessian of a tiny net, stop rules, and the traces file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from searchq.errors import CheckpointError, ConfigError
from searchq.hawq.hutchinson import TraceEstimate, estimate_traces


def _exact_average_traces(model, params, x, y, crit) -> np.ndarray:
    sizes = [w.numel() for _, w in params]
    flat = torch.cat([w.detach().reshape(-1) for _, w in params])

    def loss(f):
        parts = dict(
            (n, p.reshape(w.shape)) for (n, w), p in zip(params, torch.split(f, sizes), strict=True)
        )
        return crit(functional_call(model, parts, (x,)), y)

    hess = torch.autograd.functional.hessian(loss, flat)
    out, start = [], 0
    for n in sizes:
        out.append(float(hess[start : start + n, start : start + n].diagonal().sum()) / n)
        start += n
    return np.asarray(out)


def _params(model):
    return [
        ("0.weight", model[0].weight),
        ("3.weight", model[3].weight),
        ("6.weight", model[6].weight),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_settings_within_ten_percent_of_exact(seed, make_tiny):
    model, x, y, crit = make_tiny(seed)
    params = _params(model)
    assert sum(w.numel() for _, w in params) < 2000
    exact = _exact_average_traces(model, params, x, y, crit)
    est = estimate_traces(model, params, [(x, y)], crit, seed=0)
    assert est.stop_reason == "stderr"
    assert np.all(np.abs(est.mean / exact - 1) < 0.10), (est.mean, exact)


def test_batches_average_like_the_full_loss(tiny):
    model, x, y, crit = tiny
    params = _params(model)
    one = estimate_traces(
        model,
        params,
        [(x, y)],
        crit,
        stop="stderr",
        max_iterations=32,
        min_iterations=32,
        deflation_rank=0,
        seed=3,
    )
    split = estimate_traces(
        model,
        params,
        [(x[:48], y[:48]), (x[48:], y[48:])],
        crit,
        stop="stderr",
        max_iterations=32,
        min_iterations=32,
        deflation_rank=0,
        seed=3,
    )
    # same probes, the Hessian of the mean loss is the mean of the halves' Hessians
    assert np.allclose(one.mean, split.mean, rtol=1e-4)


def test_plain_hutchinson_is_unbiased_and_deflation_reduces_error(tiny):
    model, x, y, crit = tiny
    params = _params(model)
    exact = _exact_average_traces(model, params, x, y, crit)
    plain = estimate_traces(
        model,
        params,
        [(x, y)],
        crit,
        deflation_rank=0,
        stop="stderr",
        stderr_fraction=1e-9,
        max_iterations=600,
        seed=1,
    )
    z = (plain.mean - exact) / plain.stderr
    assert np.all(np.abs(z) < 4)
    deflated = estimate_traces(
        model,
        params,
        [(x, y)],
        crit,
        deflation_rank=16,
        stderr_fraction=1e-9,
        max_iterations=64,
        seed=1,
    )
    assert np.all(deflated.stderr < plain.stderr * np.sqrt(600 / 64))


def test_tolerance_rule_uses_abs_denominator(tiny):
    model, x, y, crit = tiny
    est = estimate_traces(
        model,
        _params(model),
        [(x, y)],
        crit,
        stop="tolerance",
        tolerance=0.05,
        deflation_rank=0,
        seed=0,
    )
    assert est.stop_reason == "tolerance" and 16 <= est.iterations < 200
    # negate the loss: traces turn negative, NNCF's (x - prev)/(prev + eps) would stop at once
    neg = estimate_traces(
        model,
        _params(model),
        [(x, y)],
        lambda o, t: -crit(o, t),
        stop="tolerance",
        tolerance=1e-6,
        deflation_rank=0,
        seed=0,
        max_iterations=40,
    )
    assert neg.iterations == 40 and np.all(neg.mean < 0)


def test_iter_number_caps_and_bad_arguments(tiny):
    model, x, y, crit = tiny
    est = estimate_traces(
        model, _params(model), [(x, y)], crit, max_iterations=5, deflation_rank=0, seed=0
    )
    assert est.iterations == 5 and est.stop_reason == "iter_number" and est.hvps == 5
    with pytest.raises(ConfigError, match="stop rule"):
        estimate_traces(model, _params(model), [(x, y)], crit, stop="never")
    with pytest.raises(ConfigError, match="iter_number"):
        estimate_traces(model, _params(model), [(x, y)], crit, max_iterations=0)


def test_seeded_and_restores_model_state(tiny):
    model, x, y, crit = tiny
    model.train()
    a = estimate_traces(model, _params(model), [(x, y)], crit, max_iterations=16, seed=7)
    b = estimate_traces(model, _params(model), [(x, y)], crit, max_iterations=16, seed=7)
    assert np.array_equal(a.mean, b.mean) and model.training
    model.eval()


def test_traces_file_round_trip(tmp_path, tiny):
    model, x, y, crit = tiny
    est = estimate_traces(model, _params(model), [(x, y)], crit, max_iterations=16, seed=0)
    for name in ("t.json", "t.pt"):
        est.save(tmp_path / name)
        back = TraceEstimate.load(tmp_path / name)
        assert back.names == est.names
        assert np.allclose(back.mean, est.mean) and np.allclose(back.stderr, est.stderr)
    torch.save(torch.tensor([1.0, 2.0, 3.0]), tmp_path / "nncf.pt")  # NNCF's own format
    assert list(TraceEstimate.load(tmp_path / "nncf.pt").mean) == [1.0, 2.0, 3.0]
    (tmp_path / "bad.pt").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot read traces"):
        TraceEstimate.load(tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="not found"):
        TraceEstimate.load(tmp_path / "missing.json")
