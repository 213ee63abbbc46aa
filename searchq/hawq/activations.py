"""Activation sensitivity for HAWQ (HAWQ-V2, Dong et al. 2020, §3.3).

NNCF 2.x scores only weight noise: Ω_i(b) = avgTrace(H_W_i) · ‖W_i − Q_b(W_i)‖². But the
bit-complexity budget also counts activation bits, which NNCF derives from the weights' bits —
so an allocator that sees only weight noise lowers activation bits for free. searchq adds the
second-order term of the activation noise as well:

    Ω_a(b) = avgTrace(H_x_a) · Σ ‖x_a − Q_b(x_a)‖²

with ``H_x_a`` the Hessian of the same loss with respect to the tensor ``x_a`` that activation
quantizer ``a`` reads (over the same Hessian samples), and the noise summed over those samples
with the quantizer's initialised range at ``b`` bits. Both terms are ½·Δᵀ H Δ under the same
isotropy assumption, in units of loss, so they add.

The trace: when the model has few outputs per sample (classification), the exact Gauss–Newton
trace tr(Jᵀ H_out J) from one backward pass per output (batched) — equal to the Hessian trace
for networks that are piecewise linear after the quantizer (ReLU, conv, eval BN, pooling), no
probes and no variance; otherwise Hutchinson on perturbations δ_a added where the quantizer
sits (the consumers' forward pre-hooks), with ``probes`` probes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from searchq.core.quant import FakeQuantizer
from searchq.errors import ConfigError
from searchq.hawq.gauss_newton import EXACT_OUTPUTS, output_curvature
from searchq.hawq.hutchinson import _rademacher

__all__ = ["ActivationSensitivity", "activation_sensitivity"]


@dataclass(frozen=True)
class ActivationSensitivity:
    """Per activation quantizer: average Hessian trace ± standard error and noise per bits."""

    names: tuple[str, ...]
    mean: np.ndarray
    stderr: np.ndarray
    noise: dict[str, dict[int, float]]
    probes: int
    seconds: float

    def omega(self) -> dict[str, dict[int, float]]:
        """Ω_a(b) = max(trace, 0) · noise_a(b) (negative curvature is not scored as a gain)."""
        return {
            n: {b: max(float(t), 0.0) * v for b, v in self.noise[n].items()}
            for n, t in zip(self.names, self.mean, strict=True)
        }

    def to_dict(self) -> dict[str, object]:
        omega = self.omega()
        return {
            "probes": self.probes,
            "seconds": self.seconds,
            "per_quantizer": {
                n: {"mean": float(m), "stderr": float(e), "omega": omega[n]}
                for n, m, e in zip(self.names, self.mean, self.stderr, strict=True)
            },
        }


@contextmanager
def _perturbed(
    consumers: Mapping[str, Sequence[nn.Module]],
) -> Iterator[tuple[dict[str, Tensor], dict[str, Tensor]]]:
    """Within the block, a forward adds a zero leaf δ_a (created at a's first consumer, with that
    input's shape) to the first input of every consumer of activation ``a``, and records the
    input itself: yields ``(deltas, inputs)``, filled by the forward."""
    deltas: dict[str, Tensor] = {}
    inputs: dict[str, Tensor] = {}

    def hook_for(name: str) -> Callable[[nn.Module, tuple], tuple]:
        def hook(_module: nn.Module, args: tuple) -> tuple:
            x = args[0]
            if name not in deltas:
                inputs[name] = x.detach().clone()
                deltas[name] = torch.zeros_like(x, requires_grad=True)
            elif deltas[name].shape != x.shape:
                raise ConfigError(
                    f"activation quantizer {name}: its consumers read tensors of different "
                    f"shapes ({tuple(deltas[name].shape)} vs {tuple(x.shape)}); set "
                    "activation_sensitivity to false for this model"
                )
            return (x + deltas[name], *args[1:])

        return hook

    handles = [
        m.register_forward_pre_hook(hook_for(name))
        for name, mods in consumers.items()
        for m in mods
    ]
    try:
        yield deltas, inputs
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def _noise(quantizer: FakeQuantizer, x: Tensor, bits: Sequence[int]) -> dict[int, float]:
    """Σ ‖x − Q_b(x)‖² per bits; ``quantizer`` is the caller's private, enabled copy."""
    out = {}
    for b in bits:
        quantizer.set_bits(b)
        out[int(b)] = float((x - quantizer(x)).pow(2).sum())
    return out


def activation_sensitivity(
    model: nn.Module,
    consumers: Mapping[str, Sequence[nn.Module]],
    quantizers: Mapping[str, FakeQuantizer],
    bits: Mapping[str, Sequence[int]],
    batches: Sequence[tuple[Tensor, Tensor]],
    criterion: Callable[[Tensor, Tensor], Tensor],
    *,
    probes: int = 4,
    seed: int = 0,
) -> ActivationSensitivity:
    """Traces w.r.t. the quantized activations and their noise per allowed bits.

    ``consumers[name]`` are the modules whose first input activation quantizer ``name``
    quantizes; ``quantizers[name]`` its (range-initialised) quantizer; ``bits[name]`` the bits to
    score. The model must run in float (quantizers disabled) — the caller's job; it runs in eval
    mode. With at most ``EXACT_OUTPUTS`` outputs per sample the trace is the exact Gauss–Newton
    trace (see :func:`_gauss_newton`; ``probes`` unused, standard error 0); otherwise Hutchinson
    with ``probes`` probes in one batched double backward per batch.
    """
    if probes < 1:
        raise ConfigError(f"activation probes {probes} must be >= 1", key="activation_probes")
    start = time.perf_counter()
    names = tuple(consumers)
    gen = torch.Generator().manual_seed(seed + 7919)  # not the weight probes' stream
    total = sum(int(x.shape[0]) for x, _ in batches)
    numel = dict.fromkeys(names, 0)
    noise = {n: dict.fromkeys((int(b) for b in bits[n]), 0.0) for n in names}
    scorers = {n: copy.deepcopy(quantizers[n]) for n in names}  # set_bits on copies only
    for q in scorers.values():
        q.enabled = True
    rows: np.ndarray | None = None
    was_training = model.training
    model.eval()
    try:
        for x, y in batches:
            share = float(x.shape[0]) / total
            with _perturbed(consumers) as (perturbation, seen):
                out = model(x)
            missing = sorted(set(names) - set(seen))
            if missing:
                raise ConfigError(
                    f"activation quantizers {missing[:3]} saw no input during the Hessian pass; "
                    "set activation_sensitivity to false for this model"
                )
            for n in names:
                numel[n] += seen[n].numel()
                for b, v in _noise(scorers[n], seen[n], bits[n]).items():
                    noise[n][b] += v
            deltas = [perturbation[n] for n in names]
            if out[0].numel() <= EXACT_OUTPUTS:
                part = _gauss_newton(out, y, deltas, criterion)[None]
            else:
                part = _hutchinson(criterion(out, y), deltas, probes, gen)
            rows = share * part if rows is None else rows + share * part
    finally:
        model.train(was_training)
    assert rows is not None
    # rows hold traces over the whole tensors; the sensitivity uses the average per element
    rows = rows / np.asarray([max(numel[n], 1) for n in names], dtype=np.float64)
    mean = rows.mean(0)
    if len(rows) > 1:
        err = rows.std(0, ddof=1) / np.sqrt(len(rows))
    else:
        err = np.zeros(len(names))
    return ActivationSensitivity(
        names=names,
        mean=mean,
        stderr=err,
        noise=noise,
        probes=len(rows),
        seconds=time.perf_counter() - start,
    )


def _gauss_newton(
    out: Tensor,
    y: Tensor,
    deltas: Sequence[Tensor],
    criterion: Callable[[Tensor, Tensor], Tensor],
) -> np.ndarray:
    """Exact tr(Jᵀ H_out J) per activation, J = ∂out/∂x_a, H_out = ∂²loss/∂out².

    For networks that are piecewise linear between the activation and the output (ReLU / ReLU6,
    conv, linear, eval-mode BatchNorm, pooling, additions) this IS the Hessian trace; otherwise
    it is its positive-curvature Gauss–Newton part. Assumes a per-sample loss (cross-entropy,
    MSE, …): H_out is block-diagonal over samples. Cost: D backward passes through the model
    for D outputs per sample (batched), no probes, no variance.
    """
    curvature = output_curvature(out, y, criterion)
    if curvature is None:  # loss linear in the outputs: no curvature
        return np.zeros(len(deltas))
    lam, cot = curvature
    grads = torch.autograd.grad(out, deltas, cot, is_grads_batched=True, allow_unused=True)
    trace = np.zeros(len(deltas))
    for i, gr in enumerate(grads):
        if gr is not None:
            per = gr.pow(2).flatten(2).sum(2)  # (d, n): ‖Jᵀ u_c‖² per sample
            trace[i] = float((per * lam.T).sum())
    return trace


def _hutchinson(
    loss: Tensor, deltas: Sequence[Tensor], probes: int, gen: torch.Generator
) -> np.ndarray:
    """``probes`` × activations Hutchinson estimates of tr(H_x) (one double backward)."""
    grads = torch.autograd.grad(loss, deltas, create_graph=True, allow_unused=True)
    rows = np.zeros((probes, len(deltas)))
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    if not live:
        return rows
    vs = [torch.stack([_rademacher(deltas[i], gen) for _ in range(probes)]) for i in live]
    hv = _double_backward([grads[i] for i in live], [deltas[i] for i in live], vs)
    for k, i in enumerate(live):
        rows[:, i] = (vs[k] * hv[k]).flatten(1).sum(1).detach().numpy()
    return rows


def _double_backward(
    grads: Sequence[Tensor], leaves: Sequence[Tensor], vectors: Sequence[Tensor]
) -> Sequence[Tensor]:
    try:
        return torch.autograd.grad(grads, leaves, vectors, is_grads_batched=True)
    except RuntimeError:  # an op without a vmap rule: one probe at a time
        k = vectors[0].shape[0]
        outs = [
            torch.autograd.grad(grads, leaves, [v[j] for v in vectors], retain_graph=j < k - 1)
            for j in range(k)
        ]
        return [torch.stack([o[i] for o in outs]) for i in range(len(leaves))]
