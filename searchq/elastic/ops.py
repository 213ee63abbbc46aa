"""Elastic forwards for Conv1d/Conv2d, Linear, BatchNorm and skippable blocks.

Only *producers* carry state (their active number of output channels and kernel size); every
reader slices its input dimension to the channels it actually receives, so a width change
propagates through BatchNorm, depthwise convs (groups = active channels), activations, residual
adds and the next layers without any bookkeeping. Weights are read through ``module.weight``,
so quantizer parametrizations on the same modules keep working.

Elastic kernel (Once-for-All, Cai et al. 2020): a smaller kernel is the centre crop of the next
larger one, passed through a learnable k²×k² transform initialised to identity, chained
largest → smallest; padding shrinks with the kernel so output shapes stay the same.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "ElasticModule",
    "active_kernel_weight",
    "make_elastic_block",
    "make_elastic_conv",
    "make_elastic_linear",
    "make_elastic_norm",
]

ElasticModule = nn.Module
_TRANSFORMS = "searchq_kernel_transforms"


def _tkey(big: int, small: int) -> str:
    return f"{big}to{small}"


def _crop(w: Tensor, k: int) -> Tensor:
    """Centre crop of the last (1 or 2) kernel dims to size k."""
    full = w.shape[-1]
    start = (full - k) // 2
    if w.dim() == 4:
        return w[..., start : start + k, start : start + k]
    return w[..., start : start + k]


def active_kernel_weight(module: Any, weight: Tensor) -> Tensor:
    """The weight at the module's active kernel size (crop + chained transforms)."""
    k = getattr(module, "sq_kernel", None)
    full = module.kernel_size[0]
    if k is None or k == full:
        return weight
    transforms = getattr(module, _TRANSFORMS)
    w = weight
    size = full
    while size > k:
        nxt = size - 2
        w = _crop(w, nxt)
        shape = w.shape
        flat = w.reshape(shape[0], shape[1], -1)
        w = (flat @ transforms[_tkey(size, nxt)]).reshape(shape)
        size = nxt
    return w


def _conv_forward(self: Any, x: Tensor) -> Tensor:
    weight: Tensor = self.weight
    bias: Tensor | None = self.bias
    k = getattr(self, "sq_kernel", None)
    full = self.kernel_size[0]
    if k is not None and k != full:
        weight = active_kernel_weight(self, weight)
    cin = x.shape[1]
    dw = self.sq_depthwise
    if dw:
        weight, groups = weight[:cin], cin
        if bias is not None:
            bias = bias[:cin]
    else:
        out = self.sq_out
        if out is not None:
            weight = weight[:out]
            if bias is not None:
                bias = bias[:out]
        groups = self.groups
        if weight.shape[1] * groups != cin:
            weight = weight[:, : cin // groups]
    padding: Any = self.padding
    if k is not None and k != full and self.sq_same_padding:
        padding = tuple((k // 2) * d for d in self.dilation)
    conv = F.conv2d if weight.dim() == 4 else F.conv1d
    return conv(x, weight, bias, self.stride, padding, self.dilation, groups)


def _linear_forward(self: Any, x: Tensor) -> Tensor:
    weight: Tensor = self.weight
    bias: Tensor | None = self.bias
    out = self.sq_out
    if out is not None:
        weight = weight[:out]
        bias = bias[:out] if bias is not None else None
    if weight.shape[1] != x.shape[-1]:
        weight = weight[:, : x.shape[-1]]
    return F.linear(x, weight, bias)


def _norm_forward(self: Any, x: Tensor) -> Tensor:
    c = x.shape[1]
    if c == self.num_features:
        return _BatchNorm.forward(self, x)
    self._check_input_dim(x)
    momentum = 0.0 if self.momentum is None else self.momentum
    if self.training and self.track_running_stats and self.num_batches_tracked is not None:
        self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative moving average, as nn.BatchNorm does
            momentum = 1.0 / float(self.num_batches_tracked)
    use_batch = self.training or not self.track_running_stats
    rm = self.running_mean[:c] if self.running_mean is not None else None
    rv = self.running_var[:c] if self.running_var is not None else None
    w = self.weight[:c] if self.weight is not None else None
    b = self.bias[:c] if self.bias is not None else None
    return F.batch_norm(x, rm, rv, w, b, use_batch, momentum, self.eps)


def make_elastic_conv(module: Any, kernels: Sequence[int] = ()) -> None:
    """Give a Conv1d/Conv2d an elastic forward (output width; kernel sizes ``kernels``)."""
    module.sq_out = None
    module.sq_kernel = None
    module.sq_depthwise = module.groups > 1 and module.groups == module.in_channels
    full = module.kernel_size[0]
    module.sq_same_padding = all(
        p == (full // 2) * d for p, d in zip(module.padding, module.dilation, strict=True)
    )
    sizes = sorted({k for k in kernels if k < full}, reverse=True)
    if sizes:
        params = nn.ParameterDict()
        size = full
        for k in sizes:
            # every intermediate size on the chain gets a transform, even if not selectable
            while size > k:
                nxt = size - 2
                key = _tkey(size, nxt)
                if key not in params:
                    n = nxt ** (module.weight.dim() - 2)
                    params[key] = nn.Parameter(torch.eye(n, device=module.weight.device))
                size = nxt
        module.add_module(_TRANSFORMS, params)
    module.forward = types.MethodType(_conv_forward, module)


def make_elastic_linear(module: Any) -> None:
    module.sq_out = None
    module.forward = types.MethodType(_linear_forward, module)


def make_elastic_norm(module: Any) -> None:
    module.forward = types.MethodType(_norm_forward, module)


def _block_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
    if self.sq_skip:
        return args[0]
    return self.sq_inner_forward(*args, **kwargs)


def make_elastic_block(module: Any) -> None:
    """A residual block that returns its input unchanged while ``sq_skip`` is set."""
    module.sq_skip = False
    module.sq_inner_forward = module.forward
    module.forward = types.MethodType(_block_forward, module)


def restore_forward(module: nn.Module) -> None:
    """Drop an elastic forward (the class's own forward is used again)."""
    module.__dict__.pop("forward", None)
