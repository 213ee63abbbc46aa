"""What ``searchq run ...`` does once argv is parsed: config + task + hardware → a library call."""

from __future__ import annotations

import argparse
import os
import warnings
from dataclasses import replace
from typing import Any

from searchq.config.warn import SearchqWarning
from searchq.errors import ConfigError

__all__ = [
    "load_run_inputs",
    "run_autoq",
    "run_elastic",
    "run_extract",
    "run_hawq",
    "run_manual",
    "run_nsga",
]


def _progress() -> bool:
    return os.environ.get("SEARCHQ_PROGRESS", "1") != "0"


def load_run_inputs(args: argparse.Namespace, algorithm: str) -> tuple[Any, Any, str]:
    """(config or None, task, hardware name) from the common options."""
    from searchq.tasks import get_task

    config = None
    if args.config:
        from searchq.config import load_config

        config = load_config(args.config)
        config.require_supported()
        described = "manual" if config.algorithm == "quantization" else config.algorithm
        if described not in (algorithm, None):
            raise ConfigError(
                f"the config describes '{config.algorithm}', not '{algorithm}'; run "
                f"`searchq run {config.algorithm} --config {args.config}` or drop the algorithm",
                file=str(args.config),
            )
    hw = args.hw or (config.target_device if config is not None else None) or "trial"
    task = get_task(args.task or "digits", seed=args.seed)
    if config is not None and config.input_info:
        _check_input_info(config, task)
    return config, task, hw


def _check_input_info(config: Any, task: Any) -> None:
    wanted = tuple(config.input_info[0].sample_size)
    have = tuple(task.example_input.shape) if task.example_input is not None else None
    if have is not None and wanted[1:] != have[1:]:
        warnings.warn(
            f"input_info sample_size {list(wanted)} does not match task '{task.name}', whose "
            f"samples are {list(have[1:])}; the task's inputs are used",
            SearchqWarning,
            stacklevel=2,
        )


def run_manual(args: argparse.Namespace) -> int:
    from searchq import manual
    from searchq.config.specs import QuantizationSpec, RangeInitSpec
    from searchq.core.assignment import Assignment
    from searchq.report.show import format_result

    config, task, hw = load_run_inputs(args, "manual")
    spec = (config.quantization if config is not None else None) or QuantizationSpec()
    if args.range_init or args.range_samples is not None:
        r = spec.range_init
        spec = replace(
            spec,
            range_init=RangeInitSpec(
                type=args.range_init or r.type,
                num_init_samples=(
                    args.range_samples if args.range_samples is not None else r.num_init_samples
                ),
                min_percentile=r.min_percentile,
                max_percentile=r.max_percentile,
            ),
        )
    if args.bn_samples is not None:
        from searchq.config.specs import BNAdaptSpec

        spec = replace(spec, bn_adaptation=BNAdaptSpec(num_bn_adaptation_samples=args.bn_samples))
    assignment = Assignment.from_json(args.bits_file) if args.bits_file else None
    resolved: dict[str, Any] = config.to_dict() if config is not None else {}
    resolved["searchq_run"] = {
        "algorithm": "manual",
        "task": args.task or "digits",
        "hw": hw,
        "seed": args.seed,
        "bits_file": args.bits_file,
        "w_bits": args.w_bits,
        "a_bits": args.a_bits,
        "weights_only": args.weights_only,
    }
    result = manual.run(
        task,
        spec,
        assignment=assignment,
        hw=hw,
        w_bits=args.w_bits,
        a_bits=args.a_bits,
        weights_only=args.weights_only,
        out=args.out,
        seed=args.seed,
        progress=_progress() and not args.no_progress,
        resolved_config=resolved,
    )
    print(format_result(result))
    print(f"\nwrote {result.run_dir}")
    return 0


_HAWQ_FLAGS = {
    "bits": "bits",
    "num_data_points": "num_data_points",
    "batch_size": "batch_size",
    "iter_number": "iter_number",
    "stop": "stop",
    "stderr_fraction": "stderr_fraction",
    "tolerance": "tolerance",
    "deflation_rank": "deflation_rank",
    "trace_method": "trace_method",
    "activation_sensitivity": "activation_sensitivity",
    "selection": "selection",
    "mode": "bitwidth_assignment_mode",
}


def run_hawq(args: argparse.Namespace) -> int:
    from searchq import hawq
    from searchq.config.specs import HawqSpec, QuantizationSpec
    from searchq.report.show import format_result

    config, task, hw = load_run_inputs(args, "hawq")
    qspec = (config.quantization if config is not None else None) or QuantizationSpec()
    spec = qspec.precision if isinstance(qspec.precision, HawqSpec) else HawqSpec()
    changes = {
        field: getattr(args, flag)
        for flag, field in _HAWQ_FLAGS.items()
        if getattr(args, flag) is not None
    }
    if changes:
        explicit = spec.explicit_keys | set(changes)
        spec = replace(spec, **changes, explicit_keys=frozenset(explicit))
    resolved: dict[str, Any] = config.to_dict() if config is not None else {}
    resolved["searchq_run"] = {k: v for k, v in vars(args).items() if k != "rest"}
    result = hawq.search(
        task,
        ratio=args.ratio,
        size_ratio=args.size_ratio,
        latency_ms=args.latency_ms,
        latency_table=args.latency_table,
        hw=hw,
        spec=spec,
        quantization=qspec,
        traces=args.traces,
        finetune_epochs=args.finetune_epochs,
        weights_only=args.weights_only,
        out=args.out,
        seed=args.seed,
        progress=_progress() and not args.no_progress,
        resolved_config=resolved,
    )
    print(format_result(result))
    print(f"\nwrote {result.run_dir}")
    return 0


