"""The NNCF-style example script, `searchq finetune` (resume, other config), ONNX round trip."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from searchq.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "train_with_searchq.py"
SPARSITY = ROOT / "examples" / "configs" / "digits_sparsity.json"
HAWQ = ROOT / "examples" / "configs" / "digits_hawq.json"


def _example():
    spec = importlib.util.spec_from_file_location("train_with_searchq", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_uses_only_nncf_names_from_searchq() -> None:
    """The compression calls come from one import of NNCF 2.x's names: swapping that import
    for NNCF's makes it an NNCF script."""
    tree = ast.parse(EXAMPLE.read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    from_searchq = {
        n.module: sorted(a.name for a in n.names) for n in imports if "searchq" in n.module
    }
    assert from_searchq == {
        "searchq.nncf_compat": [
            "NNCFConfig",
            "create_compressed_model",
            "register_default_init_args",
        ],
        "searchq.tasks": ["get_task"],  # the digits data and model, not the compression API
    }
    calls = {
        n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    }
    assert {
        "epoch_step",
        "step",
        "loss",
        "statistics",
        "get_compression_state",
        "export_model",
    } <= calls


def test_example_sparsity_schedule_and_exact_resume(tmp_path: Path) -> None:
    example = _example()
    full = example.main(["--config", str(SPARSITY), "--epochs", "4", "--out", str(tmp_path / "a")])
    # multistep [1, 2, 3, 4] -> levels 0.1, 0.2, 0.3, 0.4 in epochs 0..3, exactly (to one weight)
    assert [r["sparsity_level_target"] for r in full] == [0.1, 0.2, 0.3, 0.4]
    for row in full:
        assert row["sparsity_level"] == pytest.approx(row["sparsity_level_target"], abs=1e-5)
    first = example.main(["--config", str(SPARSITY), "--epochs", "2", "--out", str(tmp_path / "b")])
    assert first == full[:2]
    rest = example.main(
        [
            "--config",
            str(SPARSITY),
            "--epochs",
            "4",
            "--out",
            str(tmp_path / "b"),
            "--resume",
            str(tmp_path / "b" / "last.pth"),
        ]
    )
    assert first + rest == full
    a = torch.load(tmp_path / "a" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pth", weights_only=True)
    for key, value in a["state_dict"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b["state_dict"][key]), key
    assert a["compression_state"]["scheduler"] == b["compression_state"]["scheduler"]


def test_finetune_cli_resume_mismatch_and_onnx(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    import onnxruntime as ort

    out = tmp_path / "ft"
    args = ["finetune", "--config", str(HAWQ), "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["algorithm"] == "finetune"
    assert result["metrics"]["bit_complexity_ratio"] >= 1.5 - 1e-9
    assert (out / "precision_init" / "result.json").exists()
    assert (out / "plots" / "finetune.png").exists() and (out / "epochs.csv").exists()
    assert list((out / "tb").glob("events.*"))

    # resume for one more epoch, exporting at the end
    onnx_path = tmp_path / "model.onnx"
    args2 = [
        "finetune",
        "--config",
        str(HAWQ),
        "--epochs",
        "2",
        "--resume",
        str(out),
        "--export",
        str(onnx_path),
        "--no-progress",
    ]
    assert main(args2) == 0
    result = json.loads((out / "result.json").read_text())
    assert [r["epoch"] for r in result["extra"]["epochs"]] == [0, 1]

    # the exported file computes what the fake-quantized model computes
    from searchq.compress import NNCFConfig, create_compressed_model, register_default_init_args
    from searchq.tasks import get_task

    task = get_task("digits")
    cfg = register_default_init_args(NNCFConfig.from_json(HAWQ), task.train_loader)
    ckpt = torch.load(out / "checkpoints" / "last.pth", weights_only=True)
    ctrl, model = create_compressed_model(
        task.model, cfg, ckpt["compression_state"], log_dir=tmp_path / "x"
    )
    model.load_state_dict(ckpt["model"])
    model.eval()
    x = next(iter(task.val_loader))[0]
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(onnx_path))
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    scale = float(np.abs(expected).max())
    diff = np.abs(got - expected) / scale
    # only rounding ties differ (onnxruntime sums convolutions in another order; a value at
    # k + 0.5 steps may land one level away, one 4-bit step being a large jump): few outputs
    # move, by little
    assert (diff > 1e-5).mean() <= 0.05 and diff.max() <= 0.05
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.99

    # another config on resume: one line naming the differing key
    other = tmp_path / "other.json"
    text = HAWQ.read_text().replace('"compression_ratio": 1.5', '"compression_ratio": 1.4')
    other.write_text(text)
    capsys.readouterr()
    code = main(["finetune", "--config", str(other), "--epochs", "3", "--resume", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "compression[0].initializer.precision.compression_ratio differ" in err
