"""Exact per-layer Hessian traces for piecewise-linear networks, without probes.

For a per-sample loss ℓ(f(x; W)) the Hessian w.r.t. the weights splits into the Gauss–Newton
part Jᵀ H_out J and a residual Σ_k ∂ℓ/∂f_k · ∂²f_k/∂W². Within ONE layer's block the residual
vanishes when the network after that layer is piecewise linear in its input (ReLU / ReLU6 /
leaky ReLU, max / average pooling, convolutions and linear layers with fixed weights,
eval-mode BatchNorm, additions, concatenation, reshapes): f is then ``g(W_i a_i)`` with g
piecewise linear, so ∂²f/∂W_i² = 0 almost everywhere. The per-layer trace HAWQ needs is then

    tr(H_ii) = Σ_n Σ_c λ_nc ‖∂(u_ncᵀ f_n)/∂W_i‖²,     H_out(n) = Σ_c λ_nc u_nc u_ncᵀ

— exact for the given samples, no probes, no variance. Cost: one forward and one backward per
output *direction* (the C eigenvectors of each sample's output Hessian, batched), from which
every layer's per-sample weight gradient ``Σ_p g_p ⊗ a_p`` is formed from the layer's input
patches a_p and output gradients g_p — as an explicit product, or through Gram matrices
(``Σ_pq (g_p·g_q)(a_p·a_q)``) when the layer has few output positions.

Whether a model qualifies is read off the autograd graph of its forward (:func:`nonlinear_ops`):
every op between a quantized layer's output and the model's output must be in a list of
piecewise-linear ops, and products (mul, matmul, conv) may have only one operand that depends on
the data. Others (GELU, SiLU, sigmoid gates, softmax attention, LayerNorm) keep Hutchinson;
forced, this module then computes the Gauss–Newton trace, which is the positive-semidefinite
part of the Hessian trace rather than the trace itself.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from searchq.hawq.hutchinson import TraceEstimate

__all__ = [
    "EXACT_OUTPUTS",
    "exact_traces",
    "gauss_newton_traces",
    "nonlinear_ops",
    "output_curvature",
]

EXACT_OUTPUTS = 128  # outputs per sample up to which "auto" uses the exact traces

# Autograd node names (without the trailing version digit) of ops that are linear in each
# data-dependent operand, and of piecewise-linear elementwise / pooling ops.
_LINEAR = {
    "Add", "Sub", "Neg", "Sum", "Mean", "View", "UnsafeView", "Reshape", "ReshapeAlias",
    "Permute", "Transpose", "T", "Cat", "Stack", "Slice", "Select", "Index", "Squeeze",
    "Unsqueeze", "Expand", "Clone", "Alias", "AsStrided", "ConstantPadNd", "Split",
    "SplitWithSizes", "Unbind", "Flatten", "AvgPool1D", "AvgPool2D", "AdaptiveAvgPool1D",
    "AdaptiveAvgPool2D", "NativeBatchNorm", "CudnnBatchNorm", "MiopenBatchNorm",
    "NativeBatchNormLegitNoTraining", "ToCopy", "Narrow", "Repeat", "Roll", "Flip",
    "ReflectionPad1D", "ReflectionPad2D", "ReplicationPad1D", "ReplicationPad2D", "Contiguous",
    "PixelShuffle", "PixelUnshuffle", "ChannelShuffle", "UpsampleNearest1D", "UpsampleNearest2D",
    "UpsampleLinear1D", "UpsampleBilinear2D",
}  # fmt: skip
_PIECEWISE = {
    "Relu", "Hardtanh", "LeakyRelu", "Threshold", "Clamp", "ClampMin", "ClampMax", "Abs",
    "MaxPool1DWithIndices", "MaxPool2DWithIndices", "AdaptiveMaxPool1D", "AdaptiveMaxPool2D",
    "Maximum", "Minimum", "Max", "Min", "Amax", "Amin", "Prelu", "PreluKernel", "Hardsigmoid",
}  # fmt: skip
# products: linear while at most one operand depends on the data (the other is a weight)
_PRODUCTS = {"Mul", "Div", "Mm", "Bmm", "Addmm", "Addmv", "Mv", "Matmul", "Convolution",
             "MkldnnConvolution", "Einsum", "Linear", "Dot"}  # fmt: skip
_DATA_SOURCES = {"Convolution", "MkldnnConvolution", "Addmm", "Mm", "Bmm", "Matmul", "Linear",
                 "Addmv", "Mv", "Embedding"}  # fmt: skip


def _kind(node: Any) -> str:
    return re.sub(r"Backward\d*$", "", type(node).__name__)


def nonlinear_ops(out: Tensor) -> list[str]:
    """Ops in ``out``'s autograd graph that stop the network from being piecewise linear in its
    data path (empty: the Gauss–Newton block traces are the Hessian block traces).

    A node *carries data* when a layer product (conv / matmul) is at or below it; weight-only
    subgraphs (a parametrization, a transpose of a weight) are ignored.
    """
    if out.grad_fn is None:
        return []
    carries: dict[Any, bool] = {}
    bad: list[str] = []
    order: list[Any] = []
    stack: list[tuple[Any, bool]] = [(out.grad_fn, False)]
    seen: set[Any] = set()
    while stack:  # iterative post-order: children before parents
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for child, _ in node.next_functions:
            if child is not None and child not in seen:
                stack.append((child, False))
    for node in order:
        kind = _kind(node)
        children = [c for c, _ in node.next_functions if c is not None]
        data = [carries.get(c, False) for c in children]
        carries[node] = kind in _DATA_SOURCES or any(data)
        if not any(data) or kind == "AccumulateGrad":
            continue  # a weight-only subgraph (or the first layer's own product)
        if kind in _LINEAR or kind in _PIECEWISE:
            continue
        if kind in _PRODUCTS:
            ok = sum(data) <= 1 and not (kind == "Div" and len(data) > 1 and data[1])
            if ok:
                continue
        bad.append(type(node).__name__)
    return sorted(set(bad))


def output_curvature(
    out: Tensor, y: Tensor, criterion: Callable[[Tensor, Tensor], Tensor]
) -> tuple[Tensor, Tensor] | None:
    """Each sample's output Hessian ∂²loss/∂out² as eigenpairs: ``(lam, cot)`` with ``lam`` of
    shape (n, d) and ``cot`` of shape (d, *out.shape), ``cot[c]`` holding every sample's c-th
    eigenvector — the cotangents whose backward passes give Jᵀu. None when the loss is linear in
    the outputs. Assumes a per-sample loss (H_out block-diagonal over samples)."""
    n = out.shape[0]
    flat = out.detach().reshape(n, -1)
    d = flat.shape[1]
    z = flat.clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(criterion(z.reshape(out.shape), y), z, create_graph=True)
        if not g.requires_grad:
            return None
        eye = torch.eye(d, dtype=z.dtype).unsqueeze(1).expand(d, n, d)
        (cols,) = torch.autograd.grad(g, z, eye, is_grads_batched=True)  # (d, n, d)
    if not bool(cols.any()):  # e.g. NLL on log-probabilities: zero second derivative
        return None
    h = cols.permute(1, 2, 0)
    lam, vec = torch.linalg.eigh((h + h.transpose(1, 2)) / 2)  # (n, d), (n, d, d)
    return lam, vec.permute(2, 0, 1).reshape(d, *out.shape)


_SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def unsupported_layers(owners: Sequence[nn.Module]) -> list[str]:
    return sorted({type(m).__name__ for m in owners if not isinstance(m, _SUPPORTED)})


def exact_traces(
    model: nn.Module,
    layers: Sequence[tuple[str, nn.Module, Tensor]],
    batches: Sequence[tuple[Tensor, Tensor]],
    criterion: Callable[[Tensor, Tensor], Tensor],
    *,
    require_piecewise_linear: bool = True,
    max_outputs: int | None = EXACT_OUTPUTS,
) -> TraceEstimate:
    """:func:`gauss_newton_traces` as a :class:`TraceEstimate` of average traces for the
    ``(name, module, weight)`` layers: standard errors 0 (exact for the samples, no probes), the
    sampling error over the samples in ``data_stderr``."""
    names = tuple(n for n, _, _ in layers)
    sums, info = gauss_newton_traces(
        model,
        [m for _, m, _ in layers],
        [w for _, _, w in layers],
        batches,
        criterion,
        require_piecewise_linear=require_piecewise_linear,
        max_outputs=max_outputs,
    )
    numels = np.asarray([w.numel() for _, _, w in layers], dtype=np.float64)
    mean = sums / numels
    return TraceEstimate(
        names=names,
        mean=mean,
        stderr=np.zeros(len(names)),
        data_stderr=np.asarray(info["data_stderr"]) / numels,
        iterations=0,
        stop_reason="exact",
        seconds=float(info["seconds"]),
        history=mean[None],
        method="gauss_newton" if info["nonlinear_ops"] else "exact",
        backward_directions=int(info["backward_directions"]),
    )


def gauss_newton_traces(
    model: nn.Module,
    owners: Sequence[nn.Module],
    weights: Sequence[Tensor],
    batches: Sequence[tuple[Tensor, Tensor]],
    criterion: Callable[[Tensor, Tensor], Tensor],
    *,
    require_piecewise_linear: bool = True,
    max_outputs: int | None = None,
    memory_floats: int = 1 << 24,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-layer trace sums tr(Jᵢᵀ H_out Jᵢ) (not yet divided by the weight counts), averaged
    over ``batches`` like the loss, for the ``weights`` of the modules ``owners`` (Linear,
    Conv1d, Conv2d, each called once per forward, with ``module.weight`` equal to the weight).

    ``info["data_stderr"]`` is the standard error of the mean over the samples (how much another
    draw of as many samples would move the traces; probes add no error here).

    Raises :class:`ValueError` naming the reason when the model does not qualify (a non
    piecewise-linear op with ``require_piecewise_linear``, an unsupported layer, a layer run
    twice, a transformed weight, a loss linear in the outputs, more than ``max_outputs`` outputs
    per sample). ``memory_floats`` bounds the
    per-sample gradient blocks formed at once. Returns the traces and run information.
    """
    bad = unsupported_layers(owners)
    if bad:
        raise ValueError(f"layer types {bad} have no per-sample gradient rule here")
    per_sample: list[np.ndarray] = []  # (n, layers) per batch: each sample's own traces
    start = time.perf_counter()
    passes = 0
    nonlinear: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for x, y in batches:
            out, captured = _forward_capturing(model, owners, x)
            if max_outputs is not None and out[0].numel() > max_outputs:
                raise ValueError(
                    f"the model has {out[0].numel()} outputs per sample (exact up to {max_outputs})"
                )
            _check_calls(owners, captured)
            if not per_sample:  # the same graph every batch: its checks once
                nonlinear = _check_forward(out, owners, weights, captured, require_piecewise_linear)
            curvature = output_curvature(out, y, criterion)
            if curvature is None:
                raise ValueError("the loss is linear in the model's outputs (no curvature)")
            lam, cot = curvature
            keep = torch.nonzero(lam.max(0).values > 1e-12 * float(lam.max().clamp_min(0)))
            keep = keep.flatten()  # eigen-directions with curvature in some sample
            zs = [captured[i][0][1] for i in range(len(owners))]
            patches = [_LayerPatches(m, captured[i][0][0]) for i, m in enumerate(owners)]
            rows = torch.zeros(int(x.shape[0]), len(owners), dtype=torch.float64)
            per_direction = sum(int(z[0].numel()) for z in zs) * int(x.shape[0])
            chunk = max(1, min(len(keep), memory_floats // max(per_direction, 1)))
            for lo in range(0, len(keep), chunk):
                idx = keep[lo : lo + chunk]
                grads = torch.autograd.grad(
                    out, zs, cot[idx], retain_graph=True, is_grads_batched=True
                )
                passes += len(idx)
                weight = lam.T[idx]  # (c, n)
                for i, (layer, gz) in enumerate(zip(patches, grads, strict=True)):
                    norms = layer.sq_norms(gz, memory_floats)
                    rows[:, i] += (norms * weight).sum(0).double()
            # the loss averages the batch; a sample's own trace is its term × the batch size
            per_sample.append(rows.numpy() * int(x.shape[0]))
            del out, zs, captured, patches
    finally:
        model.train(was_training)
    samples = np.concatenate(per_sample)
    traces = samples.mean(0)
    spread = samples.std(0, ddof=1) / np.sqrt(len(samples)) if len(samples) > 1 else traces * 0
    info = {
        "data_stderr": spread,
        "backward_directions": passes,
        "seconds": time.perf_counter() - start,
        "nonlinear_ops": nonlinear,
    }
    return traces, info


def _forward_capturing(
    model: nn.Module, owners: Sequence[nn.Module], x: Tensor
) -> tuple[Tensor, list[list[tuple[Tensor, Tensor]]]]:
    """The output, and per owner every call's (input, output) — the output still in the graph."""
    captured: list[list[tuple[Tensor, Tensor]]] = [[] for _ in owners]

    def hook_for(i: int) -> Callable[..., None]:
        def hook(_module: nn.Module, args: tuple, output: Tensor) -> None:
            captured[i].append((args[0].detach(), output))

        return hook

    handles = [m.register_forward_hook(hook_for(i)) for i, m in enumerate(owners)]
    try:
        with torch.enable_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, captured


def _check_calls(
    owners: Sequence[nn.Module], captured: Sequence[Sequence[tuple[Tensor, Tensor]]]
) -> None:
    for m, calls in zip(owners, captured, strict=True):
        if len(calls) != 1:
            raise ValueError(
                f"a {type(m).__name__} ran {len(calls)} times in one forward (needs once)"
            )


def _check_forward(
    out: Tensor,
    owners: Sequence[nn.Module],
    weights: Sequence[Tensor],
    captured: Sequence[Sequence[tuple[Tensor, Tensor]]],
    require_piecewise_linear: bool,
) -> list[str]:
    """Raises when the forward does not qualify; returns the non-piecewise-linear ops."""
    for i, m in enumerate(owners):
        w = m.weight
        assert isinstance(w, Tensor)
        if w is not weights[i] and not (w.shape == weights[i].shape and torch.equal(w, weights[i])):
            raise ValueError(f"a {type(m).__name__}'s weight is transformed in the forward")
        if not captured[i][0][1].requires_grad:
            raise ValueError(f"a {type(m).__name__}'s output does not require grad")
    bad = nonlinear_ops(out)
    if bad and require_piecewise_linear:
        raise ValueError(f"the network is not piecewise linear (ops {bad[:4]})")
    return bad


def _patches(module: nn.Module, a: Tensor) -> Tensor:
    """(n, C_in·k, P): the input patch of each output position (conv) or the input rows."""
    n = a.shape[0]
    if isinstance(module, nn.Linear):
        return a.reshape(n, -1, a.shape[-1]).transpose(1, 2)
    conv = module
    assert isinstance(conv, (nn.Conv1d, nn.Conv2d))
    one_d = isinstance(conv, nn.Conv1d)
    if one_d:
        a = a.unsqueeze(2)
    kernel = (1, *conv.kernel_size) if one_d else tuple(conv.kernel_size)
    stride = (1, *conv.stride) if one_d else tuple(conv.stride)
    dilation = (1, *conv.dilation) if one_d else tuple(conv.dilation)
    if isinstance(conv.padding, str):  # "valid" / "same" (torch puts the odd pixel right)
        if conv.padding == "valid":
            pads = [(0, 0)] * len(conv.kernel_size)
        else:
            pads = []
            for k, d in zip(conv.kernel_size, conv.dilation, strict=True):
                t = d * (k - 1)
                pads.append((t // 2, t - t // 2))
    else:
        pads = [(p, p) for p in conv.padding]
    if one_d:
        pads = [(0, 0), *pads]
    flat = [v for lo_hi in reversed(pads) for v in lo_hi]
    if any(flat):
        mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
        a = F.pad(a, flat, mode=mode)
    return F.unfold(a, kernel, dilation=dilation, stride=stride)


class _LayerPatches:
    """One layer's input patches for one batch, grouped, and their Gram matrices when the Gram
    form is the cheaper one: built once per batch, used for every chunk of directions."""

    def __init__(self, module: nn.Module, a: Tensor) -> None:
        u = _patches(module, a)  # (n, K, P)
        self.linear = isinstance(module, nn.Linear)
        self.groups = 1 if self.linear else int(module.groups)  # type: ignore[arg-type]
        n, k_all, self.p = u.shape
        self.k = k_all // self.groups
        weight = module.weight
        assert isinstance(weight, Tensor)
        self.o = int(weight.shape[0]) // self.groups
        self.u = u.reshape(n, self.groups, self.k, self.p)
        # few positions: ‖Σ_p g_p ⊗ a_p‖² = Σ_pq (g_p·g_q)(a_p·a_q) costs P²(O + K), not P·O·K
        ghost = self.p * self.p * (self.o + self.k) < self.p * self.o * self.k
        self.gram = torch.einsum("ngkp,ngkq->ngpq", self.u, self.u) if ghost else None

    def sq_norms(self, gz: Tensor, memory_floats: int) -> Tensor:
        """‖∂(uᵀf_n)/∂W‖² for every (direction, sample): ``gz`` is (c, n, *output shape)."""
        c, n = gz.shape[:2]
        if self.linear:
            g = gz.reshape(c, n, -1, gz.shape[-1]).transpose(2, 3)  # (c, n, O, P)
        else:
            g = gz.reshape(c, n, gz.shape[2], -1)
        g = g.reshape(c, n, self.groups, self.o, self.p)
        out = []
        if self.gram is not None:
            step = max(1, memory_floats // max(n * self.groups * self.p * self.p, 1))
            for lo in range(0, c, step):
                gg = torch.einsum("cngop,cngoq->cngpq", g[lo : lo + step], g[lo : lo + step])
                out.append((gg * self.gram).sum((2, 3, 4)))
        else:
            step = max(1, memory_floats // max(n * self.groups * self.o * self.k, 1))
            for lo in range(0, c, step):
                w = torch.einsum("cngop,ngkp->cngok", g[lo : lo + step], self.u)
                out.append(w.pow(2).sum((2, 3, 4)))
        return torch.cat(out)
