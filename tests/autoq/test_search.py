"""AutoQ end to end: budget in every episode, run directory, and exact resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from searchq.autoq import search
from searchq.cli import main
from searchq.config.specs import AutoqSpec
from searchq.tasks import get_task


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("autoq") / "run"
    assert (
        main(
            [
                "run",
                "autoq",
                "--ratio",
                "0.15",
                "--episodes",
                "12",
                "--warmup",
                "4",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    return out


def test_budget_and_preset_hold_in_every_episode(cli_run: Path) -> None:
    rows = list(csv.DictReader((cli_run / "policies.csv").open()))
    assert len(rows) == 12
    for row in rows:
        assert float(row["size_ratio"]) <= 0.15 + 1e-9
        assert set(row["policy"].split()) <= {"2", "4", "8"}
    assert any(row["constrained"] == "True" for row in rows)  # raw and fixed policies both logged
    data = json.loads((cli_run / "result.json").read_text())
    assert data["algorithm"] == "autoq" and data["budget"]["kind"] == "size_ratio"
    assert data["budget"]["achieved"] <= 0.15
    assert data["metrics"]["accuracy"] > 90


def test_outputs(cli_run: Path) -> None:
    for name in ("reward", "bits"):
        assert (cli_run / "plots" / f"{name}.png").stat().st_size > 1000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(cli_run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {
        "agent/actor_loss",
        "agent/critic_loss",
        "agent/sigma",
        "search/reward",
        "search/reward_best",
        "search/accuracy",
        "search/size_ratio",
        "search/bops_ratio",
    } <= tags
    assert "search/best_policy" in " ".join(acc.Tags()["tensors"])


@pytest.mark.parametrize("overlap", [True, False])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path, overlap: bool) -> None:
    kwargs = dict(
        ratio=0.15, episodes=9, warmup=3, checkpoint_every=2, progress=False, bits=(2, 4, 8), seed=3
    )
    kwargs["spec"] = AutoqSpec(overlap_updates=overlap)  # overlap: updates in a child process
    full = search(get_task("tiny_cnn"), out=tmp_path / "full", **kwargs)
    search(get_task("tiny_cnn"), out=tmp_path / "cut", stop_after=5, **kwargs)
    resumed = search(get_task("tiny_cnn"), resume=tmp_path / "cut", **kwargs)
    a = list(csv.DictReader((tmp_path / "full" / "policies.csv").open()))
    b = list(csv.DictReader((tmp_path / "cut" / "policies.csv").open()))
    assert len(a) == len(b) == 9
    for ra, rb in zip(a, b, strict=True):
        assert ra == rb
    assert resumed.assignment == full.assignment
    assert resumed.metrics["accuracy"] == full.metrics["accuracy"]


def test_bits_set_with_gaps(tmp_path: Path) -> None:
    result = search(
        get_task("tiny_cnn"),
        bops_ratio=1.6,
        episodes=4,
        warmup=2,
        bits=(3, 4, 5, 6, 8),
        out=tmp_path / "gaps",
        progress=False,
    )
    assert set(result.assignment.bits.values()) <= {3, 4, 5, 6, 8}
    assert result.budget["achieved"] >= 1.6
