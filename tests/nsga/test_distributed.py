"""`searchq run nsga` on optuna's path: several workers on a journal file or PostgreSQL, killed
workers, resume, and one-line errors.

The PostgreSQL test needs SEARCHQ_TEST_POSTGRES=postgresql://… (`make test` starts a throw-away
server on 127.0.0.1 with .ci/postgres and sets it); without it that test is skipped.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from searchq.cli import main
from searchq.config.warn import SearchqWarning
from searchq.nsga import worker
from searchq.nsga.distributed import DEFAULT_STUDY, JOURNAL_NAME, open_storage, param_names
from searchq.nsga.search import build_core
from searchq.nsga.worker import CONSTRAINT, EVAL_ATTR, WORKER_ATTR, fail_dead_trials, process_alive

POSTGRES = os.environ.get("SEARCHQ_TEST_POSTGRES")
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("supernet") / "run"
    assert main(["run", "elastic", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    return out


def _args(supernet: Path, out: Path, evals: int, *extra: str) -> list[str]:
    return [
        "run",
        "nsga",
        "--supernet",
        str(supernet),
        "--evals",
        str(evals),
        "--population",
        "10",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def _journal(out: Path, name: str = DEFAULT_STUDY) -> optuna.Study:
    backend = JournalFileBackend(str(out / JOURNAL_NAME))
    return optuna.load_study(study_name=name, storage=JournalStorage(backend))


def _complete(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def _check_outputs(out: Path, evals: int) -> dict:
    data = json.loads((out / "result.json").read_text())
    assert data["algorithm"] == "nsga" and "subnet" in data["assignment"]
    assert data["metrics"]["accuracy"] >= data["metrics"]["reference_accuracy"] - 1.0
    rows = list(csv.DictReader((out / "evaluations.csv").open()))
    assert len(rows) >= evals
    assert data["extra"]["evaluations"] == len(rows)
    for name in ("pareto", "progress"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
    return data


def _consistent(trials: Sequence[FrozenTrial]) -> None:
    """Every worker measures a configuration alike (each rebuilt its own core)."""
    seen: dict[tuple, list[float]] = {}
    for t in trials:
        key = tuple(sorted(t.params.items()))
        assert seen.setdefault(key, list(t.values)) == list(t.values)


def test_worker_core_is_rebuilt_identically(supernet_run: Path) -> None:
    a, _ = build_core(supernet_run, bn_samples=500)
    b, _ = build_core(supernet_run, bn_samples=500)
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.integers(0, a.encoding.upper + 1)
        assert a.evaluate(x) == b.evaluate(x)
    names = param_names(a.encoding)
    assert len(names) == a.encoding.n_var and names[0].startswith("w:")
    assert process_alive(os.getpid()) and not process_alive(2**22 + 7)


def test_two_workers_on_the_journal(supernet_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "two"
    assert main(_args(supernet_run, out, 40, "--workers", "2")) == 0
    data = _check_outputs(out, 40)
    study = _journal(out)
    done = _complete(study)
    assert len(done) >= 40
    _consistent(done)
    t = done[0]
    assert set(t.params) == set(param_names(build_core(supernet_run, bn_samples=10)[0].encoding))
    assert t.user_attrs[EVAL_ATTR]["macs"] > 0 and "accuracy" in t.user_attrs[EVAL_ATTR]["metrics"]
    assert data["extra"]["evaluations"] == len(done) + 1  # + the maximal subnet, re-measured
    assert (out / "workers" / "worker-1.json").exists()


def test_tpe_single_worker_is_reproducible(supernet_run: Path, tmp_path: Path) -> None:
    max_cost = 1.0  # MMACs: about half the maximal subnet
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        args = _args(supernet_run, out, 20, "--algorithm", "optuna-tpe")
        assert main([*args, "--max-cost", str(max_cost)]) == 0
        data = _check_outputs(out, 20)
        study = _journal(out)
        done = _complete(study)
        assert len(done) == 20
        assert all(t.constraints == {CONSTRAINT: t.values[1] - max_cost} for t in done)
        assert data["budget"]["target"] == max_cost
        runs.append([(t.params, t.values) for t in done])
    assert runs[0] == runs[1]  # same seed, one worker: same trials


def test_resume_adds_only_the_missing_trials(
    supernet_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "resume"
    algo = ("--algorithm", "optuna-nsga2")
    assert main(_args(supernet_run, out, 20, *algo)) == 0
    before = {t.number: (t.params, t.values) for t in _complete(_journal(out))}
    assert len(before) == 20
    capsys.readouterr()
    # the same study again without --resume: one line naming the study and the fix
    assert main(_args(supernet_run, out, 30, *algo)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("searchq: error:")
    assert "'searchq-nsga' already exists" in err and "--resume" in err
    assert main(_args(supernet_run, out, 30, *algo, "--resume")) == 0
    after = {t.number: (t.params, t.values) for t in _complete(_journal(out))}
    assert len(after) == 30
    assert {n: after[n] for n in before} == before
    _check_outputs(out, 30)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--storage", "foo://x/y"], "unknown scheme 'foo'"),
        (["--storage", "results.txt"], "FILE.journal"),
        (["--storage", "postgresql://u:hunter2@127.0.0.1:1/db"], "127.0.0.1:1"),
        (["--storage", "sqlite:////no/such/dir/x.db"], "sqlite:////no/such/dir/x.db"),
        (["--study", "my study"], "'my study' is not allowed"),
    ],
)
def test_bad_storage_or_study_is_one_line(
    supernet_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    expected: str,
) -> None:
    assert main(_args(supernet_run, tmp_path / "bad", 20, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("searchq: error:"), err
    assert expected in err and "hunter2" not in err


# -- killed workers ---------------------------------------------------------------------------


def test_fail_dead_trials_requeues_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dist = {"w:a": optuna.distributions.IntDistribution(0, 3)}
    path = str(tmp_path / "s.journal")
    first = optuna.create_study(
        storage=JournalStorage(JournalFileBackend(path)), directions=["maximize", "minimize"]
    )
    dead = first.ask(dist)
    dead.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": gone.pid, "start": 1})
    alive = first.ask(dist)
    alive.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})
    orphan = first.ask(dist)  # never recorded a worker
    # a second worker on the same journal
    second = optuna.load_study(
        study_name=first.study_name, storage=JournalStorage(JournalFileBackend(path))
    )
    with pytest.warns(SearchqWarning, match=f"trial {dead.number} of dead worker pid"):
        assert fail_dead_trials(first) == [dead.number]
    assert fail_dead_trials(second) == []  # already failed and re-queued by the first
    monkeypatch.setattr(worker, "ORPHAN_AFTER_S", 0.0)
    with pytest.warns(SearchqWarning, match="never recorded"):
        assert fail_dead_trials(second) == [orphan.number]
    states = {t.number: t.state for t in second.trials}
    assert states[dead.number] == states[orphan.number] == TrialState.FAIL
    assert states[alive.number] == TrialState.RUNNING
    waiting = second.get_trials(states=(TrialState.WAITING,))
    assert [RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in waiting] == [
        dead.number,
        orphan.number,
    ]
    assert waiting[0].params == first.trials[dead.number].params
    assert all(WORKER_ATTR not in t.user_attrs for t in waiting)


def _cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "searchq.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _kill_mid_trial(
    study: Callable[[], optuna.Study | None],
    victim: Callable[[optuna.Study], int | None],
    *,
    after: int,
    n_params: int,
    lock: Path | None = None,
    timeout: float = 120.0,
) -> tuple[FrozenTrial, dict[int, list[float]]]:
    """SIGKILL a worker while it runs a trial (it is stopped first, so the trial seen RUNNING is
    still running when it dies). Returns that trial and the COMPLETE trials before the kill."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        s = study()
        if s is None or len(_complete(s)) < after:
            continue
        pid = victim(s)
        if pid is None:
            continue
        os.kill(pid, signal.SIGSTOP)
        s = study()
        assert s is not None
        running = [  # evaluating: every parameter suggested, no result yet
            t
            for t in s.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get(WORKER_ATTR, {}).get("pid") == pid and len(t.params) == n_params
        ]
        if running and not (lock is not None and lock.exists()):
            done = {t.number: list(t.values) for t in _complete(s)}
            os.kill(pid, signal.SIGKILL)
            return running[0], done
        os.kill(pid, signal.SIGCONT)
    raise AssertionError("no worker was seen running a trial")


