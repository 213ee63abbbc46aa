"""``manual``: apply given bits, evaluate, write the run — the shared core end to end.

Bits come from NNCF's ``initializer.precision.bitwidth_per_scope`` (``[[bits, scope], ...]``,
scopes in NNCF's graph addressing or plain module / quantizer names) and/or an assignment file;
quantizers not listed take ``weights.bits`` / ``activations.bits`` of the config (else 8).
Bits the hardware preset forbids are an error, never silently replaced.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from searchq.config.specs import QuantizationSpec
from searchq.config.warn import SearchqWarning
from searchq.core.assignment import Assignment
from searchq.core.graph import ModelGraph
from searchq.core.hardware import HardwareSpec, load_hardware
from searchq.core.space import QuantSpace
from searchq.errors import ConfigError, HardwareConstraintError
from searchq.prepare import prepare_quantization
from searchq.report.plots import bits_figure
from searchq.report.show import layer_rows
from searchq.runner import Result, Run, default_run_dir
from searchq.tasks.base import Task

__all__ = ["resolve_scopes", "run"]


def resolve_scopes(
    entries: Sequence[tuple[int, str]], graph: ModelGraph, space: QuantSpace
) -> tuple[dict[str, int], list[str]]:
    """Map ``[(bits, scope), ...]`` onto quantizer names; returns (bits by qname, unmatched)."""
    from searchq.config.scopes import MODEL_INPUT, nncf_scope_to_module

    known = {p.qname for p in space.points}
    found: dict[str, int] = {}
    unmatched: list[str] = []
    for bits, scope in entries:
        qname = _plain(scope, known) or _nncf(
            scope, graph, known, nncf_scope_to_module, MODEL_INPUT
        )
        if qname is None:
            unmatched.append(scope)
        else:
            found[qname] = int(bits)
    return found, unmatched


def _plain(scope: str, known: set[str]) -> str | None:
    s = scope.strip()
    if s in known:
        return s
    if f"{s}.weight" in known:
        return f"{s}.weight"
    return None


def _types_match(address: Any, graph: ModelGraph) -> bool:
    """An NNCF address names classes too (``Sequential[layer1]/Bottleneck[0]``): a module of the
    same name but another class is another model's layer, not a match."""
    types = graph.module_types
    if not types or not address.types:
        return True
    if address.root and types.get("") not in (None, address.root):
        return False
    parts = address.module_name.split(".")
    for depth, cls in enumerate(address.types, start=1):
        have = types.get(".".join(parts[:depth]))
        if have is not None and have not in (cls, cls.removeprefix("NNCF")):
            return False
    return True


def _nncf(
    scope: str, graph: ModelGraph, known: set[str], convert: Any, model_input: str
) -> str | None:
    try:
        address = convert(scope)
    except (ConfigError, ValueError):
        return None
    module, index, kind = address
    if module != model_input and not _types_match(address, graph):
        return None
    kind = (kind or "").upper()
    if kind == "WEIGHT":
        q = f"{module}.weight"
        return q if q in known else None
    if kind == "OUTPUT":
        for g in graph.activation_groups:
            is_input = module == model_input and g.from_input
            if (is_input or (g.source_module == module and g.source_call == (index or 0))) and (
                g.qname in known
            ):
                return g.qname
        return None
    if kind.startswith("INPUT"):
        for g in graph.activation_groups:
            if module in g.consumers and g.qname in known:
                return g.qname
    return None


