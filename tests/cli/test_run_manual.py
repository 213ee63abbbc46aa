"""`searchq run manual` end to end on the built-in digits task, and `searchq show`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from searchq.cli import main
from searchq.runner import Result

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "configs" / "digits_manual.json"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["run", "--config", str(EXAMPLE), "--out", str(out), "--no-progress"]) == 0
    return out


def test_run_directory_contract(demo_run: Path) -> None:
    data = json.loads((demo_run / "result.json").read_text())
    for key in (
        "schema_version",
        "searchq_version",
        "algorithm",
        "task",
        "hardware",
        "budget",
        "metrics",
        "assignment",
        "seed",
        "elapsed_s",
        "timings",
    ):
        assert key in data, key
    assert (
        data["algorithm"] == "manual" and data["task"] == "digits" and data["hardware"] == "trial"
    )
    assert set(data["budget"]) == {"kind", "target", "achieved"}
    for metric in ("accuracy", "fp32_accuracy", "uniform8_accuracy"):
        assert 0.0 <= data["metrics"][metric] <= 100.0
    assert data["metrics"]["fp32_accuracy"] > 95.0
    weights = data["assignment"]["weights"]
    acts = data["assignment"]["activations"]
    assert len(weights) == 22 and weights["layer3.1.conv1.weight"] == 4
    assert weights["layer1.0.conv1.weight"] == 8
    assert acts["layer3.1.conv1.input"] == 4  # set through an NNCF |OUTPUT address
    assert data["budget"]["achieved"] > 1.0
    assert {"prepare_s", "evaluate_s"} <= set(data["timings"])
    assert (demo_run / "plots" / "bits.png").stat().st_size > 1000
    assert list((demo_run / "tb").glob("events.out.tfevents.*"))
    resolved = json.loads((demo_run / "resolved_config.json").read_text())
    assert resolved["compression"][0]["algorithm"] == "quantization"
    Result.load(demo_run)  # round trip through the loader


def test_show_prints_bits_budget_and_accuracy(demo_run: Path, capsys) -> None:
    assert main(["show", str(demo_run)]) == 0
    out = capsys.readouterr().out
    assert "bit_complexity_ratio" in out and "accuracy" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("layer3.1.conv1 "))
    assert line.split()[-2:] == ["4", "4"]
    assert main(["show", str(demo_run / "result.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["algorithm"] == "manual"


def test_same_seed_same_result(demo_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    assert main(["run", "--config", str(EXAMPLE), "--out", str(out), "--no-progress"]) == 0
    a = json.loads((demo_run / "result.json").read_text())
    b = json.loads((out / "result.json").read_text())
    for key in ("assignment", "metrics", "budget", "layers"):
        assert a[key] == b[key]


def test_bits_file_and_uniform_defaults(tmp_path: Path) -> None:
    bits = tmp_path / "bits.json"
    bits.write_text(json.dumps({"fc.weight": 4, "conv1.input": 6}))
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "manual",
                "--bits-file",
                str(bits),
                "--w-bits",
                "6",
                "--a-bits",
                "8",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    a = json.loads((out / "result.json").read_text())["assignment"]
    assert a["weights"]["fc.weight"] == 4 and a["weights"]["conv1.weight"] == 6
    assert a["activations"]["conv1.input"] == 6 and a["activations"]["fc.input"] == 8


def test_import_is_light() -> None:
    code = "import sys, searchq; assert 'torch' not in sys.modules, 'torch imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)
