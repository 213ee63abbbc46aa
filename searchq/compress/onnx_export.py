"""ONNX export of a model carrying searchq fake quantizers and sparsity masks.

Every enabled, initialised :class:`~searchq.core.quant.FakeQuantizer` becomes a
``QuantizeLinear → DequantizeLinear`` pair whose integer type has exactly the quantizer's bits,
with searchq's step and zero point (:mod:`searchq.core.quant`)::

    symmetric:  scale = t / qmax              zero_point = 0
    asymmetric: scale = input_range / (2^b-1)  zero_point = round(-input_low / scale)

signed symmetric → ``int<b>``, otherwise ``uint<b>``; per channel along the quantizer's
``ch_axis`` (0 for weights). ONNX computes ``(saturate(round(x / scale) + zp) - zp) * scale``,
which is searchq's formula as long as the saturation bounds are searchq's ``[qmin, qmax]``. They
are not for the narrow signed range (``qmin = -2^(b-1) + 1``): weights are clamped to
``qmin · scale`` before export (exact, no extra node), activations get a ``Max`` before the
``QuantizeLinear``. Weight masks and any other weight transforms are folded into the exported
weight, so masked weights are zeros in the initializer. Disabled or uninitialised quantizers
export as nothing.

Integer types: 8 bits from opset 13 (per-axis), 4 and 16 bits from opset 21 — all three run
in onnxruntime 1.31.1 on CPU. 2 bits (int2 / uint2) exist from opset 25, but onnxruntime 1.31.1
runs them only with graph optimisations disabled (its constant folding of a QuantizeLinear on an
int2 weight fails), so they are exported only when ``opset >= 25`` is asked for explicitly.
Other widths (3, 5–7, 9–15) have no ONNX type. A width that cannot be exported raises
:class:`~searchq.errors.ConfigError` naming the first quantizer (in execution order) that has it.

Route, with torch 2.13: ``torch.onnx.export(dynamo=True)`` (``torch.export`` → onnxscript),
on a deep copy of the model in which each quantizer is replaced by a module calling the custom op
``searchq::quantize_dequantize``, translated via ``custom_translation_table`` into the Q/DQ pair
of the right integer type. Not taken:

* ``torch.fake_quantize_per_{tensor,channel}_affine``: both the TorchScript symbolic and
  onnxscript's translation accept only the ranges (0, 255), (-128, 127) and (0, 127) — no 2/4/16
  bits, no narrow range;
* the TorchScript exporter (``dynamo=False``): deprecated, and stops at opset 20, before int4;
* writing the Q/DQ nodes into an exported float graph with the ``onnx`` helper API: the graph
  would have to be searched for the tensors each quantizer saw, after the exporter renamed and
  optimised them.

The deep copy (one extra copy of the parameters while exporting) means the caller's model is
never touched, so nothing can leak even when the export fails half-way. The copy is exported in
eval mode with a dynamic batch dimension; Q/DQ nodes and their scale / zero-point initializers
are named after searchq's quantizer names (``layer1.0.conv1.weight/QuantizeLinear``,
``layer1.0.conv1.input.scale``).
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from searchq.core.insert import _ACT_ATTR
from searchq.core.quant import _EPS, FakeQuantizer, integer_range
from searchq.core.sparsity import WeightMask
from searchq.errors import ConfigError, UnsupportedModelError

__all__ = ["DEFAULT_OPSET", "QDQParams", "export_onnx", "min_opset", "qdq_params"]

DEFAULT_OPSET = 18  # the opset torch's ONNX function library is written for: no version conversion
MIN_OPSET = 13  # per-axis QuantizeLinear
_BITS_SINCE = {8: 13, 4: 21, 16: 21, 2: 25}  # integer width -> first opset with that Q/DQ type
_OPT_IN_BITS = (2,)  # exported only with an explicit opset (see the module docstring)


@dataclass(frozen=True)
class QDQParams:
    """What one quantizer exports as: ``scale`` (float32, shape ``()`` or ``(C,)``) and the rest."""

    scale: Tensor
    zero_point: tuple[int, ...]
    axis: int
    qmin: int  # searchq's integer range; the ONNX type's range may start one lower (narrow)
    qmax: int
    bits: int

    @property
    def signed(self) -> bool:
        return self.qmin < 0

    @property
    def narrow(self) -> bool:
        return self.signed and self.qmin > -(2 ** (self.bits - 1))


def qdq_params(q: FakeQuantizer) -> QDQParams:
    """Scale and zero point of ``q``, computed in float32 exactly as its forward does."""
    qmin, qmax = integer_range(q.bits, q.mode, q.signed, q.narrow_range)
    with torch.no_grad():
        if q.mode == "symmetric":
            scale = q.threshold.detach().float().abs().clamp_min(_EPS) / qmax
            zero = torch.zeros_like(scale)
        else:
            scale = q.input_range.detach().float().abs().clamp_min(_EPS) / qmax
            zero = torch.round(-q.input_low.detach().float() / scale)
    per_tensor = scale.numel() == 1
    return QDQParams(
        scale=scale.reshape(()) if per_tensor else scale.reshape(-1),
        zero_point=tuple(int(z) for z in zero.reshape(-1).tolist()),
        axis=q.ch_axis,
        qmin=qmin,
        qmax=qmax,
        bits=q.bits,
    )


def min_opset(bits: int) -> int | None:
    """The first opset whose QuantizeLinear has a ``bits``-wide integer type (None: none has)."""
    return _BITS_SINCE.get(bits)


# -- the custom op the exporter translates into Q/DQ -------------------------------------------
@torch.library.custom_op("searchq::quantize_dequantize", mutates_args=())
def _quantize_dequantize(
    x: Tensor, scale: Tensor, zero_point: list[int], axis: int, bits: int, signed: bool
) -> Tensor:
    """ONNX's QuantizeLinear → DequantizeLinear with an ``int<bits>`` / ``uint<bits>`` type."""
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    shape = [-1 if d == axis and scale.dim() else 1 for d in range(x.dim())]
    s = scale.reshape(shape) if scale.dim() else scale
    z = torch.tensor(zero_point, dtype=x.dtype, device=x.device).reshape(s.shape)
    return (torch.clamp(torch.round(x / s) + z, lo, hi) - z) * s


