"""``create_compressed_model``: NNCF 2.x's entry point on searchq's core.

The config's ``compression`` section decides what happens, in the order written:

* ``quantization``: quantizers inserted in the model, ranges initialised
  (``initializer.range``), bits chosen by ``initializer.precision`` — ``hawq`` / ``autoq`` run
  the same searches as ``searchq run hawq|autoq`` (their run directory, with ``result.json`` and
  plots, goes under ``log_dir``), ``manual`` or none gives the listed / uniform bits — then BN
  adaptation (``initializer.batchnorm_adaptation``);
* ``magnitude_sparsity``: weight masks on every Conv / Linear layer the scopes select, level
  ``sparsity_init`` now, later levels from the schedule.

The model is modified in place and returned with a :class:`CompressionController`. With
``compression_state`` (``controller.state_dict()`` of a checkpoint) nothing is initialised again:
the same quantizers (with the saved bits) and masks are rebuilt, ready for
``model.load_state_dict(checkpoint_model_state)``, and the schedules continue where they stopped.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from searchq.compress.controller import CompressionController, StagedParams, check_state
from searchq.compress.nncf_config import InitArgs, NNCFConfig, as_searchq_config
from searchq.config import SearchqConfig
from searchq.config.specs import (
    AutoqSpec,
    HawqSpec,
    MagnitudeSparsitySpec,
    QuantizationSpec,
)
from searchq.config.warn import SearchqWarning
from searchq.core.assignment import Assignment
from searchq.core.bn import adapt_batchnorm
from searchq.core.graph import ModelGraph
from searchq.core.hardware import load_hardware
from searchq.core.insert import QuantizedModel, iterate_inputs
from searchq.core.schedules import SparsitySchedule, make_schedule
from searchq.core.sparsity import MagnitudeSparsifier
from searchq.errors import ConfigError
from searchq.prepare import build_space, select_ops
from searchq.runner import default_run_dir
from searchq.tasks.base import Task, TopOneAccuracy

__all__ = ["config_state", "create_compressed_model"]

_UNUSED_HOOKS = ("dummy_forward_fn", "wrap_inputs_fn", "wrap_outputs_fn")


def create_compressed_model(
    model: nn.Module,
    config: NNCFConfig | Mapping[str, Any] | SearchqConfig | str | Path,
    compression_state: Mapping[str, Any] | None = None,
    dummy_forward_fn: Callable[..., Any] | None = None,
    wrap_inputs_fn: Callable[..., Any] | None = None,
    wrap_outputs_fn: Callable[..., Any] | None = None,
    dump_graphs: bool = True,
    *,
    train_loader: Any = None,
    val_loader: Any = None,
    criterion: Callable[[Tensor, Tensor], Tensor] | None = None,
    log_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = False,
) -> tuple[CompressionController, nn.Module]:
    """Compress ``model`` in place as ``config`` says; returns ``(controller, model)``.

    Data comes from the keywords or from :func:`register_default_init_args` on the config.
    ``dummy_forward_fn`` / ``wrap_*_fn`` / ``dump_graphs`` (NNCF's graph-tracing hooks) are
    accepted and not needed: searchq traces the model with one batch of ``train_loader`` (or
    ``input_info``).
    """
    hooks = (dummy_forward_fn, wrap_inputs_fn, wrap_outputs_fn)
    for name, value in zip(_UNUSED_HOOKS, hooks, strict=True):
        if value is not None:
            warnings.warn(
                f"{name} is not used: searchq traces the model with a batch of train_loader "
                "(or input_info)",
                SearchqWarning,
                stacklevel=2,
            )
    sc = as_searchq_config(config)
    sc.require_supported()
    if sc.bootstrapnas is not None and not sc.compression:
        raise ConfigError(
            "bootstrapNAS configs train a supernet: run `searchq run elastic --config FILE`; "
            "create_compressed_model applies quantization / magnitude_sparsity",
            key="bootstrapNAS",
        )
    if not sc.compression:
        raise ConfigError(
            "the config has no compression section; add quantization or magnitude_sparsity",
            key="compression",
        )
    registered = (
        config.get_extra_struct(InitArgs)
        if isinstance(config, NNCFConfig) and config.has_extra_struct(InitArgs)
        else InitArgs()
    )
    init = registered.merged(train_loader=train_loader, val_loader=val_loader, criterion=criterion)
    state_config = config_state(sc)
    if compression_state is not None:
        check_state(compression_state, state_config)
    example = _example_input(sc, init)
    graph = ModelGraph.build(model, example)
    run_root = Path(log_dir or sc.log_dir or default_run_dir("compress", type(model).__name__))
    qmodel: QuantizedModel | None = None
    staged = StagedParams()
    sparsifier: MagnitudeSparsifier | None = None
    schedule: SparsitySchedule | None = None
    results: dict[str, Any] = {}
    for spec in sc.compression:
        if isinstance(spec, QuantizationSpec):
            saved = compression_state["quantization"] if compression_state is not None else None
            qmodel, results["quantization"] = _quantize(
                model, graph, spec, sc.target_device, init, saved, run_root, seed, progress
            )
            staged = StagedParams.from_params(spec.params)
        elif isinstance(spec, MagnitudeSparsitySpec):
            sparsifier, schedule = _sparsify(model, graph, spec)
            if compression_state is None:
                sparsifier.set_level(schedule.level)
                _adapt_bn(model, init, spec.bn_adaptation.num_bn_adaptation_samples)
    controller = CompressionController(
        model,
        graph,
        config_state=state_config,
        example_input=example,
        qmodel=qmodel,
        staged=staged,
        sparsifier=sparsifier,
        sparsity_schedule=schedule,
        init_results=results,
    )
    if compression_state is not None:
        controller.load_state_dict(compression_state)
    return controller, model


def config_state(sc: SearchqConfig) -> dict[str, Any]:
    """The part of a config a compressed checkpoint depends on (the user's own root keys, e.g.
    ``epochs``, may change between runs)."""
    d = sc.to_dict()
    return {"target_device": d.get("target_device"), "compression": d.get("compression", [])}


def _example_input(sc: SearchqConfig, init: InitArgs) -> Tensor:
    if init.train_loader is not None:
        for x in iterate_inputs(init.train_loader):
            return x[:1]
    if sc.input_info:
        info = sc.input_info[0]
        dtype = torch.long if info.type == "long" else torch.float32
        if info.filler == "random":
            return torch.rand(info.sample_size).to(dtype)
        fill = torch.zeros if info.filler == "zeros" else torch.ones
        return fill(info.sample_size, dtype=dtype)
    raise ConfigError(
        "searchq needs one input to trace the model: register_default_init_args(config, "
        "train_loader) or give input_info.sample_size",
        key="input_info",
    )


def _task(model: nn.Module, init: InitArgs, what: str) -> Task:
    if init.train_loader is None:
        raise ConfigError(
            f"{what} needs training data: call register_default_init_args(config, train_loader, "
            "criterion=...) or pass train_loader=",
            key="compression.initializer",
        )
    evaluator: Callable[[nn.Module], Mapping[str, float]]
    val = init.val_loader
    if init.model_eval_fn is not None:
        fn = init.model_eval_fn
        evaluator = lambda m: {"accuracy": float(fn(m))}  # noqa: E731
    elif init.autoq_eval_fn is not None and val is not None:
        afn, loader = init.autoq_eval_fn, val
        evaluator = lambda m: {"accuracy": float(afn(m, loader))}  # noqa: E731
    elif val is not None:
        evaluator = TopOneAccuracy(val)
    else:
        warnings.warn(
            f"{what}: no val_loader registered; the precision-init report measures accuracy on "
            "4 training batches",
            SearchqWarning,
            stacklevel=3,
        )
        evaluator = TopOneAccuracy(init.train_loader, max_batches=4)
    return Task(
        model=model,
        train_loader=init.train_loader,
        val_loader=val if val is not None else init.train_loader,
        criterion=init.criterion,
        evaluator=evaluator,
        name=type(model).__name__,
    )


def _quantize(
    model: nn.Module,
    graph: ModelGraph,
    spec: QuantizationSpec,
    device: str,
    init: InitArgs,
    saved: Mapping[str, Any] | None,
    run_root: Path,
    seed: int,
    progress: bool,
) -> tuple[QuantizedModel, dict[str, Any]]:
    hw = device if device != "any" else "trial"
    if saved is not None:  # resume: same quantizers and bits; ranges come with the weights
        assignment = Assignment.from_dict(saved["assignment"], source="compression_state")
        hardware = load_hardware(hw)
        space = build_space(
            graph,
            spec,
            hardware,
            bits=hardware.all_bits(),
            weights_only=not assignment.activations,
            assignment_mode=getattr(spec.precision, "bitwidth_assignment_mode", "liberal"),
        )
        qmodel = QuantizedModel(model, space, assignment)
        if sorted(qmodel.quantizers) != list(saved["quantizers"]):
            raise ConfigError(
                "the model's quantizers differ from the checkpoint's (another model or "
                "searchq version); resume with the model the checkpoint was made from",
                key="compression_state",
            )
        return qmodel, {}
    precision = spec.precision
    kind = (
        "hawq"
        if isinstance(precision, HawqSpec)
        else "autoq"
        if isinstance(precision, AutoqSpec)
        else "manual"
    )
    task = _task(model, init, f"quantization ({kind} precision init)")
    out = run_root / "precision_init"
    if kind == "manual":
        from searchq import manual

        result = manual.run(task, spec, hw=hw, out=out, seed=seed, progress=progress)
    else:
        import importlib

        search = importlib.import_module(f"searchq.{kind}.search").search
        result = search(
            task, hw=hw, spec=precision, quantization=spec, out=out, seed=seed, progress=progress
        )
    assert isinstance(result.handle, QuantizedModel)
    summary = {
        "algorithm": result.algorithm,
        "run_dir": str(result.run_dir),
        "metrics": dict(result.metrics),
    }
    return result.handle, summary


def _sparsify(
    model: nn.Module, graph: ModelGraph, spec: MagnitudeSparsitySpec
) -> tuple[MagnitudeSparsifier, SparsitySchedule]:
    skip = select_ops(
        graph, spec.ignored_scopes, spec.target_scopes, key="magnitude_sparsity.ignored_scopes"
    )
    modules = [n for n in graph.op_names if n not in skip]
    sparsifier = MagnitudeSparsifier(
        model,
        modules,
        importance=spec.weight_importance,
        level_mode=spec.sparsity_level_setting_mode,
    )
    common: dict[str, Any] = {
        "init": spec.sparsity_init,
        "target": spec.sparsity_target,
        "target_epoch": spec.sparsity_target_epoch,
        "freeze_epoch": spec.sparsity_freeze_epoch,
        "update_per_optimizer_step": spec.update_per_optimizer_step,
        "steps_per_epoch": spec.steps_per_epoch,
    }
    extra: Any = {
        "polynomial": {"power": spec.power, "concave": spec.concave},
        "multistep": {"steps": spec.multistep_steps, "levels": spec.multistep_sparsity_levels},
        "adaptive": {"patience": spec.patience},
        "exponential": {},
    }[spec.schedule]
    return sparsifier, make_schedule(spec.schedule, **common, **extra)


def _adapt_bn(model: nn.Module, init: InitArgs, samples: int) -> None:
    if samples > 0 and init.train_loader is not None:
        adapt_batchnorm(model, init.train_loader, samples)
