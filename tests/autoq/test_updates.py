"""Overlapped DDPG updates: a child process gives the same agent as updating in place."""

from __future__ import annotations

import csv
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from searchq.autoq import search
from searchq.autoq._updates import ChildUpdates, InlineUpdates
from searchq.autoq.ddpg import DDPG, DDPGConfig
from searchq.config.specs import AutoqSpec
from searchq.tasks import get_task

search_module = importlib.import_module("searchq.autoq.search")  # the package exports the function
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="the child process is forked")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The child runs torch on 1 thread; bitwise comparisons need the same here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _agent(seed: int = 0, state_dim: int = 6) -> DDPG:
    agent = DDPG(state_dim, DDPGConfig(hidden1=48, hidden2=32, batch_size=16), seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(200):
        s, s2 = rng.random(state_dim, np.float32), rng.random(state_dim, np.float32)
        agent.buffer.add(s, float(rng.random()), float(rng.normal()), s2, bool(rng.random() < 0.1))
    return agent


def _tensors(agent: DDPG) -> dict[str, torch.Tensor]:
    state = agent.state_dict()
    out: dict[str, torch.Tensor] = {}
    for net in ("actor", "critic", "actor_target", "critic_target"):
        out.update({f"{net}.{k}": v for k, v in state[net].items()})
    for opt in ("actor_opt", "critic_opt"):
        for i, s in state[opt]["state"].items():
            out.update({f"{opt}.{i}.{k}": v for k, v in s.items()})
    return out


@linux_only
def test_child_process_updates_equal_inline_updates(one_thread: None) -> None:
    parent, reference = _agent(), _agent()
    child = ChildUpdates(parent)
    inline = InlineUpdates(reference)
    try:
        for round_ in range(4):
            want = round_ in (1, 3)  # the Adam states come back with these rounds only
            child.submit(parent.sample_batches(7), want_state=want)
            inline.submit(reference.sample_batches(7), want_state=want)
            # the parent may act and fill its buffer while the child trains
            parent.buffer.add(np.zeros(6, np.float32), 0.5, 0.0, np.zeros(6, np.float32), False)
            reference.buffer.add(np.zeros(6, np.float32), 0.5, 0.0, np.zeros(6, np.float32), False)
            (losses, seconds), (ref_losses, _) = child.result(), inline.result()
            assert losses == ref_losses and seconds > 0
            state = np.random.default_rng(round_).random(6, np.float32)
            assert parent.mean_action(state) == reference.mean_action(state)  # shared weights
            if want:
                a, b = _tensors(parent), _tensors(reference)
                assert a.keys() == b.keys()
                assert all(torch.equal(a[k], b[k]) for k in a), [
                    k for k in a if not torch.equal(a[k], b[k])
                ]
    finally:
        child.close()
    assert not child._proc.is_alive()


@linux_only
def test_a_failing_round_is_reported_and_the_child_ends() -> None:
    agent = _agent()
    child = ChildUpdates(agent)
    try:
        batches = agent.sample_batches(2)
        assert batches is not None
        child.submit((batches[0][:, :, :3], *batches[1:]))  # wrong state width
        with pytest.raises(RuntimeError, match="update process failed"):
            child.result()
    finally:
        child.close()
    assert not child._proc.is_alive()


def _policies(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((run / "policies.csv").open()))


@linux_only
def test_overlapped_search_is_the_same_run_in_a_child_or_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    kwargs = dict(ratio=0.15, episodes=8, warmup=3, progress=False, bits=(2, 4, 8), seed=1)
    child = search(get_task("tiny_cnn"), out=tmp_path / "child", **kwargs)
    assert child.timings["agent_worker_s"] > 0
    monkeypatch.setattr(search_module, "start_updates", InlineUpdates)
    inline = search(get_task("tiny_cnn"), out=tmp_path / "inline", **kwargs)
    assert _policies(tmp_path / "child") == _policies(tmp_path / "inline")
    assert child.assignment == inline.assignment


def test_overlap_off_is_haqs_order(tmp_path: Path) -> None:
    """Without overlap the updates see the episode just scored, so the runs part after warm-up."""
    kwargs = dict(ratio=0.15, episodes=8, warmup=3, progress=False, bits=(2, 4, 8), seed=1)
    on = search(get_task("tiny_cnn"), out=tmp_path / "on", **kwargs)
    off = search(
        get_task("tiny_cnn"), out=tmp_path / "off", spec=AutoqSpec(overlap_updates=False), **kwargs
    )
    a, b = _policies(tmp_path / "on"), _policies(tmp_path / "off")
    assert a[:4] == b[:4]  # warm-up, then the first agent episode (same actor: no update yet)
    assert [r["raw_policy"] for r in a] != [r["raw_policy"] for r in b]
    assert "agent_worker_s" in on.timings and "agent_worker_s" not in off.timings
