"""``searchq run hawq``: Hessian-aware mixed precision (HAWQ-V2) with an exact allocation.

Pipeline: quantizers in the model (range init, fixed BN samples) → quantization noise of every
weight at every allowed bitwidth → per-layer average Hessian traces (exact and probe-free for
piecewise-linear networks, :mod:`~searchq.hawq.gauss_newton`; else Hutchinson with graph reuse,
Hutch++ deflation, stop when the pick is stable) → Ω = trace × noise → exact Σ Ω minimum under
the budget → evaluation (BN adaptation) → optional QAT fine-tune → run directory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from searchq._io import write_json_atomic
from searchq.config.specs import HawqSpec, QuantizationSpec
from searchq.core._modes import untouched_rng
from searchq.core._param import original_weight
from searchq.core.allocate import Budget
from searchq.core.cost import LatencyTable
from searchq.core.evaluate import _split
from searchq.core.finetune import finetune
from searchq.core.hardware import HardwareSpec, load_hardware
from searchq.errors import ConfigError
from searchq.hawq import plots
from searchq.hawq.activations import ActivationSensitivity, activation_sensitivity
from searchq.hawq.allocate import Allocation, allocate, check_reachable, frontier
from searchq.hawq.gauss_newton import EXACT_OUTPUTS, exact_traces
from searchq.hawq.hutchinson import TraceEstimate, estimate_traces
from searchq.hawq.sensitivity import quantization_noise, sensitivities
from searchq.hawq.stability import PickStability
from searchq.prepare import QuantSetup, prepare_quantization
from searchq.report.plots import bits_figure
from searchq.report.show import layer_rows
from searchq.runner import Result, Run, default_run_dir
from searchq.tasks.base import Task

__all__ = ["hessian_batches", "search"]

_XLABEL = {
    "bit_complexity_ratio": "bit-complexity ratio (INT8 / mixed)",
    "size_ratio": "model size ratio (vs FP32)",
    "latency_ms": "latency (ms)",
}


def hessian_batches(
    loader: Any, num_data_points: int, batch_size: int | None
) -> list[tuple[Tensor, Tensor]]:
    """The first ``num_data_points`` (input, target) samples, re-batched by ``batch_size``."""
    xs, ys, seen = [], [], 0
    with untouched_rng(loader):
        for batch in loader:
            x, y = _split(batch)
            take = min(num_data_points - seen, int(x.shape[0]))
            xs.append(x[:take])
            ys.append(y[:take])
            seen += take
            if seen >= num_data_points:
                break
    if not xs:
        raise ConfigError("the training data is empty; HAWQ needs samples for the traces")
    x, y = torch.cat(xs), torch.cat(ys)
    size = batch_size or min(len(x), 256)
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def _as_task(
    model: nn.Module | Task,
    data: DataLoader | None,
    criterion: Callable | None,
    val_data: DataLoader | None,
    evaluator: Callable | None,
    name: str | None,
) -> Task:
    if isinstance(model, Task):
        return model
    if data is None:
        raise ConfigError(
            "hawq.search(model, data, ...) needs data (a DataLoader of the train set)"
        )
    return Task(
        model=model,
        train_loader=data,
        val_loader=val_data if val_data is not None else data,
        criterion=criterion,
        evaluator=evaluator,
        name=name or "custom",
    )


def _budget(
    spec: HawqSpec,
    ratio: float | None,
    size_ratio: float | None,
    latency_table: str | Path | LatencyTable | None,
    latency_ms: float | None,
) -> Budget:
    options = (("ratio", ratio), ("size_ratio", size_ratio), ("latency_ms", latency_ms))
    given = [k for k, v in options if v is not None]
    if len(given) > 1:
        raise ConfigError(f"give one budget, not {given}: --ratio, --size-ratio or --latency-ms")
    if latency_ms is not None:
        table = latency_table
        if table is None:
            raise ConfigError("--latency-ms needs --latency-table FILE")
        lt = table if isinstance(table, LatencyTable) else LatencyTable.load(table)
        return Budget("latency_ms", latency_ms, lt)
    if size_ratio is not None:
        return Budget("size_ratio", size_ratio)
    return Budget("bit_complexity_ratio", ratio if ratio is not None else spec.compression_ratio)


def search(
    model: nn.Module | Task,
    data: DataLoader | None = None,
    criterion: Callable[[Tensor, Tensor], Tensor] | None = None,
    *,
    ratio: float | None = None,
    size_ratio: float | None = None,
    latency_table: str | Path | LatencyTable | None = None,
    latency_ms: float | None = None,
    bits: Sequence[int] | None = None,
    hw: str | HardwareSpec = "trial",
    spec: HawqSpec | None = None,
    quantization: QuantizationSpec | None = None,
    val_data: DataLoader | None = None,
    evaluator: Callable[[nn.Module], Mapping[str, float]] | None = None,
    traces: str | Path | None = None,
    finetune_epochs: int = 0,
    finetune_lr: float = 1e-3,
    weights_only: bool = False,
    out: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    resolved_config: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Result:
    """Choose bits per layer by HAWQ under a budget and write a run directory.

    ``ratio`` is NNCF's bit-complexity ``compression_ratio`` (≥); ``size_ratio`` a model-size
    ratio vs FP32 (≤); ``latency_ms`` with ``latency_table`` a latency bound. ``bits`` defaults to
    the spec's list when the user wrote one, else to what the hardware preset allows (NNCF's
    rule for HW targets). ``traces`` (NNCF's ``traces_per_layer_path``) loads traces if the file
    exists and saves them there otherwise.
    """
    spec = spec or HawqSpec()
    qspec = quantization or QuantizationSpec()
    hardware = load_hardware(hw) if isinstance(hw, str) else hw
    task = _as_task(model, data, criterion, val_data, evaluator, name)
    budget = _budget(spec, ratio, size_ratio, latency_table, latency_ms)
    search_bits = _search_bits(spec, bits, hardware)
    run_dir = Path(out) if out is not None else default_run_dir("hawq", task.name)
    rec = Run(
        run_dir,
        algorithm="hawq",
        task=task.name,
        hardware=hardware.name,
        seed=seed,
        config={**(resolved_config or {}), "hawq": _resolved(spec, budget, search_bits, hardware)},
        progress=progress,
    )
    with rec.timer("prepare"):
        setup = prepare_quantization(
            task,
            qspec,
            hardware,
            bits=search_bits,
            weights_only=weights_only,
            assignment_mode=spec.bitwidth_assignment_mode,
        )
    space = setup.space
    check_reachable(space, budget)  # before any time goes into traces
    traces_path = (
        Path(traces)
        if traces
        else (Path(spec.traces_per_layer_path) if spec.traces_per_layer_path else None)
    )
    with rec.timer("precision_init"):
        modules = dict(setup.model.named_modules())
        weights = {p.qname: original_weight(modules[p.ops[0]]) for p in space.weight_points}
        noise = quantization_noise(space, weights)
        batches = hessian_batches(setup.task.train_loader, spec.num_data_points, spec.batch_size)
        with rec.timer("activation_traces"):
            acts = _activation_sensitivity(setup, spec, batches, seed)
        act_omega = acts.omega() if acts is not None else {}
        stability = PickStability(
            space,
            list(weights),
            noise,
            budget,
            tolerance=spec.pick_tolerance,
            seed=seed,
            fixed=act_omega,
        )
        with rec.timer("traces"):
            estimate = _traces(rec, setup, spec, weights, traces_path, stability, seed, batches)
        data_regret = _data_regret(estimate, stability, spec)
        trace_of = estimate.as_dict()
        omega = {**sensitivities(trace_of, noise), **act_omega}
        alloc = allocate(space, omega, budget, selection=spec.selection, traces=trace_of)
    chosen = alloc.assignment
    with rec.timer("evaluate"):
        metrics = setup.evaluation(chosen)
        uniform8 = (
            setup.evaluation(space.uniform(8)).get("accuracy")
            if all(8 in p.bits for p in space.points)
            else None
        )
    result_metrics: dict[str, float] = {
        "accuracy": metrics.get("accuracy", next(iter(metrics.values()))),
        "fp32_accuracy": setup.fp32_metrics.get("accuracy", float("nan")),
        **({"uniform8_accuracy": uniform8} if uniform8 is not None else {}),
        **setup.cost.summary(chosen),
        "objective": alloc.objective,
        **{k: v for k, v in metrics.items() if k != "accuracy"},
    }
    setup.evaluation.activate(chosen)
    if finetune_epochs > 0:
        with rec.timer("finetune"):
            losses = finetune(
                setup.model,
                task.train_loader,
                task.criterion,  # type: ignore[arg-type]
                epochs=finetune_epochs,
                lr=finetune_lr,
                seed=seed,
                on_epoch=lambda e, loss: rec.scalar("train/loss", loss, e),
            )
            assert task.evaluator is not None
            result_metrics["finetuned_accuracy"] = float(task.evaluator(setup.model)["accuracy"])
            result_metrics["finetune_loss"] = losses[-1]
    _report(rec, setup, estimate, noise, omega, alloc, budget, stability, result_metrics, spec)
    result = Result(
        algorithm="hawq",
        task=task.name,
        hardware=hardware.name,
        budget={"kind": budget.kind, "target": budget.target, "achieved": alloc.achieved},
        metrics=result_metrics,
        assignment=chosen,
        seed=seed,
        layers=layer_rows(setup.graph, chosen),
        extra={
            "selection": alloc.selection,
            "bits": list(search_bits),
            "traces": {
                **estimate.to_dict(),
                "per_layer": _per_layer(estimate),
                **({"data_pick_regret": data_regret} if data_regret is not None else {}),
            },
            **({"activation_traces": acts.to_dict()} if acts is not None else {}),
            "pick_regret": stability.history,
            "graph_notes": setup.notes,
        },
    )
    result.handle = setup.qmodel
    return rec.finish(result)


def _search_bits(
    spec: HawqSpec, bits: Sequence[int] | None, hardware: HardwareSpec
) -> tuple[int, ...]:
    if bits is not None:
        return tuple(sorted({int(b) for b in bits}))
    if "bits" in spec.explicit_keys or hardware.name == "trial":
        return tuple(spec.bits)
    return hardware.all_bits()  # NNCF: a hardware target's own bitwidths replace the defaults


def _resolved(
    spec: HawqSpec, budget: Budget, bits: Sequence[int], hardware: HardwareSpec
) -> dict[str, Any]:
    out = {**spec.to_dict(), "bits": list(bits), "hardware": hardware.name}
    out["budget"] = {"kind": budget.kind, "target": budget.target}
    return out


def _traces(
    rec: Run,
    setup: QuantSetup,
    spec: HawqSpec,
    weights: Mapping[str, Tensor],
    path: Path | None,
    stability: PickStability,
    seed: int,
    batches: Sequence[tuple[Tensor, Tensor]],
) -> TraceEstimate:
    names = list(weights)
    if path is not None and path.exists():
        loaded = TraceEstimate.load(path)
        return _match_loaded(loaded, names, path)
    estimate = _estimate(rec, setup, spec, weights, stability, seed, batches)
    estimate.save(rec.dir / "traces.json")
    if path is not None:
        estimate.save(path)
    return estimate


def _estimate(
    rec: Run,
    setup: QuantSetup,
    spec: HawqSpec,
    weights: Mapping[str, Tensor],
    stability: PickStability,
    seed: int,
    batches: Sequence[tuple[Tensor, Tensor]],
) -> TraceEstimate:
    """The exact traces where ``trace_method`` allows and the model qualifies, else Hutchinson's
    (with the reason the exact ones were not used in ``note``)."""
    note = ""
    if spec.trace_method != "hutchinson":
        exact, note = _exact_traces(setup, spec, weights, batches)
        if exact is not None:
            rec.scalar("search/trace_sum", float(exact.mean.sum()), 0)
            return exact
    stop = "stderr" if spec.stop == "pick" else spec.stop
    with setup.qmodel.disabled():
        estimate = estimate_traces(
            setup.model,
            list(weights.items()),
            batches,
            setup.task.criterion,  # type: ignore[arg-type]
            max_iterations=spec.iter_number,
            stop=stop,
            stderr_fraction=spec.stderr_fraction,
            tolerance=spec.tolerance,
            min_iterations=8,
            deflation_rank=spec.deflation_rank,
            seed=seed,
            should_stop=stability if spec.stop == "pick" else None,
            on_iteration=lambda i, mean: rec.scalar("search/trace_sum", float(mean.sum()), i),
        )
    return replace(estimate, note=note) if note else estimate


def _data_regret(estimate: TraceEstimate, stability: PickStability, spec: HawqSpec) -> float | None:
    """For exact traces: how much the pick depends on which Hessian samples were drawn — the
    expected Σ Ω regret of the pick under traces redrawn within their sampling error (the pick
    rule's test, applied to the data instead of the probes). Reported, not acted on: on digits
    with NNCF's 100 samples it is 2–12 %, with 400 samples 0.5–2 % (same accuracy)."""
    if estimate.data_stderr is None:
        return None
    return stability.regret(estimate.mean, estimate.data_stderr, 0, record=False)


def _per_layer(estimate: TraceEstimate) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {
        n: {"mean": float(m), "stderr": float(s)}
        for n, m, s in zip(estimate.names, estimate.mean, estimate.stderr, strict=True)
    }
    if estimate.data_stderr is not None:
        for n, d in zip(estimate.names, estimate.data_stderr, strict=True):
            rows[n]["data_stderr"] = float(d)
    return rows


def _how(estimate: TraceEstimate) -> str:
    if estimate.method == "exact":
        return "exact (no probes); bars: s.e. over the samples"
    if estimate.method == "gauss_newton":
        return "Gauss-Newton (no probes); bars: s.e. over the samples"
    return f"{estimate.iterations} probes, {estimate.stop_reason}"


def _exact_traces(
    setup: QuantSetup,
    spec: HawqSpec,
    weights: Mapping[str, Tensor],
    batches: Sequence[tuple[Tensor, Tensor]],
) -> tuple[TraceEstimate | None, str]:
    """The probe-free traces of :mod:`~searchq.hawq.gauss_newton`, or (None, why not) when
    ``trace_method`` is ``auto`` and the model does not qualify (forced: a ConfigError)."""
    modules = dict(setup.model.named_modules())
    points = {p.qname: p for p in setup.space.weight_points}
    forced = spec.trace_method == "gauss_newton"
    try:
        shared = [q for q in weights if len(points[q].ops) != 1]
        if shared:
            raise ValueError(f"weights {shared[:3]} are used by several layers")
        layers = [(q, modules[points[q].ops[0]], w) for q, w in weights.items()]
        with setup.qmodel.disabled():
            return exact_traces(
                setup.model,
                layers,
                batches,
                setup.task.criterion,  # type: ignore[arg-type]
                require_piecewise_linear=not forced,
                max_outputs=None if forced else EXACT_OUTPUTS,
            ), ""
    except ValueError as exc:
        if forced:
            raise ConfigError(
                f"cannot compute Gauss-Newton traces: {exc}; use 'hutchinson' or 'auto'",
                key="trace_method",
            ) from None
        return None, f"exact traces not used: {exc}"


def _activation_sensitivity(
    setup: QuantSetup,
    spec: HawqSpec,
    batches: Sequence[tuple[Tensor, Tensor]],
    seed: int,
) -> ActivationSensitivity | None:
    """The activations' Ω terms (None when off or when nothing quantizes activations)."""
    points = setup.space.activation_points
    if not spec.activation_sensitivity or not points:
        return None
    modules = dict(setup.model.named_modules())
    with setup.qmodel.disabled():
        return activation_sensitivity(
            setup.model,
            {p.qname: [modules[o] for o in p.ops] for p in points},
            setup.qmodel.activation_quantizers,
            {p.qname: p.bits for p in points},
            batches,
            setup.task.criterion,  # type: ignore[arg-type]
            probes=spec.activation_probes,
            seed=seed,
        )


def _match_loaded(loaded: TraceEstimate, names: list[str], path: Path) -> TraceEstimate:
    if loaded.names and not loaded.names[0].startswith("#"):
        missing = sorted(set(names) - set(loaded.names))
        if missing:
            raise ConfigError(
                f"traces file lacks layers {missing[:3]} of this model; delete it to re-estimate",
                key="traces_per_layer_path",
                file=str(path),
            )
        index = {n: i for i, n in enumerate(loaded.names)}
        sel = [index[n] for n in names]
        return replace(loaded, names=tuple(names), mean=loaded.mean[sel], stderr=loaded.stderr[sel])
    if len(loaded.mean) != len(names):
        raise ConfigError(
            f"traces file holds {len(loaded.mean)} values, the model has {len(names)} quantized "
            "weights; delete it to re-estimate",
            key="traces_per_layer_path",
            file=str(path),
        )
    return replace(loaded, names=tuple(names))


def _report(
    rec: Run,
    setup: QuantSetup,
    estimate: TraceEstimate,
    noise: Mapping[str, Mapping[int, float]],
    omega: Mapping[str, Mapping[int, float]],
    alloc: Allocation,
    budget: Budget,
    stability: PickStability,
    metrics: Mapping[str, float],
    spec: HawqSpec,
) -> None:
    for name, value in metrics.items():
        prefix = "hw" if name.endswith("ratio") or name.startswith("size") else "eval"
        rec.scalar(f"{prefix}/{name}", value)
    rec.scalar("search/ratio", alloc.achieved)
    rec.scalar("search/iterations", estimate.iterations)
    for name, m in zip(estimate.names, estimate.mean, strict=True):
        rec.scalar(f"traces/{name}", float(m), estimate.iterations)
    for it, regret in stability.history:
        rec.scalar("search/pick_regret", regret, it)
    rec.text("search/assignment", "\n".join(f"{k}: {v}" for k, v in alloc.assignment.bits.items()))
    rows = layer_rows(setup.graph, alloc.assignment)
    task = setup.task.name
    rec.figure("bits", bits_figure(rows, title=f"HAWQ bits — {task}"))
    rec.figure(
        "traces",
        plots.traces_figure(
            estimate.names, estimate.mean,
            estimate.stderr if estimate.data_stderr is None else estimate.data_stderr,
            f"average Hessian traces — {_how(estimate)}",
        ),
    )  # fmt: skip
    curve = frontier(setup.space, omega, budget.kind, latency=budget.latency)
    rec.figure(
        "pareto",
        plots.frontier_figure(
            curve, (alloc.achieved, alloc.objective), xlabel=_XLABEL[budget.kind]
        ),
    )
    rec.figure(
        "noise_vs_trace", plots.noise_figure(estimate.as_dict(), noise, alloc.assignment.weights)
    )
    if spec.dump_init_precision_data:  # NNCF's dump, as JSON next to the run's other files
        dump = rec.dir / "precision_init"
        dump.mkdir(exist_ok=True)
        write_json_atomic(dump / "noise.json", {q: dict(by) for q, by in noise.items()})
        write_json_atomic(dump / "omega.json", {q: dict(by) for q, by in omega.items()})
        write_json_atomic(dump / "frontier.json", [list(p) for p in curve])
