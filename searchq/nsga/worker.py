"""One optuna worker of a shared study, and the entry point of the extra worker processes.

``searchq run nsga --workers N`` is worker 0 itself and starts N − 1 processes
``python -m searchq.nsga.worker PARAMS.json``; each rebuilds its own supernet and evaluation core
from the same options (one torch thread each, so N workers use N cores), samples with its own
seed, and runs :func:`work` until the study has ``evals`` COMPLETE trials.

A worker killed mid-trial leaves a RUNNING trial and nothing else that blocks (no lock is held
while evaluating). With a journal file, which has no heartbeat, every trial records its worker's
host, pid and process start time, and before each new trial a worker fails the RUNNING trials of
dead processes on its own host and re-queues their parameters (:func:`fail_dead_trials`; a
RUNNING trial that never recorded a worker is taken as orphaned after :data:`ORPHAN_AFTER_S`);
with an RDB storage optuna's heartbeat does the same across hosts. Either way the re-queued trial is
made by :class:`optuna.storages.RetryHeartbeatStaleTrialCallback`, so ``system_attrs`` carry
``failed_trial`` / ``retry_history`` and a trial is retried at most :data:`MAX_RETRY` times.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, Trial, TrialState

from searchq.config.warn import SearchqWarning
from searchq.errors import CheckpointError, SearchqError
from searchq.nsga.problem import SubnetProblemCore

__all__ = [
    "CONSTRAINT",
    "EVAL_ATTR",
    "MAX_RETRY",
    "WORKER_ATTR",
    "WorkerOptions",
    "fail_dead_trials",
    "main",
    "process_alive",
    "work",
]

WORKER_ATTR = "searchq:worker"  # {"host", "pid", "start"} of the process running the trial
EVAL_ATTR = "searchq:eval"  # {"macs", "bit_ops", "metrics"} of the evaluation
CONSTRAINT = "cost"  # trial.constraints["cost"] = cost − max_cost; ≤ 0 is feasible
MAX_RETRY = 3
ORPHAN_AFTER_S = 120.0  # a RUNNING trial that never recorded its worker is failed after this
STORAGE_ENV = (
    "SEARCHQ_WORKER_STORAGE"  # the storage spec, kept out of files (it may hold a password)
)
OPTIONS_VERSION = 1


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker process needs; written as JSON by the command that starts it."""

    study_name: str
    storage: str  # shown form (password hidden); the real spec comes in $SEARCHQ_WORKER_STORAGE
    sampler: str
    population: int
    seed: int
    evals: int
    max_cost: float | None
    index: int
    core: dict[str, Any] = field(default_factory=dict)  # keyword arguments of build_core
    schema_version: int = OPTIONS_VERSION

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> WorkerOptions:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read worker options {path}: {exc}") from None
        if data.get("schema_version") != OPTIONS_VERSION:
            raise CheckpointError(
                f"worker options {path} have schema_version {data.get('schema_version')}, "
                f"expected {OPTIONS_VERSION}; start the workers with the same searchq version"
            )
        return cls(**data)


def _process_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a Linux process; None if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2 :].split()  # fields 3… (the name may hold spaces)
    return rest[0], int(rest[19])  # field 3 = state, field 22 = starttime


def _identity() -> dict[str, Any]:
    stat = _process_stat(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": stat[1] if stat else None}


def process_alive(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` (started at ``start`` ticks, so a reused pid does not count) runs;
    a zombie — killed but not yet reaped by its parent — is dead."""
    if sys.platform == "win32":
        return True  # os.kill(pid, 0) would terminate it there; no recovery on Windows
    if Path("/proc/self/stat").exists():
        stat = _process_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False
        return start is None or stat[1] == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose worker process on this host is dead and re-queue them.

    Several workers may find the same dead trial; the storage lets exactly one of them finish it
    (the others get ``UpdateFinishedTrialError``), and only that one re-queues it.
    """
    host = socket.gethostname()
    now = datetime.now()  # journal trials carry naive local times
    retried = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = trial.user_attrs.get(WORKER_ATTR)
        if isinstance(who, Mapping):
            if who.get("host") != host or process_alive(int(who["pid"]), who.get("start")):
                continue
            culprit = f"dead worker pid {who['pid']}"
        else:  # killed between taking the trial and recording itself (milliseconds)
            started = trial.datetime_start
            if started is None or (now - started).total_seconds() < ORPHAN_AFTER_S:
                continue
            culprit = "a worker that never recorded itself"
        try:
            failed = study.tell(trial.number, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, ValueError):
            continue  # another worker was first
        # The retry must not carry the dead pid: a worker looking before the new owner records
        # itself would fail it again.
        failed.user_attrs = {k: v for k, v in failed.user_attrs.items() if k != WORKER_ATTR}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, failed)
        warnings.warn(
            f"trial {trial.number} of {culprit} failed and re-queued",
            SearchqWarning,
            stacklevel=2,
        )
        retried.append(trial.number)
    return retried


def _complete_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def work(
    study: optuna.Study,
    core: SubnetProblemCore,
    *,
    names: Sequence[str],
    evals: int,
    max_cost: float | None,
    recover_dead: bool,
) -> None:
    """Evaluate trials of ``study`` until it has ``evals`` COMPLETE trials (one trial more per
    other worker still running at that moment is possible)."""
    uppers = [int(u) for u in core.encoding.upper]
    me = _identity()

    def objective(trial: Trial) -> tuple[float, float]:
        trial.set_user_attr(WORKER_ATTR, me)
        x = [trial.suggest_int(n, 0, u) for n, u in zip(names, uppers, strict=True)]
        ev = core.evaluate(x)
        attrs = {"macs": int(ev.macs), "bit_ops": ev.bit_ops, "metrics": dict(ev.metrics)}
        trial.set_user_attr(EVAL_ATTR, attrs)
        if max_cost is not None:  # feasible when ≤ 0; optuna 5's samplers read trial.constraints
            trial.set_constraint(CONSTRAINT, ev.cost - max_cost)
        return ev.accuracy, ev.cost

    def recover(study: optuna.Study, _: FrozenTrial) -> None:
        fail_dead_trials(study)

    callbacks: list[Any] = [MaxTrialsCallback(evals, states=(TrialState.COMPLETE,))]
    if recover_dead:
        fail_dead_trials(study)
        callbacks.insert(0, recover)  # after each trial = before asking for the next
    if _complete_count(study) >= evals:
        return
    study.optimize(objective, callbacks=callbacks)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m searchq.nsga.worker PARAMS.json``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m searchq.nsga.worker PARAMS.json", file=sys.stderr)
        return 2
    import torch

    from searchq.nsga import distributed
    from searchq.nsga.search import build_core

    torch.set_num_threads(1)  # one core per worker: N workers evaluate on N cores
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        opts = WorkerOptions.read(Path(args[0]))
        core, _ = build_core(**opts.core)
        spec = os.environ.get(STORAGE_ENV, opts.storage)
        storage = distributed.open_storage(spec)
        study = distributed.join_study(
            storage,
            spec,
            opts.study_name,
            core,
            sampler=opts.sampler,
            population=opts.population,
            seed=opts.seed,
        )
        work(
            study,
            core,
            names=distributed.param_names(core.encoding),
            evals=opts.evals,
            max_cost=opts.max_cost,
            recover_dead=distributed.is_journal(spec),
        )
    except SearchqError as exc:
        print(f"searchq worker: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
