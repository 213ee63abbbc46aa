"""Text views of a result: the per-layer table ``searchq show`` prints."""

from __future__ import annotations

import json
from typing import Any

from searchq.core.assignment import Assignment
from searchq.core.graph import ModelGraph

__all__ = ["format_result", "layer_rows"]


def layer_rows(graph: ModelGraph, assignment: Assignment) -> list[dict[str, Any]]:
    """One row per quantizable op: name, kind, MACs, params, weight and input-activation bits."""
    rows = []
    for op in graph.ops:
        rows.append(
            {
                "name": op.name,
                "kind": op.kind,
                "macs": op.macs,
                "params": op.params,
                "w_bits": assignment.weights.get(op.weight_qname),
                "a_bits": assignment.activations.get(op.input_group),
                "a_quantizer": op.input_group,
            }
        )
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_result(result: Any) -> str:
    """A readable summary of a :class:`~searchq.runner.Result`."""
    lines = [
        f"algorithm {result.algorithm}   task {result.task}   hardware {result.hardware}   "
        f"seed {result.seed}   elapsed {result.elapsed_s:.1f} s",
    ]
    b = result.budget
    if b:
        lines.append(
            f"budget    {b.get('kind', '?')}: target {_fmt(b.get('target'))}, "
            f"achieved {_fmt(b.get('achieved'))}"
        )
    if result.metrics:
        lines.append("metrics   " + ", ".join(f"{k} {_fmt(v)}" for k, v in result.metrics.items()))
    if result.timings:
        lines.append("timings   " + ", ".join(f"{k} {v:.2f}" for k, v in result.timings.items()))
    rows = result.layers
    if rows:
        w = max(len("layer"), *(len(r["name"]) for r in rows))
        lines.append("")
        lines.append(
            f"{'layer':{w}s}  {'kind':16s} {'MACs':>10s} {'params':>8s} {'W':>3s} {'A':>3s}"
        )
        for r in rows:
            lines.append(
                f"{r['name']:{w}s}  {r['kind']:16s} {r['macs']:>10d} {r['params']:>8d} "
                f"{_fmt(r.get('w_bits')):>3s} {_fmt(r.get('a_bits')):>3s}"
            )
    else:
        a = result.assignment
        lines.append("")
        for name, bits in {**a.weights, **a.activations}.items():
            lines.append(f"{name:40s} {bits:>3d}")
    if result.assignment.subnet is not None:
        from searchq._frozen import thaw

        lines.append(f"subnet    {json.dumps(thaw(result.assignment.subnet))}")
    return "\n".join(lines)
