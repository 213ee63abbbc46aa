"""Supernet: the user's model with elastic width / kernel / depth, subnet activation, MACs and
extraction of standalone subnets with truly smaller tensors."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from searchq.core._param import original_weight
from searchq.core.graph import ModelGraph, OpInfo
from searchq.elastic import ops
from searchq.elastic.reorder import reorder_group
from searchq.elastic.space import ElasticSpace, SubnetConfig

__all__ = ["Supernet"]


class Supernet:
    """Wraps ``model`` in place: every Conv/Linear/BatchNorm gets an elastic forward, skippable
    blocks can be bypassed, and :meth:`activate` selects a subnet."""

    def __init__(
        self,
        model: nn.Module,
        example_input: Tensor,
        *,
        dims: Iterable[str] = ("width", "depth", "kernel"),
        space_options: Mapping[str, Any] | None = None,
        graph: ModelGraph | None = None,
    ) -> None:
        self.model = model
        self.graph = graph or ModelGraph.build(model, example_input)
        self.space = ElasticSpace.build(self.graph, dims=dims, **dict(space_options or {}))
        self.modules = dict(model.named_modules())
        for name, mod in self.modules.items():
            if isinstance(mod, (nn.Conv1d, nn.Conv2d)):
                ops.make_elastic_conv(mod, self.space.kernels.get(name, ()))
            elif isinstance(mod, nn.Linear):
                ops.make_elastic_linear(mod)
            elif isinstance(mod, _BatchNorm):
                ops.make_elastic_norm(mod)
        for name in self.space.blocks:
            ops.make_elastic_block(self.modules[name])
        self._group_of_reader: dict[str, str] = {}
        self._group_of_writer: dict[str, str] = {}
        self._group_of_norm: dict[str, str] = {}
        for key, g in self.space.widths.items():
            for n in g.consumers:
                self._group_of_reader[n] = key
            for n in g.depthwise:
                self._group_of_reader[n] = key
                self._group_of_writer[n] = key
            for n in g.producers:
                self._group_of_writer[n] = key
            for n in g.norms:
                self._group_of_norm[n] = key
        self.config = self.space.maximal()

    # -- configs ------------------------------------------------------------------------------
    def maximal(self) -> SubnetConfig:
        return self.space.maximal()

    def minimal(self, **indicators: int) -> SubnetConfig:
        return self.space.minimal(**indicators)

    def sample(self, rng: np.random.Generator, **kwargs: Any) -> SubnetConfig:
        return self.space.sample(rng, **kwargs)

    def search_space(self) -> dict[str, Any]:
        return self.space.to_dict()

    def activate(self, config: SubnetConfig | Mapping[str, Any]) -> SubnetConfig:
        cfg = config if isinstance(config, SubnetConfig) else SubnetConfig.from_dict(config)
        cfg = self.space.validate(cfg)
        for key, g in self.space.widths.items():
            width = cfg.width[key]
            for name in g.producers:
                self.modules[name].sq_out = None if width == g.max else width  # type: ignore[assignment]
        for name, k in cfg.kernel.items():
            self.modules[name].sq_kernel = k
        skipped = set(cfg.depth)
        for name in self.space.blocks:
            self.modules[name].sq_skip = name in skipped
        self.config = cfg
        return cfg

    @torch.no_grad()
    def reorganize(self, kind: str = "L1", external: Mapping[str, Tensor] | None = None) -> None:
        """Sort every elastic group's channels by importance (the function is unchanged)."""
        for g in self.space.widths.values():
            reorder_group(self.model, g, kind, external)

    # -- costs ----------------------------------------------------------------------------------
    def _skipped(self, op: str, cfg: SubnetConfig) -> bool:
        return any(op.startswith(b + ".") for b in cfg.depth)

    def _dims(self, op: OpInfo, cfg: SubnetConfig) -> tuple[int, int, int]:
        """(out channels, in channels, kernel) of ``op`` in the subnet ``cfg``."""
        out, cin = op.out_channels, op.in_channels
        if op.name in self._group_of_writer:
            out = cfg.width[self._group_of_writer[op.name]]
        if op.name in self._group_of_reader:
            cin = cfg.width[self._group_of_reader[op.name]]
        kernel = cfg.kernel.get(op.name, op.kernel_size[0] if op.kernel_size else 1)
        return out, cin, kernel

    def op_macs(self, config: SubnetConfig | None = None) -> dict[str, int]:
        """MACs per sample of every op of a subnet (skipped ops are absent)."""
        cfg = self.space.validate(config) if config is not None else self.config
        out: dict[str, int] = {}
        for op in self.graph.ops:
            if self._skipped(op.name, cfg):
                continue
            cout, cin, k = self._dims(op, cfg)
            if op.kind == "linear":
                lead = math.prod(op.in_shape[:-1]) if len(op.in_shape) > 1 else 1
                out[op.name] = lead * cin * cout * op.calls
            else:
                per_out = 1 if op.is_depthwise else cin // op.groups
                spatial = math.prod(op.out_shape[1:])
                out[op.name] = spatial * cout * per_out * k ** len(op.kernel_size)
        return out

    def macs(self, config: SubnetConfig | None = None) -> int:
        """MACs per sample of a subnet (the same formula as ModelGraph's)."""
        return sum(self.op_macs(config).values())

    def params(self, config: SubnetConfig | None = None) -> int:
        """Weights + biases of the quantizable ops of a subnet."""
        cfg = self.space.validate(config) if config is not None else self.config
        total = 0
        for op in self.graph.ops:
            if self._skipped(op.name, cfg):
                continue
            out, cin, k = self._dims(op, cfg)
            if op.kind == "linear":
                total += out * cin + (out if op.bias_numel else 0)
            else:
                per_out = 1 if op.is_depthwise else cin // op.groups
                total += out * per_out * k ** len(op.kernel_size) + (out if op.bias_numel else 0)
        return total

    # -- extraction -------------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, config: SubnetConfig | Mapping[str, Any] | None = None) -> nn.Module:
        """A standalone copy of the subnet: smaller tensors, plain modules, no elastic state."""
        cfg = self.activate(config) if config is not None else self.config
        model = copy.deepcopy(self.model)
        modules = dict(model.named_modules())
        replace: dict[str, nn.Module] = {}
        for name in cfg.depth:
            replace[name] = nn.Identity()
        for op in self.graph.ops:
            if self._skipped(op.name, cfg):
                continue
            replace[op.name] = self._plain_op(modules[op.name], op, cfg)
        for name, key in self._group_of_norm.items():
            if not any(name.startswith(b + ".") for b in cfg.depth):
                replace[name] = _sliced_norm(modules[name], cfg.width[key])
        for name, new in sorted(replace.items(), key=lambda kv: kv[0].count(".")):
            _set_module(model, name, new)
        for mod in model.modules():  # anything left elastic becomes a plain module again
            ops.restore_forward(mod)
            for attr in (
                "sq_out",
                "sq_kernel",
                "sq_depthwise",
                "sq_same_padding",
                "sq_skip",
                "sq_inner_forward",
            ):
                mod.__dict__.pop(attr, None)
            if "searchq_kernel_transforms" in mod._modules:
                del mod._modules["searchq_kernel_transforms"]
        return model

    def _plain_op(self, mod: Any, op: OpInfo, cfg: SubnetConfig) -> nn.Module:
        out, cin, k = self._dims(op, cfg)
        weight = original_weight(mod)
        bias = getattr(mod, "bias", None)
        if isinstance(mod, nn.Linear):
            lin = nn.Linear(cin, out, bias=bias is not None)
            lin.weight.copy_(weight[:out, :cin])
            if bias is not None:
                lin.bias.copy_(bias[:out])
            return lin
        assert isinstance(mod, (nn.Conv1d, nn.Conv2d))
        w = ops.active_kernel_weight(mod, weight) if k != mod.kernel_size[0] else weight
        groups = cin if op.is_depthwise else mod.groups
        w = w[:out] if op.is_depthwise else w[:out, : cin // groups]
        padding: Any = mod.padding
        if k != mod.kernel_size[0] and mod.sq_same_padding:  # type: ignore[attr-defined]
            padding = tuple((k // 2) * d for d in mod.dilation)
        cls: Any = nn.Conv2d if isinstance(mod, nn.Conv2d) else nn.Conv1d
        new = cls(
            cin,
            out,
            k,
            stride=mod.stride,
            padding=padding,
            dilation=mod.dilation,
            groups=groups,
            bias=bias is not None,
        )
        new.weight.copy_(w)
        if bias is not None:
            new.bias.copy_(bias[:out])
        return new


def _sliced_norm(bn: Any, c: int) -> nn.Module:
    new: Any = type(bn)(
        c,
        eps=bn.eps,
        momentum=bn.momentum,
        affine=bn.affine,
        track_running_stats=bn.track_running_stats,
    )
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[:c])
            new.bias.copy_(bn.bias[:c])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[:c])
            new.running_var.copy_(bn.running_var[:c])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    new.train(bn.training)
    return new


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
