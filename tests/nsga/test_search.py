"""`searchq run nsga` on a small trained supernet: outputs, selection, joint bits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from searchq.cli import main
from searchq.core.assignment import Assignment
from searchq.core.hardware import load_hardware


@pytest.fixture(scope="module")
def supernet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("supernet") / "run"
    assert main(["run", "elastic", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    return out


def test_subnet_search_outputs(supernet_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "nsga"
    assert (
        main(
            [
                "run",
                "nsga",
                "--supernet",
                str(supernet_run),
                "--evals",
                "40",
                "--population",
                "10",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    data = json.loads((out / "result.json").read_text())
    assert data["algorithm"] == "nsga" and "subnet" in data["assignment"]
    ref = data["metrics"]["reference_accuracy"]
    assert data["metrics"]["accuracy"] >= ref - 1.0  # acc_delta 1
    assert data["metrics"]["macs"] <= data["metrics"]["max_macs"]
    rows = list(csv.DictReader((out / "evaluations.csv").open()))
    assert len(rows) >= 40
    assert json.loads((out / "subnet.json").read_text()) == data["assignment"]["subnet"]
    for name in ("pareto", "progress"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
    assert data["extra"]["hv_reference_point"] == [0.0, 1.05]
    # the chosen subnet is re-measured independently to the same accuracy
    from searchq.core.bn import adapt_batchnorm
    from searchq.core.pipeline import take_samples
    from searchq.elastic.export import load_supernet

    supernet, task, _ = load_supernet(supernet_run)
    supernet.activate(data["assignment"]["subnet"])
    samples = take_samples(task.train_loader, 2000)
    adapt_batchnorm(supernet.model, samples, sum(int(s.shape[0]) for s in samples))
    assert task.evaluator(supernet.model)["accuracy"] == pytest.approx(data["metrics"]["accuracy"])


def test_joint_bits_pass_the_hardware_check(supernet_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "joint"
    assert (
        main(
            [
                "run",
                "nsga",
                "--supernet",
                str(supernet_run),
                "--evals",
                "30",
                "--population",
                "10",
                "--bits",
                "4,8",
                "--hw",
                "npu",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    data = json.loads((out / "result.json").read_text())
    a = Assignment.from_dict(data["assignment"])
    assert a.weights and a.activations and a.subnet is not None
    npu = load_hardware("npu")
    assert set(a.weights.values()) <= set(npu.allowed_bits("conv", "weights")) & {4, 8}
    assert data["budget"]["kind"] == "bit_ops_ratio"
    assert 0 < data["budget"]["achieved"] <= 1.0


def test_bad_inputs(supernet_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["run", "nsga", "--evals", "10"]) == 2
    assert "--supernet RUN_DIR is required" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "nsga",
                "--supernet",
                str(supernet_run),
                "--evals",
                "5",
                "--population",
                "10",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "population 10 is larger than num_evals 5" in capsys.readouterr().err
    assert main(["run", "nsga", "--supernet", str(tmp_path / "none"), "--evals", "80"]) == 2
    assert "no supernet checkpoint" in capsys.readouterr().err
