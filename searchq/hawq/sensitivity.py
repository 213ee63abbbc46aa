"""HAWQ sensitivity Ω_i(b) = avgTrace_i · ‖W_i − Q_b(W_i)‖² (HAWQ-V2 eq. 5, NNCF's metric).

``Q_b`` is the quantizer the space really applies for ``b`` bits (mode, per-channel,
signedness, narrow range from the hardware preset), initialised min-max on the weight.
Negative average traces (non-convex directions) are clamped to 0: quantization noise there
cannot be scored as a gain.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from searchq.core.quant import quantize_weight
from searchq.core.space import QuantSpace

__all__ = ["quantization_noise", "sensitivities"]


@torch.no_grad()
def quantization_noise(
    space: QuantSpace, weights: Mapping[str, Tensor]
) -> dict[str, dict[int, float]]:
    """``‖W − Q_b(W)‖²`` for every weight quantizer and every bits value it may take."""
    out: dict[str, dict[int, float]] = {}
    for p in space.weight_points:
        w = weights[p.qname].detach().float()
        out[p.qname] = {b: float((w - quantize_weight(w, p.spec(b))).pow(2).sum()) for b in p.bits}
    return out


def sensitivities(
    traces: Mapping[str, float], noise: Mapping[str, Mapping[int, float]]
) -> dict[str, dict[int, float]]:
    """Ω per weight quantizer and bits."""
    return {
        q: {b: max(float(traces[q]), 0.0) * n for b, n in by_bits.items()}
        for q, by_bits in noise.items()
    }