@_quantize_dequantize.register_fake
def _(
    x: Tensor, scale: Tensor, zero_point: list[int], axis: int, bits: int, signed: bool
) -> Tensor:
    return torch.empty_like(x)


def _translation() -> Callable[..., Any]:
    import numpy as np
    import onnx_ir as ir
    from onnxscript import opset18

    op: Any = opset18  # its stubs predate int2 / int4 zero points

    types = {
        (2, True): ir.DataType.INT2,
        (4, True): ir.DataType.INT4,
        (8, True): ir.DataType.INT8,
        (16, True): ir.DataType.INT16,
        (2, False): ir.DataType.UINT2,
        (4, False): ir.DataType.UINT4,
        (8, False): ir.DataType.UINT8,
        (16, False): ir.DataType.UINT16,
    }

    def quantize_dequantize(
        x: Any, scale: Any, zero_point: Sequence[int], axis: int, bits: int, signed: bool
    ) -> Any:
        dtype = types[(bits, signed)]
        zp = np.array(zero_point, dtype=np.int64).astype(dtype.numpy())
        zp = zp.reshape(()) if zp.size == 1 else zp
        z = op.Constant(value=ir.tensor(zp, dtype=dtype))
        q = op.QuantizeLinear(x, scale, z, axis=axis)
        return op.DequantizeLinear(q, scale, z, axis=axis)

    return quantize_dequantize


