"""Optuna's samplers for ``searchq run nsga``: one study, shared by any number of workers.

A trial is one evaluation: one ``suggest_int`` per genome variable, named after what it controls
(``w:<width group>``, ``k:<conv>``, ``d:<block>``, ``b:<quantizer>``, see :func:`param_names`),
values (accuracy, maximised; cost, minimised) and user attrs with MACs, bit-ops and every metric.
The sampler is always passed explicitly (optuna 5 changed the default): NSGA-II (Deb et al.,
"A fast and elitist multiobjective genetic algorithm: NSGA-II", IEEE TEVC 2002) or multivariate
TPE (Falkner et al., ICML 2018), with ``cost − max_cost ≤ 0`` as the constraint (Deb's
constrained domination; ``Trial.set_constraint``) when a budget is set.

Where the study lives (``--storage``):

* nothing: an optuna journal file ``<run dir>/study.journal``; ``--workers N`` runs N processes on
  this host against it;
* ``FILE.journal``: a journal file elsewhere, e.g. shared by several commands on one host;
* ``postgresql://USER:PASSWORD@HOST:PORT/DB`` (or ``mysql+pymysql://…``, ``sqlite:///FILE.db``):
  optuna's RDB storage; the same command on many machines with ``--study NAME --resume`` joins
  one study.

A worker killed mid-trial has its trial failed and re-queued (:mod:`searchq.nsga.worker`): by
optuna's heartbeat for RDB storages (interval ``$SEARCHQ_HEARTBEAT_S``, default 10 s; stale after
three intervals), by a check of the recorded pid for journal files, which have no heartbeat.

Seeds: the process that creates the study samples with ``seed`` and its extra workers with seeds
derived from it; a process that joins an existing study (``--resume``) mixes in its pid and the
time, so two machines started alike do not propose the same subnets. A fresh single-worker run
is therefore reproducible; runs with several workers depend on timing.

When every worker has stopped, the study's COMPLETE trials, in trial-number order, become
``core.history`` (the progress tracker updated once per ``population`` trials), so the outputs
of :mod:`searchq.nsga.search` are those of the pymoo path.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.study import StudyDirection
from optuna.trial import TrialState

from searchq.config.warn import SearchqWarning
from searchq.errors import ConfigError
from searchq.nsga.indicators import ProgressTracker
from searchq.nsga.problem import Encoding, Evaluation, SubnetProblemCore
from searchq.nsga.worker import (
    EVAL_ATTR,
    MAX_RETRY,
    STORAGE_ENV,
    WorkerOptions,
    work,
)

__all__ = [
    "DEFAULT_STUDY",
    "JOURNAL_NAME",
    "SAMPLERS",
    "check_storage",
    "check_study_name",
    "join_study",
    "make_sampler",
    "open_storage",
    "open_study",
    "param_names",
    "read_history",
    "run_optuna",
]

SAMPLERS = ("nsga2", "tpe")
DEFAULT_STUDY = "searchq-nsga"
JOURNAL_NAME = "study.journal"
VARIABLES_ATTR = "searchq:variables"  # [[param name, upper bound], …] of the study's genome
DIRECTIONS = [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
HEARTBEAT_ENV = "SEARCHQ_HEARTBEAT_S"
HEARTBEAT_INTERVAL_S = 10
GRACE_INTERVALS = 3  # a trial is stale after this many missed heartbeats
# A journal lock left by a worker killed while appending (a few ms per trial) is broken after
# this long; appends themselves take milliseconds, so no live writer is ever that slow.
JOURNAL_LOCK_GRACE_S = 10
_DRIVERS = {  # URL scheme → how to get its driver
    "postgresql": "pip install psycopg2-binary",
    "postgresql+psycopg2": "pip install psycopg2-binary",
    "postgresql+psycopg": "pip install 'psycopg[binary]'",
    "mysql": "pip install PyMySQL and use a mysql+pymysql:// URL",
    "mysql+pymysql": "pip install PyMySQL",
    "sqlite": "use a Python built with sqlite3, or a FILE.journal storage",
}
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")
_FORMS = (
    "postgresql://USER:PASSWORD@HOST:PORT/DB, mysql+pymysql://…, sqlite:///FILE.db or FILE.journal"
)


def param_names(encoding: Encoding) -> list[str]:
    """Stable optuna parameter names of the genome variables, in genome order."""
    names = [f"w:{key}" for key, _ in encoding.widths]
    names += [f"k:{key}" for key, _ in encoding.kernels]
    names += [f"d:{block}" for block in encoding.blocks]
    names += [f"b:{qname}" for qname, _, _ in encoding.bits]
    assert len(set(names)) == len(names), "genome variable names must be unique"
    return names


def is_journal(spec: str) -> bool:
    return "://" not in spec


def show_storage(spec: str) -> str:
    """``spec`` for messages: the password of a URL replaced by ``***``."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", spec)


