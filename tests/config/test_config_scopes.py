"""NNCF scope addresses -> module names, and ignored/target scope matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from searchq.config import MODEL_INPUT, match_scopes, nncf_scope_to_module
from searchq.errors import ConfigError

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "data" / "nncf-configs"


@pytest.mark.parametrize(
    ("scope", "expected", "op_name"),
    [
        (
            "ResNet/Sequential[layer1]/BasicBlock[0]/NNCFConv2d[conv1]/conv2d_0|WEIGHT",
            ("layer1.0.conv1", 0, "WEIGHT"),
            "conv2d",
        ),
        (
            "ResNet/Sequential[layer1]/BasicBlock[0]/NNCFConv2d[conv1]/conv2d_0",
            ("layer1.0.conv1", 0, None),
            "conv2d",
        ),
        ("/nncf_model_input_0|OUTPUT", (MODEL_INPUT, 0, "OUTPUT"), "nncf_model_input"),
        ("/nncf_model_input_1|OUTPUT", (MODEL_INPUT, 1, "OUTPUT"), "nncf_model_input"),
        (
            "ResNet/Sequential[layer4]/BasicBlock[1]/ReLU[relu]/relu__1|OUTPUT",
            ("layer4.1.relu", 1, "OUTPUT"),
            "relu_",
        ),
        (
            "MobileNetV2/Sequential[features]/InvertedResidual[10]/__add___0|OUTPUT",
            ("features.10", 0, "OUTPUT"),
            "__add__",
        ),
        ("ResNet/NNCFLinear[fc]/linear_0|WEIGHT", ("fc", 0, "WEIGHT"), "linear"),
        ("ResNet/ReLU[relu]/relu__0|OUTPUT", ("relu", 0, "OUTPUT"), "relu_"),
        ("ResNet/Sequential[layer1]", ("layer1", None, None), None),
        ("ResNet/relu_3", ("", 3, None), "relu"),
    ],
)
def test_nncf_scope_to_module(scope: str, expected: tuple, op_name: str | None) -> None:
    address = nncf_scope_to_module(scope)
    assert tuple(address) == expected
    module, op_index, kind = address  # unpacks as a 3-tuple
    assert (module, op_index, kind) == expected
    assert address.op_name == op_name


def test_input_port_and_class_names() -> None:
    address = nncf_scope_to_module(
        "ResNet/Sequential[layer2]/BasicBlock[0]/Sequential[downsample]/NNCFConv2d[0]/conv2d_0|INPUT1"
    )
    assert tuple(address) == ("layer2.0.downsample.0", 0, "INPUT")
    assert address.input_port == 1
    assert address.root == "ResNet"
    assert address.types == ("Sequential", "BasicBlock", "Sequential", "NNCFConv2d")


@pytest.mark.parametrize(
    "bad",
    ["ResNet/conv2d_0/NNCFConv2d[x]", "ResNet/NNCFConv2d[x]/conv2d_0|BIAS", "", "ResNet/conv"],
)
def test_bad_addresses(bad: str) -> None:
    with pytest.raises(ConfigError):
        nncf_scope_to_module(bad)


def test_resnet18_manual_weights_map_to_the_weighted_layers() -> None:
    doc = json.loads((CORPUS / "tests" / "resnet18_cifar10_mixed_int_manual.json").read_text())
    pairs = doc["compression"][0]["initializer"]["precision"]["bitwidth_per_scope"]
    weights = {nncf_scope_to_module(s).module_name for _, s in pairs if s.endswith("|WEIGHT")}
    # torchvision resnet18: stem conv, fc, two convs per BasicBlock x 8, three downsample convs
    expected = {"conv1", "fc"}
    expected |= {
        f"layer{layer}.{block}.conv{c}" for layer in range(1, 5) for block in (0, 1) for c in (1, 2)
    }
    expected |= {f"layer{layer}.0.downsample.0" for layer in (2, 3, 4)}
    assert weights == expected


@pytest.mark.parametrize(
    "path", sorted(CORPUS.glob("examples/*manual*.json")), ids=lambda p: p.name
)
def test_every_manual_scope_of_the_corpus_parses(path: Path) -> None:
    doc = json.loads(path.read_text())
    for _, scope in doc["compression"]["initializer"]["precision"]["bitwidth_per_scope"]:
        address = nncf_scope_to_module(scope)
        assert address.kind in ("WEIGHT", "OUTPUT")


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.relu = nn.ReLU()


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.layer1 = nn.Sequential(Block(), Block())
        self.layer10 = nn.Sequential(nn.Conv2d(4, 4, 1))
        self.fc = nn.Linear(4, 2)


@pytest.fixture(scope="module")
def modules() -> dict[str, str]:
    torch.manual_seed(0)
    return {name: type(m).__name__ for name, m in TinyResNet().named_modules()}


ALL = ["", "conv1", "layer1", "layer1.0", "layer1.0.conv1", "layer1.0.conv2", "layer1.0.relu",
       "layer1.1", "layer1.1.conv1", "layer1.1.conv2", "layer1.1.relu", "layer10", "layer10.0",
       "fc"]  # fmt: skip


def test_module_fixture_is_what_the_expectations_assume(modules: dict[str, str]) -> None:
    assert list(modules) == ALL


def test_dotted_prefix_match_respects_boundaries(modules: dict[str, str]) -> None:
    selected = match_scopes(modules, ignored_scopes=["layer1"])
    assert selected == ["", "conv1", "layer10", "layer10.0", "fc"]
    assert selected.unmatched == ()


def test_target_scopes_nncf_op_address_is_exact(modules: dict[str, str]) -> None:
    scope = "TinyResNet/Sequential[layer1]/Block[0]/NNCFConv2d[conv1]/conv2d_0"
    assert match_scopes(modules, target_scopes=[scope]) == ["layer1.0.conv1"]


def test_target_scopes_nncf_module_address_is_a_prefix(modules: dict[str, str]) -> None:
    selected = match_scopes(modules, target_scopes="TinyResNet/Sequential[layer1]/Block[1]")
    assert selected == ["layer1.1", "layer1.1.conv1", "layer1.1.conv2", "layer1.1.relu"]


def test_regex_uses_search_on_dotted_names(list_only: list[str] = ALL) -> None:
    # unanchored like NNCF's re.search: "conv2" is found inside "layer1.0.conv2"
    assert match_scopes(list_only, target_scopes=["{re}conv2"]) == [
        "layer1.0.conv2",
        "layer1.1.conv2",
    ]
    assert match_scopes(list_only, target_scopes=["{re}^conv"]) == ["conv1"]


def test_regex_also_matches_nncf_addresses_when_types_are_known(modules: dict[str, str]) -> None:
    scope = r"{re}Block\[\d\]/NNCFConv2d\[conv1\]/conv2d_0$"
    assert match_scopes(modules, target_scopes=[scope]) == ["layer1.0.conv1", "layer1.1.conv1"]
    # with bare names there is no address to match against: reported, not silently dropped
    result = match_scopes(list(modules), target_scopes=[scope])
    assert result == [] and result.unmatched_target == (scope,)


def test_ignored_and_target_together_and_unmatched_report(modules: dict[str, str]) -> None:
    result = match_scopes(
        modules,
        ignored_scopes=["{re}relu", "layer7", "TinyResNet/NNCFLinear[fc]/linear_0|WEIGHT"],
        target_scopes=["layer1.0", "fc", "nothing.here"],
    )
    assert result == ["layer1.0", "layer1.0.conv1", "layer1.0.conv2"]
    assert result.unmatched_ignored == ("layer7",)
    assert result.unmatched_target == ("nothing.here",)


def test_bad_regex_and_bad_scope_values(modules: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        match_scopes(modules, ignored_scopes=["{re}conv("])
    with pytest.raises(ConfigError, match="non-empty scope string"):
        match_scopes(modules, ignored_scopes=[3])  # type: ignore[list-item]