class _QDQ(nn.Module):
    """Stands in for a FakeQuantizer in the exported copy."""

    scale: Tensor
    low: Tensor | None

    def __init__(self, p: QDQParams) -> None:
        super().__init__()
        self.p = p
        self.register_buffer("scale", p.scale.clone())
        # ONNX saturates at -2^(b-1); the narrow range stops one level higher.
        self.register_buffer("low", p.scale * p.qmin if p.narrow else None)

    def forward(self, x: Tensor) -> Tensor:
        p = self.p
        if self.low is not None:
            shape = [-1 if d == p.axis and self.low.dim() else 1 for d in range(x.dim())]
            x = torch.maximum(x, self.low.reshape(shape))
        return _quantize_dequantize(x, self.scale, list(p.zero_point), p.axis, p.bits, p.signed)


# -- finding the quantizers in the copy ----------------------------------------------------------
@dataclass
class _Site:
    name: str  # searchq's quantizer name: "<op>.weight", "<first consumer>.input", or a path
    quantizer: FakeQuantizer
    order: float  # first call in the example forward (inf: never called)

    @property
    def active(self) -> bool:
        return self.quantizer.enabled and bool(self.quantizer.initialized)


def _quantizer_of(transform: nn.Module) -> FakeQuantizer | None:
    if isinstance(transform, FakeQuantizer):
        return transform
    inner = getattr(transform, "quantizer", None)  # searchq.core.insert's weight parametrization
    return inner if isinstance(inner, FakeQuantizer) else None


def _find_sites(model: nn.Module, args: tuple[Tensor, ...]) -> list[_Site]:
    """Every quantizer with its searchq name, in the order the example forward first runs it."""
    names: dict[int, str] = {}
    quantizers: dict[int, FakeQuantizer] = {}
    consumers: dict[int, list[str]] = {}
    for path, mod in model.named_modules():
        if parametrize.is_parametrized(mod):
            for tname, chain in mod.parametrizations.items():
                for t in chain:
                    q = _quantizer_of(t)
                    if q is not None:
                        names.setdefault(id(q), f"{path}.{tname}" if path else tname)
                        quantizers[id(q)] = q
    for path, mod in model.named_modules(remove_duplicate=False):
        if isinstance(mod, FakeQuantizer) and id(mod) not in quantizers:
            quantizers[id(mod)] = mod
            names[id(mod)] = path
    calls: dict[int, int] = {}

    def called(m: nn.Module, _: Any) -> None:
        calls.setdefault(id(m), len(calls))

    handles = [q.register_forward_pre_hook(called) for q in quantizers.values()]
    for path, mod in model.named_modules():
        q = mod._modules.get(_ACT_ATTR)
        if isinstance(q, FakeQuantizer):
            consumers.setdefault(id(q), [])

            def seen(m: nn.Module, _: Any, _path: str = path, _q: int = id(q)) -> None:
                if _path not in consumers[_q]:
                    consumers[_q].append(_path)

            handles.append(mod.register_forward_pre_hook(seen))
    try:
        with torch.no_grad():
            model(*args)
    finally:
        for h in handles:
            h.remove()
    for key, used_by in consumers.items():
        if used_by:
            names[key] = f"{used_by[0]}.input"
    sites = [_Site(names[k], q, calls.get(k, math.inf)) for k, q in quantizers.items()]
    return sorted(sites, key=lambda s: s.order)


def _check_bits(sites: Sequence[_Site], opset: int | None) -> int:
    """The opset to export with; ConfigError naming the first quantizer ONNX cannot express."""
    if opset is not None:
        import onnx

        top = onnx.defs.onnx_opset_version()
        if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
            raise ConfigError(
                f"opset {opset!r} is not supported; use {MIN_OPSET}..{top} (onnx "
                f"{onnx.__version__})",
                key="opset",
            )
    need = DEFAULT_OPSET
    for s in sites:
        since = min_opset(s.quantizer.bits)
        if since is None:
            raise ConfigError(
                f"{s.name} has {s.quantizer.bits} bits; ONNX QuantizeLinear has integer types "
                "of 8 bits (opset >= 13), 4 and 16 bits (opset >= 21) and 2 bits (opset >= 25) "
                "only: choose one of those bits or disable this quantizer"
            )
        if opset is None and s.quantizer.bits in _OPT_IN_BITS:
            raise ConfigError(
                f"{s.name} has {s.quantizer.bits} bits; ONNX has int2 / uint2 only from opset 25 "
                "and onnxruntime runs them only with graph optimisations disabled (1.31 fails to "
                "constant-fold them): export with opset=25 to write them anyway, or choose "
                "4 / 8 / 16 bits"
            )
        if opset is not None and opset < since:
            have = sorted(b for b, v in _BITS_SINCE.items() if v <= opset)
            raise ConfigError(
                f"{s.name} has {s.quantizer.bits} bits; ONNX opset {opset} quantizes to "
                f"{' / '.join(map(str, have))} bits only: export with opset >= {since} or "
                f"choose {' / '.join(map(str, have))} bits"
            )
        need = max(need, since)
    return opset if opset is not None else need