def heartbeat_interval() -> int:
    raw = os.environ.get(HEARTBEAT_ENV)
    if raw is None:
        return HEARTBEAT_INTERVAL_S
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ConfigError(
            f"{HEARTBEAT_ENV}={raw!r} must be a whole number of seconds >= 1; unset it for "
            f"the default {HEARTBEAT_INTERVAL_S}"
        )
    return int(raw)


def check_storage(spec: str | None) -> None:
    """Reject a ``--storage`` value that is neither a known URL scheme nor a FILE.journal
    (before the supernet is loaded; whether it opens is only known by :func:`open_storage`)."""
    if spec is None:
        return
    shown = show_storage(spec)
    if is_journal(spec):
        if Path(spec).suffix != ".journal":
            raise ConfigError(f"{shown!r} is none of: {_FORMS}", key="storage")
        return
    scheme = spec.split("://", 1)[0].lower()
    if scheme.split("+", 1)[0] not in ("postgresql", "mysql", "sqlite"):
        raise ConfigError(
            f"{shown!r} has the unknown scheme {scheme!r}; use {_FORMS}", key="storage"
        )


def open_storage(spec: str) -> BaseStorage:
    """A journal file (a path ending in ``.journal``) or an RDB storage (a URL)."""
    check_storage(spec)
    shown = show_storage(spec)
    if is_journal(spec):
        path = Path(spec)
        if not path.parent.is_dir():
            raise ConfigError(
                f"{shown!r}: directory {path.parent} does not exist; create it or choose "
                "another FILE.journal",
                key="storage",
            )
        lock = JournalFileOpenLock(str(path), grace_period=JOURNAL_LOCK_GRACE_S)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    return _open_rdb(spec, shown)