def run_autoq(args: argparse.Namespace) -> int:
    from searchq import autoq
    from searchq.config.specs import AutoqSpec, QuantizationSpec
    from searchq.report.show import format_result

    config, task, hw = load_run_inputs(args, "autoq")
    qspec = (config.quantization if config is not None else None) or QuantizationSpec()
    spec = qspec.precision if isinstance(qspec.precision, AutoqSpec) else AutoqSpec()
    changes: dict[str, Any] = {}
    if args.bits is not None:
        changes["bits"] = args.bits
    if args.eval_subset_ratio is not None:
        changes["eval_subset_ratio"] = args.eval_subset_ratio
    if args.overlap_updates is not None:
        changes["overlap_updates"] = args.overlap_updates
    if changes:
        spec = replace(spec, **changes, explicit_keys=frozenset(spec.explicit_keys | set(changes)))
    resolved: dict[str, Any] = config.to_dict() if config is not None else {}
    resolved["searchq_run"] = {k: v for k, v in vars(args).items() if k != "rest"}
    result = autoq.search(
        task,
        ratio=args.ratio,
        bops_ratio=args.bops_ratio,
        latency_ms=args.latency_ms,
        latency_table=args.latency_table,
        episodes=args.episodes,
        warmup=args.warmup,
        hw=hw,
        spec=spec,
        quantization=qspec,
        weights_only=args.weights_only,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        out=args.out,
        seed=args.seed,
        progress=_progress() and not args.no_progress,
        resolved_config=resolved,
    )
    print(format_result(result))
    print(f"\nwrote {result.run_dir}")
    return 0


def run_elastic(args: argparse.Namespace) -> int:
    from searchq import elastic
    from searchq.elastic.spec import with_epochs
    from searchq.report.show import format_result

    config, task, _ = load_run_inputs(args, "elastic")
    training = config.bootstrapnas.training if config and config.bootstrapnas else {}
    spec = elastic.elastic_spec(training)
    if args.epochs is not None:
        spec = with_epochs(spec, args.epochs)
    resolved: dict[str, Any] = config.to_dict() if config is not None else {}
    resolved["searchq_run"] = {k: v for k, v in vars(args).items() if k != "rest"}
    result = elastic.train_supernet(
        task,
        spec,
        out=args.out,
        seed=args.seed,
        progress=_progress() and not args.no_progress,
        resume=args.resume,
        resolved_config=resolved,
    )
    if os.environ.get("RANK", "0") == "0":  # one report per torchrun launch
        if result.metrics:
            print(format_result(result))
        print(f"\nwrote {result.run_dir}")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from searchq.elastic.export import extract_to_file

    path = extract_to_file(args.run, subnet=args.subnet, out=args.out, best=args.best)
    print(f"wrote {path}")
    return 0


_NSGA_KEYS = {  # NNCF bootstrapNAS.search key -> search() argument
    "num_evals": "evals",
    "population": "population",
    "acc_delta": "acc_delta",
    "ref_acc": "ref_acc",
    "seed": "seed",
    "crossover_prob": "crossover_prob",
    "crossover_eta": "crossover_eta",
    "mutation_prob": "mutation_prob",
    "mutation_eta": "mutation_eta",
    "epsilon": "epsilon",
    "weights": "weights",
    "extreme_points_as_ref_points": "extreme_points_as_reference_points",
    "aspiration_points": "ref_points",
}


def run_nsga(args: argparse.Namespace) -> int:
    from searchq import nsga
    from searchq.report.show import format_result

    if not args.supernet:
        raise ConfigError(
            "--supernet RUN_DIR is required: the directory of a `searchq run elastic` run",
            key="supernet",
        )
    kwargs: dict[str, Any] = {}
    config = None
    if args.config:
        from searchq.config import load_config

        config = load_config(args.config)
        search = config.bootstrapnas.search if config.bootstrapnas else {}
        for key, name in _NSGA_KEYS.items():
            if key in search:
                kwargs[name] = search[key]
        if "algorithm" in search:
            kwargs["algorithm"] = str(search["algorithm"]).lower()
    for flag, name in (
        ("evals", "evals"),
        ("population", "population"),
        ("search_algorithm", "algorithm"),
        ("acc_delta", "acc_delta"),
        ("ref_acc", "ref_acc"),
        ("max_cost", "max_cost"),
    ):
        if getattr(args, flag) is not None:
            kwargs[name] = getattr(args, flag)
    resolved: dict[str, Any] = config.to_dict() if config is not None else {}
    resolved["searchq_run"] = {k: v for k, v in vars(args).items() if k != "rest"}
    if args.storage:  # resolved_config.json must not keep a database password
        from searchq.nsga.distributed import show_storage

        resolved["searchq_run"]["storage"] = show_storage(args.storage)
    seed = kwargs.pop("seed", args.seed)
    result = nsga.search(
        args.supernet,
        bits=args.bits,
        hw=args.hw or "trial",
        workers=args.workers,
        storage=args.storage,
        study=args.study,
        resume=args.resume,
        out=args.out,
        seed=int(seed),
        progress=_progress() and not args.no_progress,
        resolved_config=resolved,
        **kwargs,
    )
    print(format_result(result))
    print(f"\nwrote {result.run_dir}")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from searchq.compress.finetune import finetune_run
    from searchq.report.show import format_result

    result = finetune_run(
        args.config,
        task=args.task,
        epochs=args.epochs,
        lr=args.lr,
        resume=args.resume,
        export=args.export,
        out=args.out,
        seed=args.seed,
        progress=_progress() and not args.no_progress,
    )
    print(format_result(result))
    print(f"\nwrote {result.run_dir}")
    return 0
