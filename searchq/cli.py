"""The ``searchq`` command line. The only module that parses argv.

Every user error is one line ``searchq: error: ...`` on stderr and exit status 2 (a traceback
only with ``--debug``).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from searchq import __version__
from searchq.errors import ConfigError, SearchqError

ALGORITHMS = ("manual", "hawq", "autoq", "elastic", "nsga")
NOT_YET: dict[str, str] = {}
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        hint = f" (see `{self.prog} --help`)"
        self.exit(EXIT_USAGE, f"searchq: error: {message}{hint}\n")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers, e.g. 2,4,8"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one value, e.g. 4,8")
    return values


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("common options")
    g.add_argument("--config", metavar="FILE", help="NNCF-style JSON config (comments allowed)")
    g.add_argument(
        "--task",
        default=None,
        help="built-in task (see `searchq tasks`; default digits) or package.module:function "
        "or path/to/file.py:function",
    )
    g.add_argument(
        "--hw",
        default=None,
        help="hardware preset cpu|gpu|npu|trial or a JSON file (default: the config's "
        "target_device, else trial)",
    )
    g.add_argument("--out", metavar="DIR", help="run directory (default runs/<algo>-<task>-<time>)")
    g.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--debug", action="store_true", help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="searchq",
        description="Search compressed versions of a trained PyTorch model: mixed-precision bits "
        "(HAWQ, AutoQ) and elastic subnets (NSGA-II).",
    )
    parser.add_argument("--version", action="version", version=f"searchq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run a search / apply an assignment",
        description="Run ALGO, or the algorithm named in --config FILE.",
    )
    algos = run.add_subparsers(dest="algorithm", metavar="ALGO", parser_class=_Parser)

    manual = algos.add_parser(
        "manual",
        help="apply given bits (NNCF bitwidth_per_scope or --bits-file), evaluate, write the run",
    )
    _common(manual)
    m = manual.add_argument_group("manual options")
    m.add_argument("--bits-file", metavar="FILE", help="assignment JSON (or a result.json)")
    m.add_argument("--w-bits", type=int, help="bits of weights not listed (default config or 8)")
    m.add_argument(
        "--a-bits", type=int, help="bits of activations not listed (default config or 8)"
    )
    m.add_argument("--weights-only", action="store_true", help="do not quantize activations")
    m.add_argument("--range-init", metavar="TYPE", help="range init type (default mixed_min_max)")
    m.add_argument("--range-samples", type=int, metavar="N", help="range init samples (256)")
    m.add_argument("--bn-samples", type=int, metavar="N", help="BN adaptation samples (2000)")

    hawq = algos.add_parser(
        "hawq",
        help="Hessian-aware mixed precision: traces x quantization noise, exact allocation",
        description="HAWQ: per-layer Hessian traces (exact for piecewise-linear networks, "
        "Hutchinson otherwise) times quantization noise, then "
        "the exact minimum under a budget (default: bit-complexity ratio 1.5).",
    )
    _common(hawq)
    h = hawq.add_argument_group("hawq options")
    budget = h.add_mutually_exclusive_group()
    budget.add_argument("--ratio", type=float, help="bit-complexity ratio to reach (>=; 1.5)")
    budget.add_argument("--size-ratio", type=float, help="model size vs FP32 to stay under (<=)")
    budget.add_argument("--latency-ms", type=float, help="latency to stay under (needs a table)")
    h.add_argument("--latency-table", metavar="FILE", help='JSON {"op": {"w": {"a": ms}}}')
    h.add_argument("--bits", type=_int_list, help="candidate bits, e.g. 2,4,8 (default 2,4,8)")
    h.add_argument("--traces", metavar="FILE", help="load traces from FILE, or save them there")
    h.add_argument("--selection", choices=["exact", "monotone"], help="exact (default) or NNCF's")
    h.add_argument("--mode", choices=["liberal", "strict"], help="bitwidth_assignment_mode")
    h.add_argument(
        "--trace-method",
        choices=["auto", "gauss_newton", "hutchinson"],
        help="auto (default): exact traces for piecewise-linear nets, else Hutchinson",
    )
    h.add_argument("--num-data-points", type=int, metavar="N", help="samples for traces (100)")
    h.add_argument("--batch-size", type=int, metavar="N", help="Hessian batch size")
    h.add_argument("--iter-number", type=int, metavar="N", help="max Hutchinson probes (200)")
    h.add_argument("--stop", choices=["pick", "stderr", "tolerance"], help="stop rule (pick)")
    h.add_argument("--stderr-fraction", type=float, help="stderr rule target (0.05)")
    h.add_argument("--tolerance", type=float, help="NNCF's tolerance rule (1e-4)")
    h.add_argument("--deflation-rank", type=int, metavar="K", help="Hutch++ rank (16; 0 = off)")
    h.add_argument(
        "--no-activation-sensitivity",
        dest="activation_sensitivity",
        action="store_const",
        const=False,
        help="score weight noise only (NNCF's objective)",
    )
    h.add_argument("--finetune-epochs", type=int, default=0, metavar="N", help="QAT epochs after")
    h.add_argument("--weights-only", action="store_true", help="do not quantize activations")

    autoq = algos.add_parser(
        "autoq",
        help="DDPG agent choosing bits quantizer by quantizer under a budget (HAQ-style)",
        description="AutoQ: a DDPG agent picks each quantizer's bits; every episode's proposal is "
        "made feasible by the smallest change and scored by accuracy after BN adaptation.",
    )
    _common(autoq)
    q = autoq.add_argument_group("autoq options")
    abudget = q.add_mutually_exclusive_group()
    abudget.add_argument("--ratio", type=float, help="model size vs FP32 to stay under (0.15)")
    abudget.add_argument("--bops-ratio", type=float, help="bit-complexity ratio to reach (>=)")
    abudget.add_argument("--latency-ms", type=float, help="latency to stay under (needs a table)")
    q.add_argument("--latency-table", metavar="FILE", help='JSON {"op": {"w": {"a": ms}}}')
    q.add_argument("--episodes", type=int, metavar="N", help="episodes (iter_number; 300)")
    q.add_argument("--warmup", type=int, metavar="N", help="random warm-up episodes (20)")
    q.add_argument("--bits", type=_int_list, help="candidate bits, e.g. 2,4,8 (default 2,4,8)")
    q.add_argument("--eval-subset-ratio", type=float, help="share of validation data per episode")
    q.add_argument("--weights-only", action="store_true", help="do not quantize activations")
    q.add_argument("--checkpoint-every", type=int, default=5, metavar="N", help="episodes (5)")
    q.add_argument(
        "--no-overlap-updates",
        dest="overlap_updates",
        action="store_const",
        const=False,
        help="update the agent after each evaluation (HAQ's order) instead of in a child "
        "process during it",
    )
    q.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")

    elastic = algos.add_parser(
        "elastic",
        help="train an elastic supernet (width / depth / kernel) by progressive shrinking",
        description="Progressive shrinking with knowledge distillation and BN recalibration; "
        "NNCF's bootstrapNAS.training keys in --config.",
    )
    _common(elastic)
    e = elastic.add_argument_group("elastic options")
    e.add_argument("--epochs", type=int, metavar="N", help="set every stage to N epochs")
    e.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted training")

    nsga = algos.add_parser(
        "nsga",
        help="NSGA-II search of subnets (and bits) on a trained supernet",
        description="Pareto search over an elastic run's supernet: accuracy vs MACs (or "
        "bit-ops with --bits); pymoo NSGA-II / R-NSGA-II or optuna samplers with workers.",
    )
    _common(nsga)
    n = nsga.add_argument_group("nsga options")
    n.add_argument("--supernet", metavar="RUN_DIR", help="an elastic run directory (required)")
    n.add_argument("--evals", type=int, metavar="N", help="evaluations (num_evals; 3000)")
    n.add_argument("--population", type=int, metavar="N", help="population size (40)")
    n.add_argument(
        "--algorithm",
        dest="search_algorithm",
        choices=["nsga2", "rnsga2", "optuna-nsga2", "optuna-tpe"],
        help="optimiser (nsga2; several workers use optuna-nsga2)",
    )
    n.add_argument("--bits", type=_int_list, help="also search bits per quantizer, e.g. 4,8")
    n.add_argument("--acc-delta", type=float, help="accepted accuracy drop (1)")
    n.add_argument("--ref-acc", type=float, help="reference accuracy (-1: maximal subnet's)")
    n.add_argument("--max-cost", type=float, help="budget on the cost objective (constraint)")
    n.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (1)")
    n.add_argument("--storage", metavar="URL", help="optuna storage, e.g. postgresql://...")
    n.add_argument("--study", metavar="NAME", help="optuna study name (with --storage)")
    n.add_argument("--resume", action="store_true", help="continue the study")

    extract = sub.add_parser("extract", help="write a standalone subnet of a trained supernet")
    extract.add_argument("run", metavar="RUN_DIR", help="an elastic run directory")
    extract.add_argument("--subnet", metavar="SUBNET.json", help="subnet config (default: minimal)")
    extract.add_argument("--out", required=True, metavar="FILE", help="where to write it (.pt)")
    extract.add_argument("--best", action="store_true", help="use supernet_best.pt, not _last")
    extract.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    ft = sub.add_parser(
        "finetune",
        help="compress as a config says (quantization / magnitude_sparsity), fine-tune with its "
        "schedule, checkpoint, export",
    )
    ft.add_argument("--config", required=True, metavar="FILE", help="NNCF-style JSON config")
    ft.add_argument("--task", default="digits", help="task (see `searchq tasks`; default digits)")
    ft.add_argument(
        "--epochs", type=int, default=None, help="epochs (default: the config's epochs, else 5)"
    )
    ft.add_argument(
        "--lr", type=float, default=None, help="learning rate (default: optimizer.base_lr, 0.01)"
    )
    ft.add_argument("--resume", metavar="CKPT", help="checkpoint file or finetune run directory")
    ft.add_argument("--export", metavar="FILE.onnx", help="write the result as ONNX (Q/DQ)")
    ft.add_argument(
        "--out", metavar="DIR", help="run directory (default runs/finetune-<task>-<time>)"
    )
    ft.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    ft.add_argument("--no-progress", action="store_true", help="no progress output")
    ft.add_argument("--debug", action="store_true", help="show tracebacks")

    show = sub.add_parser("show", help="print a result: budget, accuracy, bits per layer")
    show.add_argument("result", metavar="RESULT", help="run directory or its result.json")
    show.add_argument("--json", action="store_true", help="print the raw JSON")
    show.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    tasks = sub.add_parser("tasks", help="list the built-in tasks")
    tasks.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    hw = sub.add_parser("hw", help="list hardware presets or show one preset's bit rules")
    hw.add_argument("preset", nargs="?", help="cpu|gpu|npu|trial or a JSON file")
    hw.add_argument("--json", action="store_true", help="print the preset as JSON")
    hw.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def _insert_algorithm(argv: list[str]) -> list[str]:
    """``searchq run --config FILE`` → ``searchq run <algorithm from FILE> --config FILE``."""
    if not argv or argv[0] != "run" or (len(argv) > 1 and argv[1] in ALGORITHMS):
        return argv
    if len(argv) > 1 and argv[1] in ("-h", "--help"):
        return argv
    config_path = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            config_path = argv[i + 1]
        elif arg.startswith("--config="):
            config_path = arg.split("=", 1)[1]
    if config_path is None:
        if len(argv) > 1 and not argv[1].startswith("-"):
            raise ConfigError(
                f"unknown algorithm {argv[1]!r}; choose one of {list(ALGORITHMS)} or pass "
                "--config FILE to take it from the file"
            )
        raise ConfigError(
            f"name an algorithm ({'|'.join(ALGORITHMS)}) or pass --config FILE: "
            "searchq run hawq --ratio 1.5"
        )
    from searchq.config import load_config

    config = load_config(config_path)
    config.require_supported()
    if config.algorithm is None:
        raise ConfigError(
            "the config has no section searchq can run (compression with quantization / "
            "magnitude_sparsity, or bootstrapNAS); add one or name the algorithm: "
            "searchq run manual --config FILE",
            file=config_path,
        )
    algorithm = {"quantization": "manual"}.get(config.algorithm, config.algorithm)
    if algorithm not in ALGORITHMS:
        raise SearchqError(
            f"the config describes {algorithm}, which is applied while fine-tuning: run "
            f"`searchq finetune --config {config_path}`; `searchq run` runs "
            f"{'|'.join(ALGORITHMS)}"
        )
    return ["run", algorithm, *argv[1:]]


def _reject_unbuilt(argv: list[str]) -> None:
    if (
        len(argv) > 1
        and argv[0] == "run"
        and argv[1] in NOT_YET
        and not {"-h", "--help"} & set(argv)
    ):
        raise SearchqError(
            f"'{argv[1]}' is not implemented yet ({NOT_YET[argv[1]]}); available now: "
            "manual, hawq, autoq, elastic, nsga"
        )


def _format_warning(message: Any, category: Any, filename: str, lineno: int, line: Any = None):
    return f"searchq: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    # Before torch loads: OpenMP threads that spin while waiting turn one busy neighbour process
    # into a 14x slowdown (`searchq run hawq` on digits, 2 cores: 6 s alone or with 1 thread,
    # 90 s beside one busy process with 2 spinning threads, 12 s with passive waiting).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    warnings.formatwarning = _format_warning  # type: ignore[assignment]
    try:
        args_list = _insert_algorithm(args_list)
        _reject_unbuilt(args_list)
        parser = build_parser()
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return _dispatch(parser, args)
    except SearchqError as exc:
        if debug:
            raise
        print(f"searchq: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("searchq: interrupted", file=sys.stderr)
        return 130


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "show":
        return _cmd_show(args)
    if args.command == "extract":
        from searchq import commands

        return commands.run_extract(args)
    if args.command == "tasks":
        return _cmd_tasks()
    if args.command == "finetune":
        from searchq import commands

        return commands.run_finetune(args)
    if args.command == "hw":
        return _cmd_hw(args)
    if args.command == "run":
        if args.algorithm is None:
            raise ConfigError(f"name an algorithm ({'|'.join(ALGORITHMS)}) or pass --config FILE")
        if args.algorithm in NOT_YET:
            raise SearchqError(
                f"'{args.algorithm}' is not implemented yet ({NOT_YET[args.algorithm]}); "
                "available now: manual, hawq, autoq, elastic, nsga"
            )
        if args.no_progress:
            os.environ["SEARCHQ_PROGRESS"] = "0"
        from searchq import commands

        if args.algorithm == "hawq":
            return commands.run_hawq(args)
        if args.algorithm == "autoq":
            return commands.run_autoq(args)
        if args.algorithm == "elastic":
            return commands.run_elastic(args)
        if args.algorithm == "nsga":
            return commands.run_nsga(args)
        return commands.run_manual(args)
    parser.print_help()
    return EXIT_USAGE


def _cmd_show(args: argparse.Namespace) -> int:
    from searchq.report.show import format_result
    from searchq.runner import Result

    result = Result.load(args.result)
    if args.json:
        import json

        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_result(result))
    return 0


def _cmd_tasks() -> int:
    from searchq.tasks import list_tasks

    rows = list_tasks()
    width = max(len(n) for n, _ in rows)
    for name, description in rows:
        print(f"{name:{width}s}  {description}")
    print("\nuser tasks: --task package.module:function or --task path/to/file.py:function")
    return 0


def _cmd_hw(args: argparse.Namespace) -> int:
    from searchq.core.hardware import list_presets, load_hardware

    if args.preset is None:
        for name in list_presets():
            print(f"{name:6s} {load_hardware(name).description}")
        return 0
    hw = load_hardware(args.preset)
    if args.json:
        import json

        print(json.dumps(hw.to_dict(), indent=2))
        return 0
    print(f"{hw.name}: {hw.description}")
    for op_type, rules in hw.ops.items():
        for kind in ("weights", "activations"):
            for opt in rules.options(kind):
                gran = "/".join("per-channel" if pc else "per-tensor" for pc in opt.per_channel)
                bits = ",".join(map(str, opt.bits))
                print(
                    f"  {op_type:15s} {kind:12s} bits {bits:24s} {'/'.join(opt.modes):21s} {gran}"
                )
    return 0


def _path(text: str | None) -> Path | None:
    return Path(text) if text else None


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