def _open_rdb(url: str, shown: str) -> BaseStorage:
    import sqlalchemy.exc

    scheme = url.split("://", 1)[0].lower()
    dialect = scheme.split("+", 1)[0]
    if scheme == "postgresql":
        # SQLAlchemy's default PostgreSQL driver changed (psycopg2 in 2.0, psycopg 3 in 2.1):
        # take the one that is installed.
        driver = next((d for d in ("psycopg2", "psycopg") if importlib.util.find_spec(d)), None)
        if driver is not None:
            url = f"postgresql+{driver}://" + url.split("://", 1)[1]
    interval = heartbeat_interval()
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if dialect == "postgresql":
        engine["connect_args"] = {"connect_timeout": 10}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=interval,
                grace_period=GRACE_INTERVALS * interval,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY
                ),
            )
    except ImportError:
        hint = _DRIVERS.get(scheme, f"install the driver of {scheme!r}")
        raise ConfigError(
            f"{shown!r}: the database driver for {scheme}:// is not installed; {hint}",
            key="storage",
        ) from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise ConfigError(
            f"{shown!r} is not a valid URL ({_first_line(exc)}); use {_FORMS}", key="storage"
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = _first_line(getattr(exc, "orig", None) or exc)
        raise ConfigError(
            f"cannot open {shown!r} ({reason}); start the database server or fix the URL",
            key="storage",
        ) from None


def _first_line(exc: object) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def check_study_name(name: str) -> str:
    if not _STUDY_NAME.fullmatch(name):
        raise ConfigError(
            f"name {name!r} is not allowed; use 1-128 letters, digits and . _ - : @ + "
            "starting with a letter or digit",
            key="study",
        )
    return name


def make_sampler(kind: str, *, population: int, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler, always explicit. A ``max_cost`` budget reaches it as ``trial.constraints``
    (set by the objective; optuna 5 deprecated ``constraints_func``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if kind == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
        if kind == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    raise ConfigError(f"optuna sampler {kind!r} is not one of {list(SAMPLERS)}", key="algorithm")


def _variables(core: SubnetProblemCore) -> list[list[Any]]:
    names = param_names(core.encoding)
    return [[n, int(u)] for n, u in zip(names, core.encoding.upper, strict=True)]


def join_study(
    storage: BaseStorage,
    spec: str,
    name: str,
    core: SubnetProblemCore,
    *,
    sampler: str,
    population: int,
    seed: int,
) -> optuna.Study:
    """Load the existing study ``name`` with this process's sampler; check it fits ``core``."""
    shown = show_storage(spec)
    made = make_sampler(sampler, population=population, seed=seed)
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=made)
    except KeyError:
        raise ConfigError(f"{name!r} does not exist in {shown!r}", key="study") from None
    if list(study.directions) != DIRECTIONS:
        raise ConfigError(
            f"{name!r} in {shown!r} is not a searchq nsga study (directions "
            f"{[d.name.lower() for d in study.directions]}); pass another --study",
            key="study",
        )
    stored = study.user_attrs.get(VARIABLES_ATTR)
    if stored is not None and stored != _variables(core):
        raise ConfigError(
            f"{name!r} in {shown!r} searches other variables ({len(stored)} vs "
            f"{core.encoding.n_var} here: another supernet or --bits); pass another --study",
            key="study",
        )
    return study


def open_study(
    storage: BaseStorage,
    spec: str,
    name: str,
    core: SubnetProblemCore,
    *,
    resume: bool,
    sampler: str,
    population: int,
    seed: int,
) -> tuple[optuna.Study, bool]:
    """(study, whether this call created it). An existing study needs ``resume``."""
    try:
        storage.create_new_study(DIRECTIONS, name)
        created = True
    except DuplicatedStudyError:
        if not resume:
            raise ConfigError(
                f"{name!r} already exists in {show_storage(spec)!r}; pass --resume (to continue "
                "it or join its workers) or another --study",
                key="study",
            ) from None
        created = False
    study = join_study(
        storage,
        spec,
        name,
        core,
        sampler=sampler,
        population=population,
        seed=worker_seed(seed, 0, created=created),
    )
    if created:
        study.set_user_attr(VARIABLES_ATTR, _variables(core))
    return study, created


def worker_seed(seed: int, index: int, *, created: bool) -> int:
    if created and index == 0:
        return seed
    entropy = [seed, index] if created else [seed, index, os.getpid(), time.time_ns()]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def read_history(
    study: optuna.Study,
    core: SubnetProblemCore,
    tracker: ProgressTracker,
    names: Sequence[str],
    *,
    every: int,
) -> None:
    """Replace ``core.history`` by the study's COMPLETE trials, in trial-number order."""
    core.history.clear()
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    trials = sorted(trials, key=lambda t: t.number)
    for i, trial in enumerate(trials, start=1):
        assert trial.values is not None
        x = np.asarray([int(trial.params[n]) for n in names], dtype=int)
        attrs = trial.user_attrs.get(EVAL_ATTR, {})
        accuracy, cost = (float(v) for v in trial.values)
        ev = Evaluation(
            accuracy=accuracy,
            cost=cost,
            macs=int(attrs.get("macs", 0)),
            bit_ops=attrs.get("bit_ops"),
            metrics=dict(attrs.get("metrics", {"accuracy": accuracy})),
        )
        core.cache.setdefault(core.key(*core.encoding.decode(x)), ev)
        core.history.append((x, ev))
        if i % every == 0 or i == len(trials):
            tracker.update()


def _spawn(opts: WorkerOptions, spec: str, run_dir: Path) -> tuple[subprocess.Popen, Path]:
    folder = run_dir / "workers"
    params = opts.write(folder / f"worker-{opts.index}.json")
    log = folder / f"worker-{opts.index}.log"
    env = {
        **os.environ,
        STORAGE_ENV: spec,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "SEARCHQ_PROGRESS": "0",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "searchq.nsga.worker", str(params)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return proc, log


def _stop(procs: Sequence[tuple[subprocess.Popen, Path]]) -> None:
    for proc, _ in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc, _ in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_optuna(
    core: SubnetProblemCore,
    tracker: ProgressTracker,
    *,
    evals: int,
    population: int,
    sampler: str,
    workers: int,
    storage: str | None,
    study_name: str | None,
    resume: bool,
    seed: int,
    run_dir: Path,
    max_cost: float | None,
    core_options: dict[str, Any] | None = None,
) -> optuna.Study:
    """Run (or join, or continue) the study until it has ``evals`` COMPLETE trials, with this
    process and ``workers − 1`` worker processes, then read its trials into ``core.history``.
    ``core_options`` (keyword arguments of ``search.build_core``) let workers rebuild ``core``."""
    if workers < 1:
        raise ConfigError(f"--workers {workers} must be >= 1", key="workers")
    if sampler not in SAMPLERS:
        raise ConfigError(f"optuna sampler {sampler!r} is not one of {list(SAMPLERS)}")
    if core.encoding.n_var == 0:
        raise ConfigError(
            "the supernet has no elastic dimension to search (and no --bits)", key="search"
        )
    assert workers == 1 or core_options is not None, "worker processes need core_options"
    name = check_study_name(study_name or DEFAULT_STUDY)
    spec = storage or str(Path(run_dir) / JOURNAL_NAME)
    handle = open_storage(spec)
    if is_journal(spec):
        spec = str(Path(spec).resolve())  # for worker processes
    names = param_names(core.encoding)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    threads = _torch_threads()
    procs: list[tuple[subprocess.Popen, Path]] = []
    try:
        study, created = open_study(
            handle,
            spec,
            name,
            core,
            resume=resume,
            sampler=sampler,
            population=population,
            seed=seed,
        )
        for index in range(1, workers):
            opts = WorkerOptions(
                study_name=name,
                storage=show_storage(spec),
                sampler=sampler,
                population=population,
                seed=worker_seed(seed, index, created=created),
                evals=evals,
                max_cost=max_cost,
                index=index,
                core=dict(core_options or {}),
            )
            procs.append(_spawn(opts, spec, Path(run_dir)))
        if workers > 1:
            _torch_threads(1)  # this process is one of the workers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            work(
                study,
                core,
                names=names,
                evals=evals,
                max_cost=max_cost,
                recover_dead=is_journal(spec),
            )
        for index, (proc, log) in enumerate(procs, start=1):
            if proc.wait() != 0:
                warnings.warn(
                    f"worker {index} (pid {proc.pid}) exited with status {proc.returncode}; "
                    f"the others finished the study; its log: {log}",
                    SearchqWarning,
                    stacklevel=2,
                )
    finally:
        _stop(procs)
        _torch_threads(threads)
        optuna.logging.set_verbosity(verbosity)
    read_history(study, core, tracker, names, every=population)
    return study


def _torch_threads(n: int | None = None) -> int:
    import torch

    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()
