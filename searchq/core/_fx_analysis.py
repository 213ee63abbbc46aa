"""torch.fx analysis behind :meth:`searchq.core.graph.ModelGraph.build`."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from searchq.core.graph import (
    QUANTIZABLE,
    ActivationGroup,
    ChannelGroup,
    OpInfo,
    ResidualBlock,
    make_op,
    op_kind,
)


class TraceError(Exception):
    """The model cannot be analysed with torch.fx (the caller falls back to hooks)."""


@dataclass
class Analysis:
    ops: list[OpInfo] = field(default_factory=list)
    groups: list[ActivationGroup] = field(default_factory=list)
    blocks: list[ResidualBlock] = field(default_factory=list)
    channel_groups: list[ChannelGroup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    method: str = "fx"


def analyse(model: nn.Module, args: tuple[torch.Tensor, ...]) -> Analysis:
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # any tracing failure means "use hooks"
        raise TraceError(f"{type(exc).__name__}: {exc}") from exc
    gm.eval()
    try:
        ShapeProp(gm).propagate(*args)
    except Exception as exc:
        raise TraceError(f"shape propagation failed: {type(exc).__name__}: {exc}") from exc
    modules = dict(gm.named_modules())
    out = Analysis()
    _ops_and_groups(gm, modules, out)
    _residual_blocks(gm, modules, out)
    _channel_groups(gm, modules, out)
    return out


# ----------------------------------------------------------------------------- helpers
def _shape(node: object) -> tuple[int, ...] | None:
    if not isinstance(node, fx.Node):
        return None
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else None


def _stack(node: fx.Node) -> list[str]:
    stack = node.meta.get("nn_module_stack") or {}
    paths = []
    for key, value in stack.items():
        paths.append(value[0] if isinstance(value, tuple) else key)
    return paths


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []

    def visit(a: object) -> None:
        if isinstance(a, fx.Node):
            if _shape(a) is not None:
                found.append(a)
        elif isinstance(a, (tuple, list)):
            for x in a:
                visit(x)
        elif isinstance(a, dict):
            for x in a.values():
                visit(x)

    visit(node.args)
    visit(node.kwargs)
    return found


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, x: object) -> object:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: object, b: object) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


# ----------------------------------------------------------------------------- ops / groups
def _ops_and_groups(gm: fx.GraphModule, modules: dict[str, nn.Module], out: Analysis) -> None:
    calls: dict[str, list[fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(modules.get(node.target), QUANTIZABLE):
            calls.setdefault(str(node.target), []).append(node)
    if not calls:
        return
    # Modules reading the same tensor share one input quantizer (union over every call).
    uf = _UnionFind()
    for name, nodes in calls.items():
        uf.find(name)
        for node in nodes:
            src = node.args[0]
            if isinstance(src, fx.Node):
                uf.union(("node", src.name), name)
    order = list(calls)  # dict order = execution order of first calls
    members: dict[object, list[str]] = {}
    for name in order:
        members.setdefault(uf.find(name), []).append(name)
    call_index = _module_call_index(gm)
    group_of: dict[str, str] = {}
    for names in members.values():
        first = calls[names[0]][0]
        arg = first.args[0]
        src = arg if isinstance(arg, fx.Node) else None
        qname = f"{names[0]}.input"
        shape = _shape(src) or ()
        out.groups.append(
            ActivationGroup(
                qname=qname,
                consumers=tuple(names),
                source=src.name if src is not None else "?",
                shape=tuple(shape[1:]),
                from_input=src is not None and src.op == "placeholder",
                source_module=(
                    str(src.target) if src is not None and src.op == "call_module" else None
                ),
                source_call=call_index.get(src.name, 0) if src is not None else 0,
            )
        )
        for n in names:
            group_of[n] = qname
    for name in order:
        nodes = calls[name]
        first = nodes[0]
        in_shape = (_shape(first.args[0]) or (0,))[1:]
        out_shape = (_shape(first) or (0,))[1:]
        op = make_op(name, modules[name], in_shape, out_shape, group_of[name])
        if len(nodes) > 1:
            extra = 0
            for node in nodes[1:]:
                extra += make_op(
                    name,
                    modules[name],
                    (_shape(node.args[0]) or (0,))[1:],
                    (_shape(node) or (0,))[1:],
                    group_of[name],
                ).macs
            op = OpInfo(**{**op.__dict__, "macs": op.macs + extra, "calls": len(nodes)})
            out.notes.append(
                f"{name} is called {len(nodes)} times per forward; its MACs are summed and "
                "all calls share its quantizers"
            )
        out.ops.append(op)
    # Keep activation groups in the execution order of their first consumer.
    rank = {n: i for i, n in enumerate(order)}
    out.groups.sort(key=lambda g: rank[g.consumers[0]])


def _module_call_index(gm: fx.GraphModule) -> dict[str, int]:
    """fx node name -> index of that call among the calls of the same module."""
    seen: dict[str, int] = {}
    out: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            out[node.name] = seen.get(str(node.target), 0)
            seen[str(node.target)] = out[node.name] + 1
    return out


# ----------------------------------------------------------------------------- blocks
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}


def _is_add(node: fx.Node) -> bool:
    if node.op == "call_function" and node.target in _ADD_FUNCS:
        return True
    return node.op == "call_method" and node.target in ("add", "add_")


def _residual_blocks(gm: fx.GraphModule, modules: dict[str, nn.Module], out: Analysis) -> None:
    nodes = list(gm.graph.nodes)
    seen: set[str] = set()
    op_names = [op.name for op in out.ops]
    for add in nodes:
        if not _is_add(add):
            continue
        tensors = [a for a in add.args[:2] if isinstance(a, fx.Node) and _shape(a) is not None]
        if len(tensors) != 2 or _shape(tensors[0]) != _shape(tensors[1]):
            continue
        stack = _stack(add)
        if not stack:
            out.notes.append(
                f"residual add '{add.name}' is not inside a submodule; elastic depth can only "
                "skip blocks that are modules"
            )
            continue
        block = stack[-1]
        if block in seen:
            continue
        inside = [n for n in nodes if block in _stack(n)]
        inside_set = set(inside)
        external = {a for n in inside for a in _tensor_args(n) if a not in inside_set}
        if len(external) != 1:
            continue
        (x,) = external
        if x not in add.args[:2]:
            continue  # shortcut is projected (e.g. a downsample conv): shape changes, not skippable
        exits = [n for n in inside if any(u not in inside_set for u in n.users)]
        if len(exits) != 1 or _shape(exits[0]) != _shape(x):
            continue
        seen.add(block)
        stage = block.rsplit(".", 1)[0] if "." in block else ""
        ops = tuple(n for n in op_names if n.startswith(block + "."))
        out.blocks.append(
            ResidualBlock(
                name=block, module=block, stage=stage, ops=ops, shape=(_shape(x) or (0,))[1:]
            )
        )


# ----------------------------------------------------------------------------- channel groups
_PASS_MODULES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.SiLU,
    nn.GELU,
    nn.ELU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.Mish,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Identity,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.Flatten,
)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_PASS_FUNCS = {
    F.relu,
    F.relu6,
    F.gelu,
    F.silu,
    F.hardswish,
    F.hardsigmoid,
    F.leaky_relu,
    F.dropout,
    F.max_pool1d,
    F.max_pool2d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    torch.relu,
    torch.sigmoid,
    torch.tanh,
    torch.flatten,
}
_PASS_METHODS = {
    "relu",
    "relu_",
    "sigmoid",
    "tanh",
    "flatten",
    "view",
    "reshape",
    "mean",
    "contiguous",
    "clone",
}
_BINARY_FUNCS = {
    operator.add,
    operator.iadd,
    operator.mul,
    operator.imul,
    operator.sub,
    torch.add,
    torch.mul,
    torch.sub,
}
_BINARY_METHODS = {"add", "add_", "mul", "mul_", "sub", "sub_"}


def _keeps_channels(node: fx.Node, src: fx.Node) -> bool:
    """Whether ``node``'s output keeps ``src``'s channel axis (dim 1, or dim -1 when 2-D)."""
    s_in, s_out = _shape(src), _shape(node)
    if s_in is None or s_out is None or len(s_in) < 2 or len(s_out) < 2:
        return False
    if s_in[1] != s_out[1]:
        return False
    if len(s_out) < len(s_in):  # flatten / view / mean: only fine when spatial extent is 1
        return len(s_out) == 2 and all(d == 1 for d in s_in[2:]) or _is_spatial_mean(node)
    return True


def _is_spatial_mean(node: fx.Node) -> bool:
    s_out = _shape(node)
    return (
        node.op == "call_method"
        and node.target == "mean"
        and s_out is not None
        and (len(s_out) == 2)
    )


def _channel_groups(gm: fx.GraphModule, modules: dict[str, nn.Module], out: Analysis) -> None:
    uf = _UnionFind()
    space: dict[fx.Node, object] = {}
    rigid: dict[object, str] = {}
    producers: dict[object, list[str]] = {}
    consumers: dict[object, list[str]] = {}
    depthwise: dict[object, list[str]] = {}
    norms: dict[object, list[str]] = {}
    channels: dict[object, int] = {}
    unknown: set[str] = set()

    def new_space(node: fx.Node, reason: str | None = None) -> object:
        sid = ("space", node.name)
        uf.find(sid)
        shape = _shape(node)
        channels[sid] = shape[1] if shape and len(shape) > 1 else 0
        if reason:
            rigid[sid] = reason
        space[node] = sid
        return sid

    def make_rigid(nodes: Iterable[fx.Node], reason: str) -> None:
        for a in nodes:
            if a in space:
                rigid.setdefault(uf.find(space[a]), reason)

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            new_space(node, "model input")
            continue
        if node.op == "output":
            make_rigid(_tensor_args(node), "model output")
            continue
        if _shape(node) is None:
            continue  # non-tensor values (sizes, tuples) carry no channels
        args = [a for a in _tensor_args(node) if a in space]
        mod = modules.get(node.target) if node.op == "call_module" else None
        kind = op_kind(mod) if mod is not None else None
        if kind is not None:
            assert mod is not None
            src = args[0] if args else None
            name = str(node.target)
            if kind.startswith("depthwise"):
                if src is None:
                    new_space(node, "depthwise conv without analysed input")
                    continue
                space[node] = space[src]
                depthwise.setdefault(space[src], []).append(name)
                continue
            if src is not None:
                consumers.setdefault(space[src], []).append(name)
                if getattr(mod, "groups", 1) > 1:
                    make_rigid([src], f"grouped conv {name}")
                if kind == "linear" and not _linear_reads_channels(src):
                    make_rigid([src], f"{name} reads flattened spatial features")
            sid = new_space(node, f"grouped conv {name}" if getattr(mod, "groups", 1) > 1 else None)
            producers.setdefault(sid, []).append(name)
            continue
        passthrough = (
            (mod is not None and isinstance(mod, _PASS_MODULES))
            or (node.op == "call_function" and node.target in _PASS_FUNCS)
            or (node.op == "call_method" and node.target in _PASS_METHODS)
        )
        binary = (node.op == "call_function" and node.target in _BINARY_FUNCS) or (
            node.op == "call_method" and node.target in _BINARY_METHODS
        )
        if passthrough and len(args) == 1 and _keeps_channels(node, args[0]):
            space[node] = space[args[0]]
            if mod is not None and isinstance(mod, _NORMS):
                norms.setdefault(space[args[0]], []).append(str(node.target))
            continue
        if binary and args and all(_shape(a) and len(_shape(a) or ()) > 1 for a in args):
            same = [a for a in args if (_shape(a) or (0, 0))[1] == (_shape(node) or (0, 0))[1]]
            if len(same) == len(args):
                for a in args[1:]:
                    uf.union(space[args[0]], space[a])
                space[node] = space[args[0]]
                continue
        if binary and len(args) == 1 and _keeps_channels(node, args[0]):
            space[node] = space[args[0]]  # tensor (op) scalar
            continue
        label = str(node.target) if node.op != "call_module" else type(mod).__name__
        unknown.add(label)
        make_rigid(args, f"channels pass through '{label}', which searchq cannot slice")
        new_space(node, f"output of '{label}'")

    if unknown:
        out.notes.append(
            "channel groups stop at ops searchq cannot slice (their channels stay fixed): "
            + ", ".join(sorted(unknown))
        )
    roots: dict[object, list[object]] = {}
    for sid in list(channels):
        roots.setdefault(uf.find(sid), []).append(sid)
    gid = 0
    for root, sids in roots.items():
        prod = [p for s in sids for p in producers.get(s, [])]
        if not prod:
            continue
        reasons = [rigid[s] for s in sids if s in rigid] + ([rigid[root]] if root in rigid else [])
        out.channel_groups.append(
            ChannelGroup(
                id=gid,
                channels=channels[sids[0]],
                producers=tuple(prod),
                consumers=tuple(c for s in sids for c in consumers.get(s, [])),
                depthwise=tuple(d for s in sids for d in depthwise.get(s, [])),
                norms=tuple(n for s in sids for n in norms.get(s, [])),
                rigid=bool(reasons),
                reason=reasons[0] if reasons else None,
            )
        )
        gid += 1


def _linear_reads_channels(src: fx.Node) -> bool:
    shape = _shape(src)
    return shape is not None and len(shape) >= 2
