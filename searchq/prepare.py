"""From (task, quantization spec, hardware) to a quantized model ready to evaluate assignments.

Every quantization algorithm (manual, HAWQ, AutoQ, joint NSGA) starts here:

1. analyse the model (:class:`~searchq.core.graph.ModelGraph`);
2. select the ops to quantize (``ignored_scopes`` / ``target_scopes``, globally and per
   weights / activations) and build the :class:`~searchq.core.space.QuantSpace` from the
   hardware preset, the user's modes and bits;
3. measure the float model, insert quantizers, initialise ranges, and fix the BatchNorm
   adaptation samples so that every later evaluation is comparable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from torch import Tensor, nn

from searchq.config.specs import QuantizationSpec
from searchq.core.assignment import Assignment
from searchq.core.cost import CostModel
from searchq.core.graph import ModelGraph
from searchq.core.hardware import HardwareSpec, load_hardware
from searchq.core.insert import QuantizedModel
from searchq.core.pipeline import QuantEvaluation, take_samples
from searchq.core.space import QuantSpace
from searchq.errors import ConfigError
from searchq.tasks.base import Task

__all__ = ["QuantSetup", "build_space", "prepare_quantization", "select_ops"]


@dataclass
class QuantSetup:
    task: Task
    graph: ModelGraph
    space: QuantSpace
    qmodel: QuantizedModel
    evaluation: QuantEvaluation
    cost: CostModel
    fp32_metrics: dict[str, float]
    bn_samples: list[Tensor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> nn.Module:
        return self.qmodel.model


def select_ops(
    graph: ModelGraph,
    ignored: Sequence[str] = (),
    target: Sequence[str] | None = None,
    *,
    key: str = "ignored_scopes",
    validate: bool = True,
) -> set[str]:
    """Op names EXCLUDED by NNCF-style ``ignored_scopes`` / ``target_scopes``."""
    if not ignored and target is None:
        return set()
    from searchq.config.scopes import match_scopes

    names = list(graph.op_names)
    selection = match_scopes(names, ignored_scopes=ignored, target_scopes=target)
    unmatched = list(getattr(selection, "unmatched", ()))
    if unmatched and validate:
        raise ConfigError(
            f"scopes {unmatched[:3]} match no quantizable op of this model (ops are named like "
            f'{names[0]!r}); fix them or set "validate_scopes": false',
            key=key,
        )
    kept = set(getattr(selection, "selected", selection))
    return set(names) - kept


def build_space(
    graph: ModelGraph,
    spec: QuantizationSpec,
    hardware: HardwareSpec | str,
    *,
    bits: Iterable[int] | None = None,
    weights_only: bool = False,
    assignment_mode: str = "liberal",
) -> QuantSpace:
    """The quantizer search space of ``graph`` under ``spec``'s constraints and ``hardware``.

    ``bits`` lists the candidate bits of a search (weights and activations alike, as in NNCF);
    without it, a fixed ``weights.bits`` / ``activations.bits`` of the spec restricts each kind.
    """
    hw = load_hardware(hardware) if isinstance(hardware, str) else hardware
    w, a = spec.weights, spec.activations
    skip = select_ops(graph, spec.ignored_scopes, spec.target_scopes, validate=spec.validate_scopes)
    skip_w = select_ops(
        graph,
        w.ignored_scopes,
        w.target_scopes,
        key="weights.ignored_scopes",
        validate=spec.validate_scopes,
    )
    skip_a = select_ops(
        graph,
        a.ignored_scopes,
        a.target_scopes,
        key="activations.ignored_scopes",
        validate=spec.validate_scopes,
    )
    if not spec.quantize_inputs:
        for g in graph.activation_groups:
            if g.from_input:
                skip_a |= set(g.consumers)
    search_bits = tuple(bits) if bits is not None else None
    return QuantSpace(
        graph,
        hw,
        weight_bits=search_bits or ((w.bits,) if w.bits is not None else None),
        activation_bits=search_bits or ((a.bits,) if a.bits is not None else None),
        weight_mode=w.mode or "symmetric",
        activation_mode=a.mode or "symmetric",
        weight_per_channel=True if w.per_channel is None else w.per_channel,
        activation_per_channel=bool(a.per_channel),
        activation_signed=a.signed,
        assignment_mode=assignment_mode,
        quantize_activations=not weights_only,
        skip_ops=skip,
        skip_weight_ops=skip_w,
        skip_activation_ops=skip_a,
    )


def prepare_quantization(
    task: Task,
    spec: QuantizationSpec,
    hardware: HardwareSpec | str,
    *,
    bits: Iterable[int] | None = None,
    weights_only: bool = False,
    assignment_mode: str = "liberal",
    initial: Assignment | None = None,
) -> QuantSetup:
    """Analyse, measure the float model, insert quantizers, initialise ranges (see module doc)."""
    model = task.model
    assert task.example_input is not None and task.evaluator is not None
    graph = ModelGraph.build(model, task.example_input)
    space = build_space(
        graph,
        spec,
        hardware,
        bits=bits,
        weights_only=weights_only,
        assignment_mode=assignment_mode,
    )
    fp32 = {k: float(v) for k, v in task.evaluator(model).items()}
    qmodel = QuantizedModel(model, space, initial)
    r = spec.range_init
    qmodel.init_ranges(
        task.train_loader,
        init_type=r.type,
        num_samples=r.num_init_samples,
        params={"min_percentile": r.min_percentile, "max_percentile": r.max_percentile},
        overrides=_range_overrides(graph, space, spec),
    )
    bn = take_samples(task.train_loader, spec.bn_adaptation.num_bn_adaptation_samples)
    evaluation = QuantEvaluation(qmodel, task.evaluator, bn_samples=bn)
    return QuantSetup(
        task=task,
        graph=graph,
        space=space,
        qmodel=qmodel,
        evaluation=evaluation,
        cost=CostModel(graph),
        fp32_metrics=fp32,
        bn_samples=bn,
        notes=list(graph.notes),
    )


def _range_overrides(graph: ModelGraph, space: QuantSpace, spec: QuantizationSpec) -> dict:
    """NNCF's per-layer range-init list: each entry applies to the quantizers it selects."""
    out: dict[str, tuple[str, dict[str, float]]] = {}
    for i, entry in enumerate(spec.range_init_overrides):
        excluded = select_ops(
            graph,
            entry.ignored_scopes,
            entry.target_scopes,
            key=f"initializer.range[{i}]",
            validate=spec.validate_scopes,
        )
        chosen = set(graph.op_names) - excluded
        params = {"min_percentile": entry.min_percentile, "max_percentile": entry.max_percentile}
        for p in space.points:
            group = "weights" if p.kind == "weight" else "activations"
            if entry.target_quantizer_group not in (None, group):
                continue
            if not set(p.ops) & chosen:
                continue
            if p.qname in out:
                raise ConfigError(
                    f"quantizer {p.qname} is selected by more than one per-layer range entry; "
                    "make their scopes disjoint",
                    key=f"initializer.range[{i}]",
                )
            out[p.qname] = (entry.type, params)
    return out