def _n_params(supernet: Path) -> int:
    return build_core(supernet, bn_samples=10)[0].encoding.n_var


def _check_recovered(
    study: optuna.Study, killed: FrozenTrial, before: dict[int, list[float]], evals: int
) -> None:
    done = _complete(study)
    assert len(done) >= evals
    after = {t.number: list(t.values) for t in done}
    assert {n: after.get(n) for n in before} == before  # no completed trial lost or changed
    assert study.trials[killed.number].state == TrialState.FAIL
    retries = [
        t
        for t in study.trials
        if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number
    ]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params
    assert WORKER_ATTR in retries[0].user_attrs
    _consistent(done)


def test_killed_worker_on_the_journal_is_retried(supernet_run: Path, tmp_path: Path) -> None:
    out, evals = tmp_path / "kill", 120
    proc = _cli(_args(supernet_run, out, evals, "--workers", "2"))
    journal = out / JOURNAL_NAME

    def study() -> optuna.Study | None:
        return _journal(out) if journal.exists() and journal.stat().st_size else None

    def child(s: optuna.Study) -> int | None:  # once it has completed a trial
        pids = {t.user_attrs.get(WORKER_ATTR, {}).get("pid") for t in _complete(s)}
        return next((p for p in pids if p not in (None, proc.pid)), None)

    try:
        killed, before = _kill_mid_trial(
            study, child, after=5, n_params=_n_params(supernet_run), lock=Path(f"{journal}.lock")
        )
        err = proc.communicate(timeout=600)[1]
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"trial {killed.number} of dead worker" in err and "exited with status -9" in err
    study_after = _journal(out)
    _check_recovered(study_after, killed, before, evals)
    pids = {t.user_attrs[WORKER_ATTR]["pid"] for t in _complete(study_after)}
    assert len(pids) == 2  # both processes evaluated
    _check_outputs(out, evals)


