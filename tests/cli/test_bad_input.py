"""Bad input: one line on stderr naming key / location / allowed values, exit 2, no traceback."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from searchq.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "examples" / "configs" / "digits_manual.json").read_text()


def _cfg(tmp_path: Path, text: str, name: str = "c.json") -> str:
    """Write ``text`` to a fresh sub-directory (each case its own file, same file name)."""
    folder = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    p = folder / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def _quant(extra: str = "", init: str = "") -> str:
    return (
        '{\n  "compression": {\n    "algorithm": "quantization",' + extra + "\n"
        '    "initializer": {' + init + "\n    }\n  }\n}\n"
    )


def _user_task(tmp_path: Path, body: str) -> str:
    p = tmp_path / "mytask.py"
    p.write_text(textwrap.dedent(body))
    return str(p)


NO_LAYER_TASK = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
import searchq

def make_task():
    data = TensorDataset(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))
    model = nn.Sequential(nn.ReLU(), nn.Identity())
    return searchq.Task(model=model, train_loader=DataLoader(data, batch_size=4),
                        val_loader=DataLoader(data, batch_size=4))
"""


def cases(tmp_path: Path) -> list[tuple[list[str], list[str]]]:
    """(argv, substrings the single error line must contain)."""
    t = tmp_path
    return [
        # config files
        (
            ["run", "--config", _cfg(t, _quant(init='\n "precison": {"type": "manual"}'))],
            ["precison", "did you mean 'precision'", "c.json:"],
        ),
        (
            ["run", "--config", _cfg(t, _quant(init='"range": {"num_init_samples": "many"}'))],
            ["num_init_samples", "c.json:4:", "integer"],
        ),
        (
            ["run", "--config", _cfg(t, _quant(init='"range": {"type": "minmax"}'))],
            ["minmax", "min_max"],
        ),
        (
            ["run", "--config", _cfg(t, '{"compression": {"algorithm": "quantisation"}}')],
            ["quantisation", "quantization"],
        ),
        (
            ["run", "--config", _cfg(t, '{"compression": {"algorithm": "filter_pruning"}}')],
            ["not supported: filter_pruning"],
        ),
        (
            ["run", "--config", _cfg(t, '{"compresion": {"algorithm": "quantization"}}')],
            ["compresion", "did you mean 'compression'"],
        ),
        (
            ["run", "--config", _cfg(t, _quant(extra=' "weights": {"bits": 1},'))],
            ["weights.bits", "c.json:3:", "16"],
        ),
        (["run", "--config", str(t / "missing.json")], ["missing.json"]),
        (["run", "--config", _cfg(t, "this is not json")], ["c.json:1"]),
        (["run", "--config", _cfg(t, GOOD + "\n]]garbage")], ["c.json:"]),
        (["run", "--config", _cfg(t, "")], ["c.json"]),
        (["run", "--config", _cfg(t, '{"compression": {"initializer": {}}}')], ["algorithm"]),
        # algorithms and options
        (["run", "hawk"], ["hawk", "manual"]),
        (["run"], ["algorithm", "--config"]),
        (["run", "nsga"], ["--supernet RUN_DIR is required"]),
        (["run", "autoq", "--ratio", "0.001", "--episodes", "2"], ["size_ratio 0.001 is out of"]),
        (["run", "autoq", "--resume", "/nonexistent/run"], ["no AutoQ checkpoint"]),
        (["run", "hawq", "--ratio", "9"], ["compression_ratio 9 is out of reach", "1.00–4.00"]),
        (["run", "hawq", "--ratio", "1.5", "--size-ratio", "0.2"], ["not allowed with"]),
        (["run", "hawq", "--bits", "4,x"], ["--bits", "4,x"]),
        (["run", "hawq", "--hw", "cpu", "--bits", "4,8"], ["bits [4]", "cpu"]),
        (["run", "manual", "--seed", "abc"], ["--seed", "abc"]),
        (["run", "manual", "--hw", "tpu"], ["tpu", "cpu", "npu", "trial"]),
        (["run", "manual", "--hw", "cpu", "--w-bits", "4"], ["4 bits", "cpu", "allowed [8, 16]"]),
        (["run", "manual", "--range-init", "foo"], ["foo", "mixed_min_max"]),
        (["run", "manual", "--bits-file", str(t / "nope.json")], ["nope.json", "not found"]),
        (
            ["run", "manual", "--bits-file", _cfg(t, '{"conv9.weight": 4}', "b.json")],
            ["conv9.weight"],
        ),
        (
            ["run", "manual", "--bits-file", _cfg(t, '{"fc.weight": 40}', "b2.json")],
            ["fc.weight", "40"],
        ),
        # elastic (bootstrapNAS.training)
        (
            [
                "run",
                "--config",
                _cfg(
                    t,
                    '{"bootstrapNAS": {"training": {"schedule": {"list_stage_descriptions": []}}}}',
                ),
            ],
            ["list_stage_descriptions", "empty"],
        ),
        (
            [
                "run",
                "elastic",
                "--config",
                _cfg(
                    t,
                    '{"bootstrapNAS": {"training": {"elasticity": '
                    '{"depth": {"skipped_blocks": ["layer2.3"]}}}}}',
                ),
            ],
            ["layer2.3", "did you mean"],
        ),
        (
            [
                "run",
                "--config",
                _cfg(
                    t, '{"bootstrapNAS": {"training": {"elasticity": {"width": {"min_width": 0}}}}}'
                ),
            ],
            ["min_width", "c.json:1"],
        ),
        (["extract", str(t / "nowhere"), "--out", str(t / "x.pt")], ["no supernet checkpoint"]),
        # tasks
        (["run", "manual", "--task", "digitz"], ["digitz", "did you mean 'digits'"]),
        (["run", "manual", "--task", "no_such_pkg.mod:make"], ["no_such_pkg"]),
        (
            ["run", "manual", "--task", _user_task(t, NO_LAYER_TASK) + ":make_tsk"],
            ["make_tsk", "make_task"],
        ),
        (
            ["run", "manual", "--task", _user_task(t, NO_LAYER_TASK) + ":make_task"],
            ["no quantizable layer"],
        ),
        # show
        (["show", str(t / "no_run")], ["result.json"]),
        (
            ["show", _cfg(t, '{"schema_version": 1, "algorithm": "x"}', "result.json")],
            ["missing keys"],
        ),
    ]


def test_at_least_twenty_cases(tmp_path: Path) -> None:
    assert len(cases(tmp_path)) >= 20


@pytest.mark.parametrize("index", range(38))
def test_bad_input_is_one_line_exit_2(index: int, tmp_path: Path, capsys) -> None:
    argv, needles = cases(tmp_path)[index]
    code = _run(argv + (["--no-progress"] if argv[0] == "run" and len(argv) > 1 else []))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("searchq: error:")]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse exits directly
        return int(exc.code or 0)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from searchq.errors import SearchqError

    with pytest.raises(SearchqError):
        main(["run", "manual", "--hw", "tpu", "--debug"])
