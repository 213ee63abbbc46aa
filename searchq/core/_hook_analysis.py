"""Forward-hook analysis: the fallback of ModelGraph.build when torch.fx cannot trace."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from searchq.core._fx_analysis import Analysis, _UnionFind
from searchq.core.graph import QUANTIZABLE, ActivationGroup, OpInfo, make_op


def analyse(model: nn.Module, args: tuple[Tensor, ...]) -> Analysis:
    calls: list[tuple[str, Tensor, tuple[int, ...], tuple[int, ...]]] = []
    handles = []

    def hook(name: str):  # noqa: ANN202
        def record(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            x = inputs[0] if inputs else None
            if isinstance(x, Tensor) and isinstance(output, Tensor):
                # Keep a reference to x so its id() stays unique while we group by it.
                calls.append((name, x, tuple(x.shape[1:]), tuple(output.shape[1:])))

        return record

    for name, mod in model.named_modules():
        if isinstance(mod, QUANTIZABLE):
            handles.append(mod.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            model(*args)
    finally:
        for h in handles:
            h.remove()
    out = Analysis(method="hooks")
    if not calls:
        return out
    uf = _UnionFind()
    first: dict[str, tuple[Tensor, tuple[int, ...], tuple[int, ...]]] = {}
    count: dict[str, int] = {}
    macs: dict[str, int] = {}
    modules = dict(model.named_modules())
    for name, x, in_shape, out_shape in calls:
        uf.union(("tensor", id(x)), name)
        count[name] = count.get(name, 0) + 1
        macs[name] = macs.get(name, 0) + make_op(name, modules[name], in_shape, out_shape, "").macs
        first.setdefault(name, (x, in_shape, out_shape))
    order = list(first)
    members: dict[object, list[str]] = {}
    for name in order:
        members.setdefault(uf.find(name), []).append(name)
    group_of: dict[str, str] = {}
    input_ids = {id(a) for a in args}
    for names in members.values():
        qname = f"{names[0]}.input"
        out.groups.append(
            ActivationGroup(
                qname=qname,
                consumers=tuple(names),
                source="tensor",
                shape=first[names[0]][1],
                from_input=id(first[names[0]][0]) in input_ids,
            )
        )
        group_of.update({n: qname for n in names})
    for name in order:
        _, in_shape, out_shape = first[name]
        op = make_op(name, modules[name], in_shape, out_shape, group_of[name])
        if count[name] > 1:
            op = OpInfo(**{**op.__dict__, "macs": macs[name], "calls": count[name]})
            out.notes.append(f"{name} is called {count[name]} times per forward; MACs summed")
        out.ops.append(op)
    rank = {n: i for i, n in enumerate(order)}
    out.groups.sort(key=lambda g: rank[g.consumers[0]])
    return out