def run(
    task: Task,
    quantization: QuantizationSpec | None = None,
    *,
    assignment: Assignment | None = None,
    hw: HardwareSpec | str = "trial",
    w_bits: int | None = None,
    a_bits: int | None = None,
    weights_only: bool = False,
    out: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    resolved_config: Mapping[str, Any] | None = None,
) -> Result:
    """Quantize ``task.model`` with the given bits, evaluate it, and write a run directory."""
    spec = quantization or QuantizationSpec()
    hardware = load_hardware(hw) if isinstance(hw, str) else hw
    run_dir = Path(out) if out is not None else default_run_dir("manual", task.name)
    resolved = dict(resolved_config or {})
    resolved.setdefault("hardware", hardware.name)
    rec = Run(
        run_dir,
        algorithm="manual",
        task=task.name,
        hardware=hardware.name,
        seed=seed,
        config=resolved,
        progress=progress,
    )
    with rec.timer("prepare"):
        # weights.bits / activations.bits are defaults here, not restrictions: every bit the
        # preset allows stays possible for the listed scopes.
        setup = prepare_quantization(
            task, spec, hardware, bits=hardware.all_bits(), weights_only=weights_only
        )
    space = setup.space
    entries = tuple(getattr(spec.precision, "bitwidth_per_scope", ()) or ())
    listed, unmatched = resolve_scopes(entries, setup.graph, space)
    if unmatched:
        warnings.warn(
            f"{len(unmatched)} of {len(entries)} bitwidth_per_scope entries match no quantizer "
            f"of this model (e.g. {unmatched[0]!r}); they are ignored — the config was written "
            "for another model, or use plain names such as "
            f"{space.points[0].qname!r}",
            SearchqWarning,
            stacklevel=2,
        )
    if assignment is not None:
        listed.update(assignment.bits)
    default_w = w_bits if w_bits is not None else (spec.weights.bits or 8)
    default_a = a_bits if a_bits is not None else (spec.activations.bits or 8)
    chosen = Assignment(
        weights={p.qname: listed.get(p.qname, default_w) for p in space.weight_points},
        activations={p.qname: listed.get(p.qname, default_a) for p in space.activation_points},
    )
    unknown = sorted(set(listed) - {p.qname for p in space.points})
    if unknown:
        raise HardwareConstraintError(
            f"assignment names quantizers this model does not have: {unknown[:3]}; "
            f"its quantizers are named like {space.points[0].qname!r}"
        )
    space.check(chosen)
    with rec.timer("evaluate"):
        metrics = setup.evaluation(chosen)
        uniform8 = _uniform8(setup, space)
    cost = setup.cost.summary(chosen)
    result_metrics = {
        "accuracy": metrics.get("accuracy", next(iter(metrics.values()))),
        "fp32_accuracy": setup.fp32_metrics.get("accuracy", float("nan")),
        **({"uniform8_accuracy": uniform8} if uniform8 is not None else {}),
        "bit_complexity_ratio": cost["bit_complexity_ratio"],
        "size_ratio": cost["size_ratio"],
        **{k: v for k, v in metrics.items() if k != "accuracy"},
    }
    setup.evaluation.activate(chosen)  # leave the model in the chosen state
    rows = layer_rows(setup.graph, chosen)
    for tag, value in result_metrics.items():
        prefix = "hw" if tag.endswith("ratio") else "eval"
        rec.scalar(f"{prefix}/{tag}", value)
    rec.text("search/assignment", "\n".join(f"{k}: {v}" for k, v in chosen.bits.items()))
    rec.figure("bits", bits_figure(rows, title=f"manual bits — {task.name}"))
    extra: dict[str, Any] = {}
    if unmatched:
        extra["unmatched_scopes"] = unmatched
    if setup.notes:
        extra["graph_notes"] = setup.notes
    result = Result(
        algorithm="manual",
        task=task.name,
        hardware=hardware.name,
        budget={
            "kind": "bit_complexity_ratio",
            "target": None,
            "achieved": cost["bit_complexity_ratio"],
        },
        metrics=result_metrics,
        assignment=chosen,
        seed=seed,
        layers=rows,
        extra=extra,
    )
    result.handle = setup.qmodel
    return rec.finish(result)


def _uniform8(setup: Any, space: QuantSpace) -> float | None:
    if not all(8 in p.bits for p in space.points):
        return None
    return setup.evaluation(space.uniform(8)).get("accuracy")
