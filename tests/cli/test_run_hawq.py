"""`searchq run hawq --ratio 1.5` end to end on the built-in digits task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchq.cli import main
from searchq.core.hardware import load_hardware

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hawq_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hawq") / "run"
    code = main(
        [
            "run",
            "hawq",
            "--ratio",
            "1.5",
            "--out",
            str(out),
            "--no-progress",
            "--traces",
            str(out.parent / "traces.json"),
        ]
    )
    assert code == 0
    return out


def test_budget_bits_and_accuracy(hawq_run: Path) -> None:
    data = json.loads((hawq_run / "result.json").read_text())
    assert data["algorithm"] == "hawq"
    assert data["budget"]["kind"] == "bit_complexity_ratio" and data["budget"]["target"] == 1.5
    assert data["budget"]["achieved"] >= 1.5
    trial = load_hardware("trial")
    for bits in [
        *data["assignment"]["weights"].values(),
        *data["assignment"]["activations"].values(),
    ]:
        assert bits in (2, 4, 8) and bits in trial.allowed_bits("conv", "weights")
    m = data["metrics"]
    assert m["accuracy"] >= m["uniform8_accuracy"] - 1.0  # measured: within 0.6 points
    assert "precision_init_s" in data["timings"] and data["timings"]["precision_init_s"] > 0
    traces = data["extra"]["traces"]
    assert len(traces["per_layer"]) == 22
    # digits ResNet-20 is piecewise linear with 10 outputs: exact traces, one direction each
    assert traces["method"] == "exact" and traces["backward_directions"] <= 10
    assert traces["hvps"] == 0 and traces["stop_reason"] == "exact"


def test_plots_and_tensorboard(hawq_run: Path) -> None:
    for name in ("traces", "bits", "pareto", "noise_vs_trace"):
        assert (hawq_run / "plots" / f"{name}.png").stat().st_size > 1000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(hawq_run / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"search/trace_sum", "search/ratio", "eval/accuracy"} <= tags
    assert len(acc.Scalars("search/trace_sum")) == 1  # exact traces: one value, no iterations


def test_second_run_reuses_traces(hawq_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    assert (
        main(
            [
                "run",
                "hawq",
                "--ratio",
                "2.5",
                "--out",
                str(out),
                "--no-progress",
                "--traces",
                str(hawq_run.parent / "traces.json"),
            ]
        )
        == 0
    )
    data = json.loads((out / "result.json").read_text())
    assert data["extra"]["traces"]["stop_reason"] == "loaded"
    assert data["budget"]["achieved"] >= 2.5
    first = json.loads((hawq_run / "result.json").read_text())["extra"]["traces"]["per_layer"]
    assert data["extra"]["traces"]["per_layer"] == first


def test_config_hawq_runs_and_monotone_is_selectable(tmp_path: Path) -> None:
    config = (
        ROOT
        / "tests"
        / "data"
        / "nncf-configs"
        / "examples"
        / "resnet50_imagenet_mixed_int_hawq.json"
    )
    out = tmp_path / "cfg"
    assert (
        main(
            [
                "run",
                "--config",
                str(config),
                "--task",
                "digits",
                "--out",
                str(out),
                "--no-progress",
                "--selection",
                "monotone",
                "--iter-number",
                "24",
                "--trace-method",
                "hutchinson",
            ]
        )
        == 0
    )
    data = json.loads((out / "result.json").read_text())
    assert data["hardware"] == "npu" and data["budget"]["target"] == 1.4
    assert data["extra"]["selection"] == "monotone"
    assert set(data["assignment"]["weights"].values()) <= {4, 8}
    traces = data["extra"]["traces"]
    assert traces["method"] == "hutchinson" and 8 <= traces["iterations"] <= 24
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()  # trace convergence: one point per probe
    assert len(acc.Scalars("search/trace_sum")) == traces["iterations"]