@pytest.mark.slow
@pytest.mark.skipif(
    not POSTGRES,
    reason="SEARCHQ_TEST_POSTGRES is unset; `make test` (or .ci/postgres) starts a server",
)
def test_killed_worker_on_postgres_is_retried(supernet_run: Path, tmp_path: Path) -> None:
    assert POSTGRES is not None
    name, evals = f"test-{uuid.uuid4().hex[:12]}", 240  # > 3 s of trials left after the kill
    # stale after 3 s; two processes on one host: one torch thread each (as --workers does),
    # or their intra-op threads fight over the cores
    env = {"SEARCHQ_HEARTBEAT_S": "1", "OMP_NUM_THREADS": "1"}
    shared = ("--storage", POSTGRES, "--study", name, "--resume")
    a = _cli(_args(supernet_run, tmp_path / "a", evals, *shared), env)
    b = _cli(_args(supernet_run, tmp_path / "b", evals, *shared), env)

    storage = open_storage(POSTGRES)

    def study() -> optuna.Study | None:
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            return None

    def worker_b(s: optuna.Study) -> int | None:  # once it has completed a trial
        done = {t.user_attrs.get(WORKER_ATTR, {}).get("pid") for t in _complete(s)}
        return b.pid if b.pid in done else None

    try:
        killed, before = _kill_mid_trial(study, worker_b, after=5, n_params=_n_params(supernet_run))
        b.wait(timeout=10)
        err = a.communicate(timeout=900)[1]  # generous: CI machines may be loaded
        assert a.returncode == 0, err
        assert b.returncode == -signal.SIGKILL
        s = study()
        assert s is not None
        _check_recovered(s, killed, before, evals)
        pids = {t.user_attrs[WORKER_ATTR]["pid"] for t in _complete(s)}
        assert {a.pid, b.pid} <= pids  # both machines' workers evaluated
        _check_outputs(tmp_path / "a", evals)
    finally:
        for p in (a, b):
            p.kill()
        if study() is not None:
            optuna.delete_study(study_name=name, storage=storage)
