"""NNI config_list selectors against hand-computed selections (NNI docs' example model)."""

from __future__ import annotations

import pytest

from searchq.config import resolve_nni_config_list
from searchq.errors import ConfigError

# Shaped like the model in NNI's compression/config_list.rst, plus a block and an embedding.
MODULES = {
    "": "Model",
    "conv1": "Conv2d",
    "conv2": "Conv2d",
    "dropout1": "Dropout2d",
    "fc1": "Linear",
    "fc2": "Linear",
    "block": "Sequential",
    "block.0": "Conv2d",
    "block.1": "ReLU",
    "emb": "Embedding",
}


def selected(config_list: list) -> list[str]:
    return list(resolve_nni_config_list(config_list, MODULES))


@pytest.mark.parametrize(
    ("config_list", "expected"),
    [
        # NNI docs: "all Conv2d modules and module named fc1"
        ([{"op_types": ["Conv2d"]}, {"op_names": ["fc1"]}], ["conv1", "conv2", "fc1", "block.0"]),
        # NNI docs: legacy exclude gives the same modules
        (
            [{"op_types": ["Conv2d", "Linear"]}, {"exclude": True, "op_names": ["fc2"]}],
            ["conv1", "conv2", "fc1", "block.0"],
        ),
        # exclude entries apply whatever their position (NNI 3's legacy conversion)
        ([{"exclude": True, "op_names": ["fc2"]}, {"op_types": ["Linear"]}], ["fc1"]),
        # names and types intersect
        ([{"op_names": ["conv1", "fc1"], "op_types": ["Linear"]}], ["fc1"]),
        # re.match is anchored at the start: "fc" selects fc1 and fc2 ...
        ([{"op_names_re": ["fc"]}], ["fc1", "fc2"]),
        # ... and "c1" selects nothing (re.search would have found fc1 and conv1)
        ([{"op_names_re": ["c1"]}], []),
        # "default" = NNI's weighted modules; then exclusions by type and by anchored regex
        (
            [
                {
                    "op_types": ["default"],
                    "exclude_op_types": ["Embedding"],
                    "exclude_op_names_re": ["conv"],
                }
            ],
            ["fc1", "fc2", "block.0"],
        ),
        (
            [{"op_types": "default", "exclude_op_names": ["emb", "fc2"]}],
            ["conv1", "conv2", "fc1", "block.0"],
        ),
        # legacy op_partial_names = substring
        ([{"op_partial_names": ["onv"]}], ["conv1", "conv2"]),
    ],
)
def test_selection(config_list: list, expected: list[str]) -> None:
    assert selected(config_list) == expected


def test_later_entries_override_earlier_settings() -> None:
    result = resolve_nni_config_list(
        [
            {"op_types": ["Conv2d"], "quant_types": ["weight"], "quant_bits": 8},
            {"op_names": ["conv2"], "quant_bits": 4},
        ],
        MODULES,
    )
    assert result == {
        "conv1": {"quant_types": ["weight"], "quant_bits": 8},
        "conv2": {"quant_bits": 4},
        "block.0": {"quant_types": ["weight"], "quant_bits": 8},
    }
    assert result.entry_of == {"conv1": 0, "conv2": 1, "block.0": 0}


def test_unmatched_selectors_are_reported() -> None:
    result = resolve_nni_config_list(
        [{"op_names": ["fc1", "fc3"]}, {"op_names_re": ["c1"]}, {"op_types": ["LSTM"]}], MODULES
    )
    assert list(result) == ["fc1"]
    assert result.unmatched == (
        "config_list[0].op_names: 'fc3' is not a module",
        "config_list[1].op_names_re: 'c1' matches no module",
        "config_list[1] selects no module",
        "config_list[2].op_types: no module of type 'LSTM'",
        "config_list[2] selects no module",
    )


@pytest.mark.parametrize(
    ("config_list", "key", "fragment"),
    [
        ("Conv2d", "config_list", "expected a list"),
        ([3], "config_list[0]", "expected an object"),
        ([{"op_names": "fc1"}], "config_list[0].op_names", "list of strings"),
        ([{"op_names_re": ["fc("]}], "config_list[0].op_names_re", "invalid regular expression"),
        ([{"sparse_ratio": 0.5}], "config_list[0]", "add 'op_types', 'op_names' or 'op_names_re'"),
        ([{"op_types": ["Linear"], "exclude": "yes"}], "config_list[0].exclude", "true or false"),
    ],
)
def test_malformed_config_lists(config_list: object, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_nni_config_list(config_list, MODULES)
    assert info.value.key == key
    assert fragment in info.value.message
