"""``searchq run nsga``: multi-objective search of subnets (and bits) on a trained supernet.

pymoo's NSGA-II / R-NSGA-II with NNCF 2.x BootstrapNAS's defaults (SBX p 0.9 η 10, PM p 0.02
η 3, rounding repair, duplicate elimination), or optuna's samplers (NSGA-II, TPE) through a
storage so several workers share one study (:mod:`searchq.nsga.distributed`). Every evaluation
is recorded; the best subnet is the cheapest one with accuracy ≥ ``ref_acc − acc_delta``
(``ref_acc = -1``: the measured accuracy of the maximal subnet).
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from searchq._io import write_json_atomic, write_text_atomic
from searchq.config.specs import QuantizationSpec
from searchq.config.warn import SearchqWarning
from searchq.core.assignment import Assignment
from searchq.core.evaluate import AccuracyEvaluator
from searchq.core.insert import QuantizedModel
from searchq.core.pipeline import take_samples
from searchq.elastic.export import load_supernet
from searchq.elastic.space import SubnetConfig
from searchq.errors import ConfigError
from searchq.nsga import plots
from searchq.nsga.indicators import ProgressTracker
from searchq.nsga.problem import Encoding, Evaluation, SubnetProblemCore
from searchq.prepare import build_space
from searchq.runner import Result, Run, default_run_dir

__all__ = ["ALGORITHMS", "build_core", "make_algorithm", "search"]

ALGORITHMS = ("nsga2", "rnsga2", "optuna-nsga2", "optuna-tpe")


def search(
    supernet_run: str | Path,
    *,
    evals: int = 3000,
    population: int = 40,
    algorithm: str = "nsga2",
    bits: Sequence[int] | None = None,
    hw: str = "trial",
    acc_delta: float = 1.0,
    ref_acc: float = -1.0,
    max_cost: float | None = None,
    ref_points: Sequence[Sequence[float]] | None = None,
    epsilon: float = 0.001,
    weights: Sequence[float] | None = None,
    extreme_points_as_reference_points: bool = False,
    crossover_prob: float = 0.9,
    crossover_eta: float = 10.0,
    mutation_prob: float = 0.02,
    mutation_eta: float = 3.0,
    bn_samples: int = 2000,
    eval_subset_ratio: float = 1.0,
    workers: int = 1,
    storage: str | None = None,
    study: str | None = None,
    resume: bool = False,
    out: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    resolved_config: Mapping[str, Any] | None = None,
) -> Result:
    """Search the supernet of an elastic run directory (see the module docstring)."""
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"algorithm {algorithm!r} is not one of {list(ALGORITHMS)}", key="search.algorithm"
        )
    if evals < 1 or population < 2:
        raise ConfigError(
            f"evals {evals} must be >= 1 and population {population} >= 2", key="search.num_evals"
        )
    if workers < 1:
        raise ConfigError(f"--workers {workers} must be >= 1", key="workers")
    if population > evals:
        raise ConfigError(
            f"population {population} is larger than num_evals {evals}; "
            "lower population or raise num_evals",
            key="search.population",
        )
    if (workers > 1 or storage or study or resume) and not algorithm.startswith("optuna"):
        algorithm = "optuna-nsga2"  # several workers share a study: optuna's path
    if algorithm.startswith("optuna"):  # fail on a typo before loading the supernet
        from searchq.nsga.distributed import check_storage, check_study_name

        check_storage(storage)
        if study is not None:
            check_study_name(study)
    core_options: dict[str, Any] = {
        "supernet_run": str(Path(supernet_run).resolve()),
        "bits": list(bits) if bits else None,
        "hw": hw,
        "bn_samples": bn_samples,
        "eval_subset_ratio": eval_subset_ratio,
    }
    core, task = build_core(**core_options)
    encoding = core.encoding
    run_dir = Path(out) if out is not None else default_run_dir("nsga", task.name)
    rec = Run(
        run_dir,
        algorithm="nsga",
        task=task.name,
        hardware=hw if bits else "-",
        seed=seed,
        config={
            **(resolved_config or {}),
            "nsga": {
                "supernet": str(supernet_run),
                "evals": evals,
                "population": population,
                "algorithm": algorithm,
                "bits": list(bits) if bits else None,
                "acc_delta": acc_delta,
                "ref_acc": ref_acc,
                "max_cost": max_cost,
            },
        },
        progress=progress,
    )
    tracker = ProgressTracker(rec, core)
    with rec.timer("search"):
        if algorithm.startswith("optuna"):
            from searchq.nsga.distributed import run_optuna

            run_optuna(
                core,
                tracker,
                evals=evals,
                population=population,
                sampler=algorithm.split("-", 1)[1],
                workers=workers,
                storage=storage,
                study_name=study,
                resume=resume,
                seed=seed,
                run_dir=rec.dir,
                max_cost=max_cost,
                core_options=core_options,
            )
        else:
            _run_pymoo(
                core,
                tracker,
                evals=evals,
                population=population,
                algorithm=algorithm,
                seed=seed,
                max_cost=max_cost,
                ref_points=ref_points,
                epsilon=epsilon,
                weights=weights,
                extreme=extreme_points_as_reference_points,
                crossover=(crossover_prob, crossover_eta),
                mutation=(mutation_prob, mutation_eta),
            )
    return _finish(rec, core, encoding, tracker, task, acc_delta, ref_acc, max_cost, seed, bits)


def build_core(
    supernet_run: str | Path,
    *,
    bits: Sequence[int] | None = None,
    hw: str = "trial",
    bn_samples: int = 2000,
    eval_subset_ratio: float = 1.0,
) -> tuple[SubnetProblemCore, Any]:
    """(evaluation core, task) of a search; every optuna worker process rebuilds its own from
    the same options, so all workers measure a configuration identically."""
    supernet, task, _ = load_supernet(supernet_run)
    indicators = _trained_indicators(Path(supernet_run))
    samples = take_samples(task.train_loader, bn_samples)
    evaluator = (
        AccuracyEvaluator(task.val_loader, subset_ratio=eval_subset_ratio)
        if eval_subset_ratio < 1.0
        else task.evaluator
    )
    assert evaluator is not None
    qmodel = None
    if bits:
        space = build_space(supernet.graph, QuantizationSpec(), hw, bits=bits)
        supernet.activate(supernet.maximal())
        qmodel = QuantizedModel(supernet.model, space)
        qmodel.init_ranges(task.train_loader, num_samples=256)
    encoding = Encoding.build(supernet, qmodel=qmodel, **indicators)
    return SubnetProblemCore(supernet, encoding, evaluator, samples, qmodel=qmodel), task


def _trained_indicators(run_dir: Path) -> dict[str, int]:
    result = run_dir / "result.json"
    if not result.exists():
        return {}
    extra = json.loads(result.read_text(encoding="utf-8")).get("extra", {})
    ind = extra.get("trained_indicators", {})
    dims = ind.get("dims")
    out = {
        "width_indicator": int(ind.get("width", -1)),
        "depth_indicator": int(ind.get("depth", -1)),
    }
    if dims is not None and "width" not in dims:
        out["width_indicator"] = 1
    if dims is not None and "depth" not in dims:
        out["depth_indicator"] = 0
    return out


def make_algorithm(
    algorithm: str = "nsga2",
    *,
    population: int = 40,
    crossover: tuple[float, float] = (0.9, 10.0),
    mutation: tuple[float, float] = (0.02, 3.0),
    ref_points: Any = None,
    epsilon: float = 0.001,
    weights: Any = None,
    extreme: bool = False,
) -> Any:
    """pymoo NSGA-II / R-NSGA-II with NNCF's operators on an integer genome."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.moo.rnsga2 import RNSGA2
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling

    ops: dict[str, Any] = dict(
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=crossover[0], eta=crossover[1], vtype=float, repair=RoundingRepair()),
        mutation=PM(prob=mutation[0], eta=mutation[1], vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    if algorithm == "rnsga2":
        points = np.asarray(ref_points if ref_points is not None else [[-100.0, 0.0]], dtype=float)
        return RNSGA2(
            ref_points=points,
            pop_size=population,
            epsilon=epsilon,
            weights=None if weights is None else np.asarray(weights),
            extreme_points_as_reference_points=extreme,
            **ops,
        )
    return NSGA2(pop_size=population, **ops)


def _run_pymoo(
    core: SubnetProblemCore,
    tracker: ProgressTracker,
    *,
    evals: int,
    population: int,
    algorithm: str,
    seed: int,
    max_cost: float | None,
    ref_points: Any,
    epsilon: float,
    weights: Any,
    extreme: bool,
    crossover: tuple[float, float],
    mutation: tuple[float, float],
) -> None:
    from pymoo.core.problem import Problem
    from pymoo.optimize import minimize

    enc = core.encoding
    if enc.n_var == 0:
        raise ConfigError(
            "the supernet has no elastic dimension to search (and no --bits)", key="search"
        )

    class _Problem(Problem):
        def __init__(self) -> None:
            super().__init__(
                n_var=enc.n_var,
                n_obj=2,
                n_ieq_constr=1 if max_cost else 0,
                xl=np.zeros(enc.n_var),
                xu=enc.upper.astype(float),
                vtype=int,
            )

        def _evaluate(self, X: np.ndarray, out: dict, *args: Any, **kwargs: Any) -> None:
            rows = [core.evaluate(x) for x in X]
            out["F"] = np.asarray([[-r.accuracy, r.cost] for r in rows])
            if max_cost:
                out["G"] = np.asarray([[r.cost - max_cost] for r in rows])
            tracker.update()

    algo = make_algorithm(
        algorithm,
        population=population,
        crossover=crossover,
        mutation=mutation,
        ref_points=ref_points,
        epsilon=epsilon,
        weights=weights,
        extreme=extreme,
    )
    minimize(_Problem(), algo, ("n_eval", evals), seed=seed, verbose=False)


def _select(
    core: SubnetProblemCore, ref: float, acc_delta: float, max_cost: float | None
) -> tuple[np.ndarray, Evaluation] | None:
    best = None
    for x, e in core.history:
        if e.accuracy < ref - acc_delta or (max_cost is not None and e.cost > max_cost):
            continue
        if best is None or (e.cost, -e.accuracy) < (best[1].cost, -best[1].accuracy):
            best = (x, e)
    return best


def _finish(
    rec: Run,
    core: SubnetProblemCore,
    enc: Encoding,
    tracker: ProgressTracker,
    task: Any,
    acc_delta: float,
    ref_acc: float,
    max_cost: float | None,
    seed: int,
    bits: Sequence[int] | None,
) -> Result:
    supernet = core.supernet
    max_cfg = supernet.maximal()
    max_x = enc.encode(max_cfg, core.qmodel.space.maximal() if core.qmodel else None)
    reference = core.evaluate(max_x)
    ref = reference.accuracy if ref_acc < 0 else ref_acc
    chosen = _select(core, ref, acc_delta, max_cost)
    if chosen is None:
        warnings.warn(
            f"no evaluated subnet reaches accuracy {ref - acc_delta:.2f} "
            f"(ref_acc {ref:.2f} - acc_delta {acc_delta}); the maximal subnet is "
            "chosen",
            SearchqWarning,
            stacklevel=2,
        )
        chosen = (max_x, reference)
    x, ev = chosen
    cfg, assignment = enc.decode(x)
    cfg = supernet.space.validate(cfg)
    _write_evaluations(rec.dir / "evaluations.csv", core)
    write_json_atomic(rec.dir / "subnet.json", cfg.to_dict())
    front = tracker.front()
    rec.figure("pareto", plots.pareto_figure(core, front, ev, bits=bool(bits)))
    rec.figure("progress", plots.progress_figure(tracker.rows, tracker.reference))
    full = Assignment(
        weights=dict(assignment.weights) if assignment else {},
        activations=dict(assignment.activations) if assignment else {},
        subnet=cfg.to_dict(),
    )
    kind = "bit_ops_ratio" if bits else "mmacs"
    metrics = {
        "accuracy": ev.accuracy,
        "reference_accuracy": ref,
        "macs": float(ev.macs),
        "max_macs": float(core.max_macs),
        "cost": ev.cost,
        **dict(ev.metrics),
    }
    return rec.finish(
        Result(
            algorithm="nsga",
            task=task.name,
            hardware=rec.hardware,
            budget={"kind": kind, "target": max_cost, "achieved": ev.cost},
            metrics=metrics,
            assignment=full,
            seed=seed,
            extra={
                "evaluations": len(core.history),
                "distinct": len(core.cache),
                "front": [{"accuracy": e.accuracy, "cost": e.cost} for _, e in front],
                "hv_reference_point": list(tracker.reference),
                "final_hv": tracker.rows[-1]["hv"] if tracker.rows else None,
            },
        )
    )


def _write_evaluations(path: Path, core: SubnetProblemCore) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["evaluation", "accuracy", "cost", "macs", "bit_ops", "config"])
    for i, (x, e) in enumerate(core.history):
        cfg, bits = core.encoding.decode(x)
        row = {"subnet": cfg.to_dict(), **({"bits": bits.to_dict()} if bits else {})}
        writer.writerow([i, e.accuracy, e.cost, e.macs, e.bit_ops, json.dumps(row)])
    write_text_atomic(path, buf.getvalue())


_ = SubnetConfig  # the subnet JSON form (see searchq.elastic.space)