# -- rewriting the copy ---------------------------------------------------------------------------
@torch.no_grad()
def _fold_transforms(model: nn.Module, qdq: dict[int, _QDQ]) -> dict[str, str]:
    """Fold each parametrization chain into its stored tensor, keeping only the Q/DQ.

    Masks commute with a quantizer (both elementwise, and Q(0) = 0), so every mask is folded
    whatever its place in the chain. The chains are edited, not removed: a deep copy shares the
    ``Parametrized<Module>`` class with the original, and removing a parametrization deletes the
    property from that class. Returns {exported tensor name: module tensor name}.
    """
    renames: dict[str, str] = {}
    for path, mod in list(model.named_modules()):
        if not parametrize.is_parametrized(mod):
            continue
        for tname, chain in mod.parametrizations.items():
            value = chain.original.detach().clone()
            quant: FakeQuantizer | None = None
            after: list[nn.Module] = []
            for t in chain:
                q = _quantizer_of(t)
                if q is not None:
                    if quant is not None:
                        raise UnsupportedModelError(
                            f"{path}.{tname} has two quantizers; remove one before exporting"
                        )
                    quant = q
                elif quant is None or isinstance(t, WeightMask):
                    value = t(value)
                else:
                    after.append(t)
            transforms: list[nn.Module] = after
            if quant is not None and id(quant) in qdq:
                module = qdq[id(quant)]
                if module.low is not None:  # narrow range: clamp the constant, not in the graph
                    shape = [-1 if d == module.p.axis else 1 for d in range(value.dim())]
                    low = module.low.to(value.dtype)
                    value = torch.maximum(value, low.reshape(shape) if low.dim() else low)
                    module.low = None
                transforms = [module, *after]
            chain.original.copy_(value)
            for i in reversed(range(len(chain))):
                del chain[i]
            for t in transforms or [nn.Identity()]:
                chain.append(t)
            prefix = f"{path}." if path else ""
            renames[f"{prefix}parametrizations.{tname}.original"] = f"{prefix}{tname}"
    return renames


def _swap_quantizers(model: nn.Module, qdq: dict[int, _QDQ]) -> None:
    """Every remaining FakeQuantizer submodule → its Q/DQ module, or Identity if inactive."""
    for mod in list(model.modules()):
        for attr, child in list(mod._modules.items()):
            if isinstance(child, FakeQuantizer):
                mod._modules[attr] = qdq.get(id(child), nn.Identity())


