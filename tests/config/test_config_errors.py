"""Bad configs: each gives ONE line naming the key, the place in the file and what is allowed."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from searchq.config import SearchqWarning, load_config
from searchq.errors import ConfigError, NotSupportedError


def position_of(text: str, needle: str) -> tuple[int, int]:
    """1-based (line, column) of the first occurrence of ``needle`` — computed by plain search."""
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


@dataclass(frozen=True)
class Bad:
    name: str
    text: str
    at: str | None  # text whose first character the error must point at (None: no line known)
    key: str | None
    fragments: tuple[str, ...]  # must all appear in the message
    cls: type[ConfigError] = ConfigError


QUANT = (
    '{\n  "input_info": {"sample_size": [1, 3, 8, 8]},\n  // the algorithm\n'
    '  "compression": {\n    "algorithm": "quantization",\n%s\n  }\n}\n'
)

CASES = [
    Bad(
        "misspelt key",
        QUANT
        % (
            '    "initializer": {\n      /* HAWQ */\n'
            '      "precision": {"type": "hawq", "compresion_ratio": 1.5}\n    }'
        ),
        '"compresion_ratio"',
        "compression.initializer.precision.compresion_ratio",
        (
            "unknown key 'compresion_ratio'",
            "did you mean 'compression_ratio'?",
            "allowed keys here:",
            "bits",
        ),
    ),
    Bad(
        "wrong type",
        QUANT % '    "quantize_inputs": "yes"',
        '"quantize_inputs"',
        "compression.quantize_inputs",
        ("expected boolean", "got string 'yes'"),
    ),
    Bad(
        "enum value",
        QUANT % '    "initializer": {"range": {"type": "minmax"}}',
        '"type": "minmax"',
        "compression.initializer.range.type",
        ("'minmax' is not allowed", "did you mean 'min_max'?", "'threesigma'", "'mean_percentile'"),
    ),
    Bad(
        "bits out of range",
        QUANT % '    "initializer": {"precision": {"type": "hawq",\n        "bits": [4, 8, 32]}}',
        "32",
        "compression.initializer.precision.bits[2]",
        ("32 is out of range", "integers >= 2 and <= 16"),
    ),
    Bad(
        "weights bits as list",
        QUANT % '    "weights": {"mode": "symmetric", "bits": [4, 8]}',
        '"bits"',
        "compression.weights.bits",
        ("expected integer", "initializer.precision.bits"),
    ),
    Bad(
        "not JSON",
        '{\n  "compression": {\n    "algorithm": \'quantization\'\n  }\n}',
        "'quantization'",
        None,
        ("invalid JSON", "expected a value"),
    ),
    Bad(
        "trailing garbage",
        '{"log_dir": "runs"}\n  ]junk\n',
        "]junk",
        None,
        ("unexpected text after the end of the JSON document",),
    ),
    Bad("empty file", "", None, None, ("is empty",)),
    Bad(
        "compression without algorithm",
        '{\n  "compression": [\n    {"initializer": {}}\n  ]\n}',
        '{"initializer"',
        "compression[0]",
        ("missing key 'algorithm'", "'quantization'", "'magnitude_sparsity'"),
    ),
    Bad(
        "unknown algorithm",
        '{\n  "compression": {"algorithm": "magnitude_sparsty"}\n}',
        '"algorithm"',
        "compression.algorithm",
        (
            "'magnitude_sparsty' is not allowed",
            "did you mean 'magnitude_sparsity'?",
            "'filter_pruning'",
        ),
    ),
    Bad(
        "near-miss root section",
        '{\n  "model": "resnet18",\n  "compresion": {"algorithm": "quantization"}\n}',
        '"compresion"',
        "compresion",
        ("unknown top-level key 'compresion'", "did you mean 'compression'?"),
    ),
    Bad(
        "target device",
        '{\n  "target_device": "NPUU",\n  "compression": {"algorithm": "quantization"}\n}',
        '"target_device"',
        "target_device",
        ("'NPUU' is not allowed", "did you mean 'NPU'?", "'TRIAL'", "'CPU_SPR'"),
    ),
    Bad(
        "multistep levels",
        '{"compression": {"algorithm": "magnitude_sparsity", "params": {\n'
        '  "schedule": "multistep",\n'
        '  "multistep_steps": [5, 10],\n  "multistep_sparsity_levels": [0.1, 0.5]}}}',
        '"multistep_sparsity_levels"',
        "compression.params.multistep_sparsity_levels",
        ("2 levels for 2 steps", "one more level than steps"),
    ),
    Bad(
        "precision without type",
        QUANT % '    "initializer": {"precision": {"bits": [4, 8]}}',
        '"precision"',
        "compression.initializer.precision",
        ("missing key 'type'", "'hawq'", "'autoq'", "'manual'"),
    ),
    Bad(
        "autoq ratio given as hawq ratio",
        QUANT % '    "initializer": {"precision": {"type": "autoq", "compression_ratio": 1.5}}',
        '"compression_ratio"',
        "compression.initializer.precision.compression_ratio",
        ("1.5 is out of range for autoq", "(0, 1]"),
    ),
    Bad(
        "duplicate algorithm",
        '{"compression": [\n  {"algorithm": "quantization"},\n  {"algorithm": "quantization"}\n]}',
        '"algorithm": "quantization"}\n]',
        "compression[1].algorithm",
        ("'quantization' appears twice",),
    ),
    Bad(
        "percentiles swapped",
        QUANT
        % (
            '    "initializer": {"range": {"type": "percentile",\n'
            '      "params": {"min_percentile": 99.9, "max_percentile": 0.1}}}'
        ),
        '"params"',
        "compression.initializer.range.params",
        ("min_percentile 99.9 must be below max_percentile 0.1",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_config_gives_one_located_line(tmp_path: Path, case: Bad) -> None:
    path = tmp_path / "bad.json"
    path.write_text(case.text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SearchqWarning)
        with pytest.raises(case.cls) as info:
            load_config(path)
    err = info.value
    text = str(err)
    assert "\n" not in text
    assert err.file == str(path)
    assert text.startswith(str(path) + ":")
    if case.at is not None:
        assert (err.line, err.column) == position_of(case.text, case.at)
        assert text.startswith(f"{path}:{err.line}:{err.column}: ")
    assert err.key == case.key
    for fragment in case.fragments:
        assert fragment in err.message, (fragment, err.message)


def test_at_least_twelve_distinct_cases() -> None:
    assert len({c.name for c in CASES}) >= 12


def test_unsupported_algorithm_is_refused_at_the_key(tmp_path: Path) -> None:
    text = (
        '{\n  "compression": [\n    {"algorithm": "quantization"},\n'
        '    {"algorithm": "filter_pruning"}\n  ]\n}'
    )
    path = tmp_path / "prune.json"
    path.write_text(text)
    config = load_config(path)
    with pytest.raises(NotSupportedError) as info:
        config.require_supported()
    assert (info.value.line, info.value.column) == position_of(
        text, '"algorithm": "filter_pruning"'
    )
    assert "not supported: filter_pruning" in info.value.message
    assert "quantization, magnitude_sparsity, bootstrapNAS" in info.value.message


def test_config_error_method_locates_later_problems(tmp_path: Path) -> None:
    text = (
        QUANT
        % '    "initializer": {\n      "precision": {"type": "hawq", "bits": [2, 4, 8]}\n    }'
    )
    path = tmp_path / "ok.json"
    path.write_text(text)
    config = load_config(path)
    err = config.error("compression.initializer.precision.bits", "2 bits are not allowed on 'npu'")
    assert (err.line, err.column) == position_of(text, '"bits"')
    where = f"{path}:{err.line}:{err.column}"
    assert (
        str(err)
        == f"{where}: compression.initializer.precision.bits: 2 bits are not allowed on 'npu'"
    )


def test_dict_input_errors_name_the_key_without_a_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"compression": {"algorithm": "quantization", "weights": {"mode": "sym"}}})
    assert info.value.file is None and info.value.line is None
    assert info.value.key == "compression.weights.mode"
    assert "'sym' is not allowed" in info.value.message and "'symmetric'" in info.value.message


def test_non_json_values_in_dict_input() -> None:
    with pytest.raises(ConfigError, match="set is not a JSON value"):
        load_config({"compression": {"algorithm": "quantization", "ignored_scopes": {1, 2}}})
    with pytest.raises(ConfigError, match="is not a string"):
        load_config({"model": {1: "x"}})
    with pytest.raises(ConfigError, match="expected a config file path or a dict"):
        load_config(42)  # type: ignore[arg-type]
