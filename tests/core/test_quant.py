from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from searchq.core.quant import (
    FakeQuantizer,
    QuantizerSpec,
    fake_quantize,
    integer_range,
    quantize_weight,
)
from searchq.errors import ConfigError

floats = st.floats(-50, 50, allow_nan=False, width=32)


def reference_symmetric(xs, bits, signed, narrow, t):
    """Slow pure-Python reference of the symmetric formula, element by element."""
    qmin, qmax = (
        (-(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    )
    step = t / qmax
    return [min(max(round(x / step), qmin), qmax) * step for x in xs], step


def reference_asymmetric(xs, bits, low, rng):
    levels = 2**bits - 1
    step = rng / levels
    zero = round(-low / step)
    return [(min(max(round(x / step) + zero, 0), levels) - zero) * step for x in xs], step


def _close_or_tie(got, want, xs, step) -> bool:
    """Equal, or (float32 vs float64 rounding an exact .5 tie differently) one step apart."""
    for g, w, x in zip(got, want, xs, strict=True):
        if abs(g - w) <= 1e-4 * max(1.0, abs(w)):
            continue
        frac = abs(x / step) % 1.0
        if not (abs(frac - 0.5) < 1e-3 and abs(abs(g - w) - step) < 1e-3 * max(1, step)):
            return False
    return True


@settings(max_examples=150, deadline=None)
@given(
    xs=st.lists(floats, min_size=1, max_size=40),
    bits=st.integers(2, 8),
    signed=st.booleans(),
    narrow=st.booleans(),
    t=st.floats(0.05, 40),
)
def test_symmetric_matches_reference(xs, bits, signed, narrow, t):
    x = torch.tensor(xs, dtype=torch.float32)
    got = fake_quantize(
        x,
        bits=bits,
        mode="symmetric",
        signed=signed,
        narrow_range=narrow,
        threshold=torch.tensor(t, dtype=torch.float32),
    ).tolist()
    want, step = reference_symmetric(xs, bits, signed, narrow, float(torch.tensor(t)))
    assert _close_or_tie(got, want, xs, step)


@settings(max_examples=150, deadline=None)
@given(
    xs=st.lists(floats, min_size=1, max_size=40),
    bits=st.integers(2, 8),
    low=st.floats(-20, 0),
    rng=st.floats(0.1, 40),
)
def test_asymmetric_matches_reference(xs, bits, low, rng):
    x = torch.tensor(xs, dtype=torch.float32)
    low32, rng32 = float(torch.tensor(low)), float(torch.tensor(rng))
    got = fake_quantize(
        x,
        bits=bits,
        mode="asymmetric",
        signed=False,
        input_low=torch.tensor(low32),
        input_range=torch.tensor(rng32),
    ).tolist()
    want, step = reference_asymmetric(xs, bits, low32, rng32)
    assert _close_or_tie(got, want, xs, step)


@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(2, 10),
    mode=st.sampled_from(["symmetric", "asymmetric"]),
    seed=st.integers(0, 99),
)
def test_at_most_two_to_the_bits_levels(bits, mode, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5000, generator=g) * 3
    q = FakeQuantizer(QuantizerSpec(bits=bits, mode=mode))
    q.init_range(x.min(), x.max())
    levels = torch.unique(q(x))
    assert len(levels) <= 2**bits


def test_zero_is_exact_in_asymmetric_mode():
    q = FakeQuantizer(QuantizerSpec(bits=4, mode="asymmetric"))
    q.init_range(torch.tensor(-0.37), torch.tensor(2.91))
    assert q(torch.zeros(3)).abs().max().item() == 0.0


def test_straight_through_gradient():
    q = FakeQuantizer(QuantizerSpec(bits=4, mode="symmetric", signed=True))
    q.init_range(torch.tensor(-1.0), torch.tensor(1.0))
    x = torch.tensor([-3.0, -0.5, 0.1, 0.7, 2.5], requires_grad=True)
    q(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert q.threshold.grad is not None and q.threshold.grad.abs().sum() > 0


def test_per_channel_uses_each_channel_range():
    w = torch.stack([torch.linspace(-1, 1, 9), torch.linspace(-100, 100, 9)])
    out = quantize_weight(w, QuantizerSpec(bits=8, per_channel=True, signed=True))
    err = (out - w).abs().amax(dim=1)
    assert err[0] <= 0.5 / 127 + 1e-6  # small channel quantized with its own small step
    assert err[1] <= 50 / 127 + 1e-4


def test_set_bits_in_place_changes_levels_without_reinit():
    x = torch.linspace(-1, 1, 1001)
    q = FakeQuantizer(QuantizerSpec(bits=8, signed=True))
    q.init_range(x.min(), x.max())
    t = q.threshold.detach().clone()
    assert len(torch.unique(q(x))) > 200
    q.set_bits(2)
    assert len(torch.unique(q(x))) <= 4
    assert torch.equal(q.threshold.detach(), t)


def test_uninitialised_or_disabled_quantizer_is_identity():
    x = torch.randn(10)
    q = FakeQuantizer(QuantizerSpec(bits=2))
    assert torch.equal(q(x), x)
    q.init_range(x.min(), x.max())
    q.enabled = False
    assert torch.equal(q(x), x)


def test_unsigned_range_and_sign_detection():
    assert integer_range(8, "symmetric", False) == (0, 255)
    assert integer_range(8, "symmetric", True, narrow_range=True) == (-127, 127)
    assert integer_range(4, "asymmetric", True) == (0, 15)
    q = FakeQuantizer(QuantizerSpec(bits=8))
    q.init_range(torch.tensor(0.0), torch.tensor(6.0))
    assert q.signed is False
    assert math.isclose(q(torch.tensor([6.0])).item(), 6.0, rel_tol=1e-6)


@pytest.mark.parametrize("bits", [1, 17, 2.5, True])
def test_bad_bits_rejected(bits):
    with pytest.raises(ConfigError, match="bits"):
        QuantizerSpec(bits=bits)


def test_sixteen_bits_is_nearly_lossless():
    x = torch.randn(1000)
    out = quantize_weight(x, QuantizerSpec(bits=16, signed=True))
    assert (out - x).abs().max() < x.abs().max() / 2**15
