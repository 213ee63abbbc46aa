"""Progressive shrinking end to end: CLI, extraction, exact resume, torchrun with 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from searchq.cli import main
from searchq.elastic import StageSpec, elastic_spec, train_supernet
from searchq.elastic.export import load_subnet
from searchq.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("elastic") / "run"
    assert main(["run", "elastic", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    return out


def test_run_directory(run: Path) -> None:
    data = json.loads((run / "result.json").read_text())
    assert data["algorithm"] == "elastic"
    space = data["extra"]["search_space"]
    assert space["size"] > 1000 and "layer3.0.conv1" in space["width"]
    m = data["metrics"]
    assert m["max_subnet_accuracy"] > 90 and m["min_subnet_accuracy"] > 50
    assert m["min_macs"] < m["max_macs"]
    assert len(data["extra"]["history"]) == 5  # NNCF's five default stages, one epoch each
    assert (run / "plots" / "stages.png").stat().st_size > 1000
    assert (run / "checkpoints" / "supernet_last.pt").exists()
    assert (run / "checkpoints" / "supernet_best.pt").exists()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert {"train/loss", "train/max_accuracy", "train/min_accuracy"} <= set(acc.Tags()["scalars"])


def test_extracted_minimal_subnet_runs_standalone_and_matches(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "min.pt"
    assert main(["extract", str(run), "--out", str(out)]) == 0
    model, cfg = load_subnet(out)
    data = json.loads((run / "result.json").read_text())
    assert cfg.to_dict() == data["extra"]["min_subnet"]
    task = get_task("digits")
    assert task.evaluator is not None
    acc = task.evaluator(model)["accuracy"]
    assert acc == pytest.approx(data["metrics"]["min_subnet_accuracy"], abs=1e-9)
    assert sum(p.numel() for p in model.parameters()) < 0.5 * 272186


def _small_spec():
    stages = (
        StageSpec(("width",), 2, width_indicator=2),
        StageSpec(("width", "depth"), 2, depth_indicator=1, width_indicator=3, reorg_weights=True,
                  bn_adapt=True),
    )  # fmt: skip
    return replace(elastic_spec({}), stages=stages)


def test_resume_mid_stage_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    spec = _small_spec()
    full = train_supernet(get_task("digits"), spec, out=tmp_path / "full", progress=False, seed=1)
    train_supernet(
        get_task("digits"), spec, out=tmp_path / "cut", progress=False, seed=1, stop_after_epochs=3
    )  # stops inside the second stage
    resumed = train_supernet(
        get_task("digits"), spec, resume=tmp_path / "cut", progress=False, seed=1
    )
    a = torch.load(tmp_path / "full" / "checkpoints" / "supernet_last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoints" / "supernet_last.pt", weights_only=True)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert resumed.metrics == full.metrics


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEARCHQ_PROGRESS": "0"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "searchq.cli",
        "run",
        "elastic",
        "--epochs",
        "1",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads((out / "result.json").read_text())
    assert data["metrics"]["max_subnet_accuracy"] > 90
    assert not list(out.glob("rank*"))


def test_checkpoint_records_the_seed_and_load_supernet_uses_it(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import searchq.tasks
    from searchq.elastic.checkpoint import load_checkpoint, save_checkpoint
    from searchq.elastic.export import load_supernet

    ckpt = load_checkpoint(run / "checkpoints" / "supernet_last.pt")
    assert ckpt["meta"]["seed"] == 0
    seen: list[int] = []
    real = searchq.tasks.get_task

    def spy(name: str, *, seed: int = 0):  # noqa: ANN202
        seen.append(seed)
        return real(name)  # the architecture does not depend on the seed; seed 0 is cached

    monkeypatch.setattr(searchq.tasks, "get_task", spy)
    for seed in (3, None):  # a run with seed 3; a checkpoint from before the seed was recorded
        meta = dict(ckpt["meta"])
        if seed is None:
            del meta["seed"]
        else:
            meta["seed"] = seed
        folder = tmp_path / str(seed) / "checkpoints"
        folder.mkdir(parents=True)
        save_checkpoint(
            folder / "supernet_last.pt",
            model_state=ckpt["model"],
            optimizer=None,
            scheduler=None,
            loader_rng=None,
            state=ckpt["state"],
            meta=meta,
        )
        load_supernet(folder.parent)
    assert seen == [3, 0]