def _name_values(graph: Any, scale_names: dict[str, str], renames: dict[str, str]) -> None:
    """Name Q/DQ nodes and their inputs after searchq's quantizers (unshared values only), and
    parametrized weights after their module (``conv1.weight``, not ``conv1.parametrizations…``)."""
    taken = {v.name for n in graph for v in (*n.inputs, *n.outputs) if v is not None}
    taken |= set(graph.initializers)

    def rename(value: Any, name: str, users: set[int]) -> None:
        if value is None or value.name == name or name in taken:
            return
        if any(id(node) not in users for node, _ in value.uses()):
            return
        taken.add(name)
        value.name = name

    for node in list(graph):
        if node.op_type != "QuantizeLinear" or node.inputs[1].name not in scale_names:
            continue
        qname = scale_names[node.inputs[1].name]
        dqs = [u for u, _ in node.outputs[0].uses() if u.op_type == "DequantizeLinear"]
        users = {id(node), *map(id, dqs)}
        node.name = f"{qname}/QuantizeLinear"
        for dq in dqs:
            dq.name = f"{qname}/DequantizeLinear"
        rename(node.inputs[1], f"{qname}.scale", users)
        if len(node.inputs) > 2:
            rename(node.inputs[2], f"{qname}.zero_point", users)
        clamp = node.inputs[0].producer() if node.inputs[0] is not None else None
        if clamp is not None and clamp.op_type == "Max":  # a narrow-range input's lower bound
            clamp.name = f"{qname}/Max"
            rename(clamp.inputs[1], f"{qname}.low", {id(clamp)})
    for old, new in renames.items():
        value = graph.initializers.get(old)
        if value is not None and new not in taken:
            taken.add(new)
            value.name = new


def export_onnx(
    model: nn.Module,
    example_input: Tensor | Sequence[Tensor],
    path: str | Path,
    *,
    opset: int | None = None,
) -> Path:
    """Write ``model`` (with its searchq quantizers and masks) to ``path`` as ONNX; returns it.

    ``opset`` defaults to the lowest one, not below 18, that has every quantizer's integer type
    (21 with 4- or 16-bit quantizers; 2-bit ones need an explicit ``opset >= 25``). ``model`` is
    left untouched: the export works on a deep copy.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"ONNX export needs the optional packages onnx and onnxscript ({exc.name} is "
            "missing): pip install 'searchq[onnx]'"
        ) from None
    args = (example_input,) if isinstance(example_input, Tensor) else tuple(example_input)
    work = copy.deepcopy(model).eval()
    sites = _find_sites(work, args)
    active = [s for s in sites if s.active]
    target = _check_bits(active, opset)
    qdq = {id(s.quantizer): _QDQ(qdq_params(s.quantizer)) for s in active}
    for s in active:  # learned asymmetric ranges may drift off zero; ONNX zero points cannot
        p = qdq[id(s.quantizer)].p
        bad = [z for z in p.zero_point if not p.qmin <= z <= p.qmax]
        if bad:
            raise ConfigError(
                f"{s.name} has zero point {bad[0]}, outside its integer range "
                f"{p.qmin}..{p.qmax} (the range no longer contains 0); re-initialise its range "
                "(init_ranges) before exporting"
            )
    renames = _fold_transforms(work, qdq)
    _swap_quantizers(work, qdq)
    paths: dict[int, list[str]] = {}
    for prefix, m in work.named_modules(remove_duplicate=False):
        paths.setdefault(id(m), []).append(prefix)
    scale_names = {  # buffer name (= exported initializer name) -> searchq name
        f"{prefix}.scale": s.name for s in active for prefix in paths[id(qdq[id(s.quantizer)])]
    }
    batch = torch.export.Dim.AUTO
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                work,
                args,
                dynamo=True,
                opset_version=target,
                custom_translation_table={
                    torch.ops.searchq.quantize_dequantize.default: _translation()
                },
                dynamic_shapes=tuple({0: batch} if a.dim() else {} for a in args),
                optimize=True,
                verbose=False,
            )
    except torch.onnx.errors.OnnxExporterError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModelError(
            f"torch.onnx.export cannot export {type(model).__name__}: {first}"
        ) from exc
    assert program is not None
    written = program.model.opset_imports.get("", target)
    if written != target:
        raise ConfigError(
            f"torch's exporter could not convert {type(model).__name__} to opset {target} (it "
            f"stays at {written}); export with opset >= {DEFAULT_OPSET}",
            key="opset",
        )
    _name_values(program.model.graph, scale_names, renames)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    program.save(out)
    return out


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch's exporter logs torchvision notes and emits pytree deprecation warnings that are
    about torch itself, not the user's model: hide them (errors still raise)."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)
