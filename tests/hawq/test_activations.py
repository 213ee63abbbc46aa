"""Activation sensitivity: traces against the exact Hessian w.r.t. activations, noise, and the
allocator counting activation Ω."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchq.core.quant import FakeQuantizer, QuantizerSpec
from searchq.hawq import activations
from searchq.hawq.activations import activation_sensitivity


def _exact_activation_trace(model, module, x, y, crit) -> float:
    """tr(∂²L/∂a²) / numel for the first input ``a`` of ``module`` — the full Hessian."""
    seen = {}
    h = module.register_forward_pre_hook(lambda m, i: seen.setdefault("a", i[0].detach()))
    with torch.no_grad():
        model(x)
    h.remove()
    a0 = seen["a"]

    def loss(delta):
        handle = module.register_forward_pre_hook(lambda m, i: (i[0] + delta.reshape(a0.shape),))
        try:
            return crit(model(x), y)
        finally:
            handle.remove()

    hess = torch.autograd.functional.hessian(loss, torch.zeros(a0.numel()))
    return float(hess.diagonal().sum()) / a0.numel()


def _quantizer(x: torch.Tensor) -> FakeQuantizer:
    q = FakeQuantizer(QuantizerSpec(bits=8, mode="asymmetric"))
    q.init_range(x.min(), x.max())
    return q


def _setup(model, x, names):
    modules = dict(model.named_modules())
    consumers = {n: [modules[n]] for n in names}
    seen = {}
    hooks = [
        modules[n].register_forward_pre_hook(lambda m, i, n=n: seen.setdefault(n, i[0].detach()))
        for n in names
    ]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    quantizers = {n: _quantizer(seen[n]) for n in names}
    return consumers, quantizers, seen


@pytest.mark.parametrize("exact_path", [True, False])
def test_traces_match_the_exact_activation_hessian_of_a_relu_net(tiny, exact_path, monkeypatch):
    model, x, y, crit = tiny
    x, y = x[:16], y[:16]  # 16 samples: Hessians of 1,024 and 96 dimensions
    names = ["3", "6"]  # the second conv's input (4×4×4) and the classifier's input (96)
    consumers, quantizers, _ = _setup(model, x, names)
    if not exact_path:
        monkeypatch.setattr(activations, "EXACT_OUTPUTS", 0)
    got = activation_sensitivity(
        model, consumers, quantizers, {n: (4, 8) for n in names}, [(x, y)], crit, probes=400
    )
    modules = dict(model.named_modules())
    exact = np.asarray([_exact_activation_trace(model, modules[n], x, y, crit) for n in names])
    assert np.all(exact > 0)
    if exact_path:  # ReLU net, eval BN: Gauss–Newton == Hessian, no probes
        np.testing.assert_allclose(got.mean, exact, rtol=1e-4)
        assert np.all(got.stderr == 0)
    else:
        assert np.all(np.abs(got.mean / exact - 1) < 0.15), (got.mean, exact)
        assert np.all(np.abs(got.mean - exact) < 4 * got.stderr)


def test_batches_split_like_the_full_loss(tiny):
    model, x, y, crit = tiny
    consumers, quantizers, _ = _setup(model, x, ["3"])
    bits = {"3": (2, 4, 8)}
    one = activation_sensitivity(model, consumers, quantizers, bits, [(x, y)], crit)
    two = activation_sensitivity(
        model, consumers, quantizers, bits, [(x[:40], y[:40]), (x[40:], y[40:])], crit
    )
    np.testing.assert_allclose(one.mean, two.mean, rtol=1e-4)
    for b in (2, 4, 8):
        assert one.noise["3"][b] == pytest.approx(two.noise["3"][b], rel=1e-5)


def test_noise_is_the_quantizers_own_error_and_omega_scales_it(tiny):
    model, x, y, crit = tiny
    consumers, quantizers, seen = _setup(model, x, ["3"])
    got = activation_sensitivity(model, consumers, quantizers, {"3": (2, 4, 8)}, [(x, y)], crit)
    q = quantizers["3"]
    for b in (2, 4, 8):
        q.set_bits(b)
        with torch.no_grad():
            expect = float((seen["3"] - q(seen["3"])).pow(2).sum())
        assert got.noise["3"][b] == pytest.approx(expect, rel=1e-6)
    assert got.noise["3"][2] > got.noise["3"][4] > got.noise["3"][8] > 0
    omega = got.omega()["3"]
    assert omega[4] == pytest.approx(got.mean[0] * got.noise["3"][4])
    assert q.bits == 8  # the caller's quantizer is not changed
