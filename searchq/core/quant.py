"""Fake quantization with a straight-through gradient.

Symmetric (threshold ``t``, integer range ``[qmin, qmax]``)::

    s   = t / qmax
    x_q = clamp(round(x / s), qmin, qmax) * s

with ``qmin = -2^(b-1)`` (``-2^(b-1) + 1`` for the narrow range NNCF uses for weights),
``qmax = 2^(b-1) - 1`` when signed and ``[0, 2^b - 1]`` when unsigned.

Asymmetric (``input_low``, ``input_range``), zero aligned to an integer so 0.0 is exact::

    s   = input_range / (2^b - 1)
    z   = round(-input_low / s)
    x_q = (clamp(round(x / s) + z, 0, 2^b - 1) - z) * s

``round`` passes the gradient straight through (Bengio et al., 2013); the clamp stops it
outside the range, and the range parameters receive the LSQ-style gradient of the formula.
The quantizer stores the *range* and derives the step from the bits at every call, so the bits
of an existing quantizer change in place (:meth:`FakeQuantizer.set_bits`) without re-init.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from searchq.errors import CheckpointError, ConfigError

__all__ = [
    "FakeQuantizer",
    "QuantizerSpec",
    "fake_quantize",
    "integer_range",
    "quantize_weight",
]

MIN_BITS, MAX_BITS = 2, 16
_EPS = 1e-12


@dataclass(frozen=True)
class QuantizerSpec:
    """What a quantizer computes (not its statistics)."""

    bits: int = 8
    mode: str = "symmetric"
    signed: bool | None = None  # None: decided by range init (signed iff the observed min < 0)
    per_channel: bool = False
    narrow_range: bool = False
    ch_axis: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int):
            raise ConfigError(f"bits {self.bits!r} must be an integer", key="bits")
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise ConfigError(
                f"bits {self.bits} is out of range; use {MIN_BITS}..{MAX_BITS}", key="bits"
            )
        if self.mode not in ("symmetric", "asymmetric"):
            raise ConfigError(
                f"mode {self.mode!r} is not one of ['symmetric', 'asymmetric']", key="mode"
            )

    def with_bits(self, bits: int) -> QuantizerSpec:
        return replace(self, bits=bits)


def integer_range(bits: int, mode: str, signed: bool, narrow_range: bool = False) -> tuple:
    """The integer levels ``(qmin, qmax)`` a quantizer maps onto."""
    if mode == "asymmetric" or not signed:
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)) + int(narrow_range), 2 ** (bits - 1) - 1


def _round_ste(x: Tensor) -> Tensor:
    return x + (torch.round(x) - x).detach()


def _broadcast(p: Tensor, x: Tensor, ch_axis: int) -> Tensor:
    if p.dim() == 0 or p.numel() == 1:
        return p.reshape(())
    shape = [1] * x.dim()
    shape[ch_axis] = p.numel()
    return p.reshape(shape)


def fake_quantize(
    x: Tensor,
    *,
    bits: int,
    mode: str,
    signed: bool,
    narrow_range: bool = False,
    threshold: Tensor | None = None,
    input_low: Tensor | None = None,
    input_range: Tensor | None = None,
    ch_axis: int = 0,
) -> Tensor:
    """Quantize-dequantize ``x`` (see the module docstring for the formulas)."""
    qmin, qmax = integer_range(bits, mode, signed, narrow_range)
    if mode == "symmetric":
        assert threshold is not None
        t = _broadcast(threshold, x, ch_axis).abs().clamp_min(_EPS)
        step = t / qmax
        return torch.clamp(_round_ste(x / step), qmin, qmax) * step
    assert input_low is not None and input_range is not None
    low = _broadcast(input_low, x, ch_axis)
    rng = _broadcast(input_range, x, ch_axis).abs().clamp_min(_EPS)
    step = rng / qmax
    zero = _round_ste(-low / step)
    return (torch.clamp(_round_ste(x / step) + zero, qmin, qmax) - zero) * step


class FakeQuantizer(nn.Module):
    """A fake-quantization module with learnable range and mutable bits.

    Until :meth:`init_range` has run, the quantizer passes its input through unchanged.
    """

    initialized: Tensor

    def __init__(self, spec: QuantizerSpec, *, num_channels: int = 1) -> None:
        super().__init__()
        self.spec = spec
        self.bits = spec.bits
        self.mode = spec.mode
        self.signed = True if spec.signed is None else spec.signed
        self._signed_fixed = spec.signed is not None
        self.narrow_range = spec.narrow_range
        self.ch_axis = spec.ch_axis
        self.enabled = True
        n = num_channels if spec.per_channel else 1
        if self.mode == "symmetric":
            self.threshold = nn.Parameter(torch.ones(n))
        else:
            self.input_low = nn.Parameter(torch.zeros(n))
            self.input_range = nn.Parameter(torch.ones(n))
        self.register_buffer("initialized", torch.tensor(False))

    @property
    def per_channel(self) -> bool:
        return self.spec.per_channel

    def set_bits(self, bits: int) -> None:
        if isinstance(bits, bool) or not MIN_BITS <= int(bits) <= MAX_BITS:
            raise ConfigError(f"bits {bits!r} is out of range; use {MIN_BITS}..{MAX_BITS}")
        self.bits = int(bits)

    @torch.no_grad()
    def init_range(self, low: Tensor, high: Tensor) -> None:
        """Set the range from observed minima / maxima (scalars or one per channel)."""
        low = torch.as_tensor(low, dtype=torch.float32).reshape(-1)
        high = torch.as_tensor(high, dtype=torch.float32).reshape(-1)
        low, high = torch.minimum(low, high), torch.maximum(low, high)
        if not self._signed_fixed:
            self.signed = bool((low < 0).any())
        if self.mode == "symmetric":
            t = torch.maximum(low.abs(), high.abs()) if self.signed else high.clamp_min(0)
            self.threshold.copy_(t.clamp_min(_EPS).expand_as(self.threshold))
        else:
            # Include 0 in the range so that zero padding / ReLU zeros stay exact.
            low = low.clamp_max(0)
            high = high.clamp_min(0)
            self.input_low.copy_(low.expand_as(self.input_low))
            self.input_range.copy_((high - low).clamp_min(_EPS).expand_as(self.input_range))
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled or not bool(self.initialized):
            return x
        if self.mode == "symmetric":
            return fake_quantize(
                x,
                bits=self.bits,
                mode="symmetric",
                signed=self.signed,
                narrow_range=self.narrow_range,
                threshold=self.threshold,
                ch_axis=self.ch_axis,
            )
        return fake_quantize(
            x,
            bits=self.bits,
            mode="asymmetric",
            signed=self.signed,
            input_low=self.input_low,
            input_range=self.input_range,
            ch_axis=self.ch_axis,
        )

    # bits, signedness and narrow range are plain attributes (set by set_bits / init_range);
    # saved in state dicts as ``_extra_state`` so that a reloaded quantizer computes the same.
    def get_extra_state(self) -> dict[str, int | bool]:
        return {"bits": self.bits, "signed": self.signed, "narrow_range": self.narrow_range}

    def set_extra_state(self, state: Any) -> None:
        if not isinstance(state, dict) or not {"bits", "signed", "narrow_range"} <= set(state):
            raise CheckpointError(
                f"quantizer state {state!r} lacks bits / signed / narrow_range; the checkpoint "
                "was not written by this searchq version"
            )
        self.set_bits(int(state["bits"]))
        self.signed = bool(state["signed"])
        self.narrow_range = bool(state["narrow_range"])

    def extra_repr(self) -> str:
        gran = "per_channel" if self.per_channel else "per_tensor"
        sign = "signed" if self.signed else "unsigned"
        return f"bits={self.bits}, {self.mode}, {sign}, {gran}, enabled={self.enabled}"


def channel_min_max(x: Tensor, ch_axis: int | None) -> tuple[Tensor, Tensor]:
    """Minimum and maximum of ``x`` overall (``ch_axis=None``) or per channel."""
    x = x.detach().float()
    if ch_axis is None:
        return x.min().reshape(1), x.max().reshape(1)
    flat = x.transpose(0, ch_axis).reshape(x.shape[ch_axis], -1)
    return flat.min(dim=1).values, flat.max(dim=1).values


@torch.no_grad()
def quantize_weight(weight: Tensor, spec: QuantizerSpec) -> Tensor:
    """``Q_b(W)``: the weight after min-max range init and fake quantization with ``spec``."""
    q = FakeQuantizer(spec, num_channels=weight.shape[spec.ch_axis])
    low, high = channel_min_max(weight, spec.ch_axis if spec.per_channel else None)
    q.init_range(low, high)
    return q(weight)
