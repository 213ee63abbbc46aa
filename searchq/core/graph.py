"""ModelGraph: what searchq knows about a model, built once from (model, example input).

* quantizable ops (Conv1d / Conv2d incl. depthwise, Linear) in execution order, with shapes,
  MACs and parameter counts;
* activation-quantizer groups: the ops that read the same tensor share one input quantizer
  (e.g. a ResNet block's ``conv1`` and its ``downsample`` conv);
* skippable residual blocks (a module whose output is ``f(x) + x`` with equal in/out shapes),
  grouped into stages by their parent module;
* channel groups: output channels that must shrink together for elastic width (residual adds
  tie a whole stage, a depthwise conv ties its input and output).

torch.fx is used when the model traces; otherwise forward hooks give ops, shapes and groups
(blocks and channel groups then stay empty) and :attr:`ModelGraph.notes` says why.
The fx analysis lives in :mod:`searchq.core._fx_analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from searchq.core._modes import eval_mode
from searchq.errors import UnsupportedModelError

__all__ = [
    "ActivationGroup",
    "ChannelGroup",
    "ModelGraph",
    "OpInfo",
    "ResidualBlock",
    "op_kind",
]

QUANTIZABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)
# Leaf modules with weights that searchq does not quantize; named in the notes.
_NOT_ANALYSED = (
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Embedding,
    nn.EmbeddingBag,
    nn.LSTM,
    nn.GRU,
    nn.RNN,
    nn.MultiheadAttention,
    nn.Bilinear,
)


def op_kind(module: nn.Module) -> str | None:
    """``conv1d``, ``conv2d``, ``depthwise_conv1d``, ``depthwise_conv2d``, ``linear`` or None."""
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        dim = "1d" if isinstance(module, nn.Conv1d) else "2d"
        dw = module.groups > 1 and module.groups == module.in_channels
        return f"depthwise_conv{dim}" if dw else f"conv{dim}"
    return None


@dataclass(frozen=True)
class OpInfo:
    """One quantizable op. Shapes exclude the batch dimension; MACs are per sample."""

    name: str
    kind: str
    module_type: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    groups: int
    weight_numel: int
    bias_numel: int
    macs: int
    input_group: str
    calls: int = 1

    @property
    def is_depthwise(self) -> bool:
        return self.kind.startswith("depthwise")

    @property
    def hw_type(self) -> str:
        """The op type a :class:`~searchq.core.hardware.HardwareSpec` has rules for."""
        if self.kind == "linear":
            return "linear"
        return "depthwise_conv" if self.is_depthwise else "conv"

    @property
    def params(self) -> int:
        return self.weight_numel + self.bias_numel

    @property
    def weight_qname(self) -> str:
        return f"{self.name}.weight"


@dataclass(frozen=True)
class ActivationGroup:
    """One input-activation quantizer shared by every op that reads the same tensor."""

    qname: str
    consumers: tuple[str, ...]
    source: str
    shape: tuple[int, ...]
    from_input: bool = False  # reads a model input directly (NNCF's quantize_inputs)
    source_module: str | None = None  # the module whose output this is, if any
    source_call: int = 0  # which call of source_module (modules called more than once)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class ResidualBlock:
    """A block ``y = f(x) + x`` (possibly followed by an activation) with equal in/out shape."""

    name: str
    module: str | None
    stage: str
    ops: tuple[str, ...]
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ChannelGroup:
    """Output channels of ``producers`` that must keep one width, and the ops reading them."""

    id: int
    channels: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    depthwise: tuple[str, ...]
    norms: tuple[str, ...]
    rigid: bool
    reason: str | None = None


@dataclass(frozen=True)
class ModelGraph:
    ops: tuple[OpInfo, ...]
    activation_groups: tuple[ActivationGroup, ...]
    blocks: tuple[ResidualBlock, ...] = ()
    channel_groups: tuple[ChannelGroup, ...] = ()
    notes: tuple[str, ...] = ()
    method: str = "fx"
    input_shape: tuple[int, ...] = ()
    module_types: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _by_name: dict[str, OpInfo] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({op.name: op for op in self.ops})

    # -- lookup ---------------------------------------------------------------------------
    def op(self, name: str) -> OpInfo:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{name!r} is not a quantizable op of this model") from None

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops)

    @property
    def weight_qnames(self) -> tuple[str, ...]:
        return tuple(op.weight_qname for op in self.ops)

    @property
    def activation_qnames(self) -> tuple[str, ...]:
        return tuple(g.qname for g in self.activation_groups)

    def activation_group(self, qname: str) -> ActivationGroup:
        for g in self.activation_groups:
            if g.qname == qname:
                return g
        raise KeyError(f"{qname!r} is not an activation quantizer of this model")

    @property
    def total_macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def total_weights(self) -> int:
        return sum(op.weight_numel for op in self.ops)

    def summary(self) -> str:
        rows = [f"{'op':34s} {'kind':18s} {'in':>16s} {'out':>16s} {'MACs':>10s} {'params':>8s}"]
        for op in self.ops:
            rows.append(
                f"{op.name:34s} {op.kind:18s} {str(list(op.in_shape)):>16s} "
                f"{str(list(op.out_shape)):>16s} {op.macs:>10d} {op.params:>8d}"
            )
        rows.append(f"total MACs {self.total_macs}, weights {self.total_weights}")
        rows.extend(f"note: {n}" for n in self.notes)
        return "\n".join(rows)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def build(cls, model: nn.Module, example_input: Tensor | Sequence[Tensor]) -> ModelGraph:
        """Analyse ``model`` on ``example_input`` (a tensor or a tuple of positional tensors)."""
        from searchq.core import _fx_analysis, _hook_analysis

        args = _as_args(example_input)
        with eval_mode(model), torch.no_grad():
            try:
                result = _fx_analysis.analyse(model, args)
            except _fx_analysis.TraceError as exc:
                result = _hook_analysis.analyse(model, args)
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                result.notes.insert(
                    0,
                    f"torch.fx could not trace the model ({reason}); used forward hooks: "
                    "residual blocks and channel groups were not analysed",
                )
        notes = list(result.notes)
        quantizable_names = {op.name for op in result.ops}
        for name, mod in model.named_modules():
            if isinstance(mod, _NOT_ANALYSED):
                notes.append(
                    f"{name} ({type(mod).__name__}) is not analysed: searchq quantizes "
                    "Conv1d, Conv2d and Linear only; it stays in floating point"
                )
            elif isinstance(mod, QUANTIZABLE) and name not in quantizable_names:
                notes.append(
                    f"{name} ({type(mod).__name__}) is never called as a module in forward "
                    "(e.g. its weight is used functionally); it is not quantized"
                )
        if not result.ops:
            kinds = sorted({type(m).__name__ for m in model.modules() if m is not model})
            raise UnsupportedModelError(
                f"model {type(model).__name__} has no quantizable layer (found modules "
                f"{kinds[:8]}); searchq needs at least one Conv1d, Conv2d or Linear"
            )
        return cls(
            ops=tuple(result.ops),
            activation_groups=tuple(result.groups),
            blocks=tuple(result.blocks),
            channel_groups=tuple(result.channel_groups),
            notes=tuple(notes),
            method=result.method,
            input_shape=tuple(args[0].shape[1:]) if args else (),
            module_types={name: type(m).__name__ for name, m in model.named_modules()},
        )


def _as_args(example_input: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    if isinstance(example_input, Tensor):
        return (example_input,)
    if isinstance(example_input, (tuple, list)) and all(
        isinstance(t, Tensor) for t in example_input
    ):
        return tuple(example_input)
    raise UnsupportedModelError(
        f"example input of type {type(example_input).__name__} is not supported; pass a tensor "
        "or a tuple of tensors (one batch of the model's positional inputs)"
    )


def conv_macs(module: nn.Module, out_shape: Sequence[int]) -> int:
    """MACs per sample of a Conv1d/Conv2d: out elements × (C_in / groups) × kernel area."""
    assert isinstance(module, (nn.Conv1d, nn.Conv2d))
    per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
    return math.prod(out_shape) * per_output


def linear_macs(module: nn.Linear, in_shape: Sequence[int]) -> int:
    """MACs per sample of a Linear: in_features × out_features × the leading (token) dims."""
    lead = math.prod(in_shape[:-1]) if len(in_shape) > 1 else 1
    return lead * module.in_features * module.out_features


def make_op(
    name: str, module: nn.Module, in_shape: Sequence[int], out_shape: Sequence[int], group: str
) -> OpInfo:
    kind = op_kind(module)
    assert kind is not None
    weight: Tensor = module.weight  # type: ignore[assignment]
    bias = getattr(module, "bias", None)
    if isinstance(module, nn.Linear):
        macs = linear_macs(module, in_shape)
        kernel: tuple[int, ...] = ()
        stride: tuple[int, ...] = ()
        groups, cin, cout = 1, module.in_features, module.out_features
    else:
        assert isinstance(module, (nn.Conv1d, nn.Conv2d))
        macs = conv_macs(module, out_shape)
        kernel, stride = tuple(module.kernel_size), tuple(module.stride)
        groups, cin, cout = module.groups, module.in_channels, module.out_channels
    return OpInfo(
        name=name,
        kind=kind,
        module_type=type(module).__name__,
        in_shape=tuple(int(s) for s in in_shape),
        out_shape=tuple(int(s) for s in out_shape),
        in_channels=cin,
        out_channels=cout,
        kernel_size=kernel,
        stride=stride,
        groups=groups,
        weight_numel=weight.numel(),
        bias_numel=bias.numel() if bias is not None else 0,
        macs=macs,
        input_group=group,
    )
