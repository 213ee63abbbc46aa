"""Every real NNCF 2.x config of the compatibility corpus loads, with the values the files say."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from searchq.config import (
    AutoqSpec,
    HawqSpec,
    MagnitudeSparsitySpec,
    ManualSpec,
    SearchqWarning,
    UnsupportedAlgorithm,
    load_config,
)
from searchq.errors import NotSupportedError

REPO_ROOT = Path(__file__).resolve().parents[2]
# Tests run against the copy in the repo: CI works on a clean clone where ../shared may not exist.
CORPUS = REPO_ROOT / "tests" / "data" / "nncf-configs"
SHARED = Path(os.environ.get("SEARCHQ_NNCF_CONFIGS", REPO_ROOT.parent / "shared" / "nncf-configs"))
FILES = sorted(CORPUS.glob("*/*.json"))


def test_corpus_copy_is_complete_and_licensed() -> None:
    assert len(FILES) == 15
    assert (CORPUS / "LICENSE").read_text().count("Apache License") >= 1
    assert (CORPUS / "README.md").exists()


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared corpus not present (clean clone)")
def test_corpus_copy_matches_shared_corpus() -> None:
    shared = {p.relative_to(SHARED): p.read_bytes() for p in SHARED.glob("*/*.json")}
    copy = {p.relative_to(CORPUS): p.read_bytes() for p in FILES}
    assert copy == shared


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_corpus_file_loads_and_round_trips(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SearchqWarning)
        config = load_config(path)
        config.require_supported()
        resolved = config.to_dict()
        json.dumps(resolved)  # resolved_config.json must be plain JSON
        assert load_config(resolved) == config


def _load(name: str):  # noqa: ANN202 - test helper
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SearchqWarning)
        return load_config(next(p for p in FILES if p.name == name))


def test_hawq_examples_have_their_values() -> None:
    cfg = _load("resnet50_imagenet_mixed_int_hawq.json")
    assert cfg.algorithm == "hawq"
    assert cfg.target_device == "npu"
    assert cfg.input_info[0].sample_size == (1, 3, 224, 224)
    precision = cfg.quantization.precision
    assert isinstance(precision, HawqSpec)
    assert (precision.bits, precision.compression_ratio) == ((4, 8), 1.4)
    assert (precision.num_data_points, precision.iter_number, precision.tolerance) == (
        100,
        200,
        1e-4,
    )
    assert cfg.quantization.params["weights_quant_start_epoch"] == 12
    assert cfg.extra["epochs"] == 30 and cfg.extra["model"] == "resnet50"
    assert cfg.quantization.range_init.type == "mixed_min_max"  # NNCF default, file has no range

    squeeze = _load("squeezenet1_1_imagenet_mixed_int_hawq.json")
    assert squeeze.quantization.range_init.type == "min_max"
    assert squeeze.quantization.range_init.num_init_samples == 256


def test_hawq_test_config_list_form() -> None:
    cfg = _load("resnet18_cifar10_mixed_int.json")
    q = cfg.quantization
    assert isinstance(q.precision, HawqSpec)
    assert (q.precision.num_data_points, q.precision.iter_number) == (2, 1)
    assert q.precision.bits == (2, 4, 8)  # NNCF's default when the file gives none
    assert q.bn_adaptation.num_bn_adaptation_samples == 2
    assert q.range_init.num_init_samples == 1
    assert q.precision.explicit_keys == {"num_data_points", "iter_number"}


def test_autoq_examples() -> None:
    cfg = _load("mobilenet_v2_imagenet_mixed_int_autoq_staged.json")
    precision = cfg.quantization.precision
    assert isinstance(precision, AutoqSpec)
    assert precision == AutoqSpec(
        bits=(2, 4, 8),
        iter_number=300,
        compression_ratio=0.15,
        eval_subset_ratio=0.2,
        warmup_iter_number=20,
        dump_init_precision_data=True,
    )
    assert cfg.quantization.range_init.type == "mean_min_max"
    assert cfg.quantization.range_init.num_init_samples == 1500
    assert cfg.quantization.bn_adaptation.num_bn_adaptation_samples == 4000


@pytest.mark.parametrize(
    ("name", "count", "first", "last"),
    [
        (
            "resnet18_cifar10_mixed_int_manual.json",
            51,  # 21 |WEIGHT + 30 |OUTPUT lines in the file
            (2, "ResNet/NNCFConv2d[conv1]/conv2d_0|WEIGHT"),
            (8, "ResNet/Sequential[layer4]/BasicBlock[1]/ReLU[relu]/relu__1|OUTPUT"),
        ),
        (
            "mobilenet_v2_imagenet_mixed_int_manual.json",
            None,
            (4, "MobileNetV2/Sequential[classifier]/NNCFLinear[1]/linear_0|WEIGHT"),
            None,
        ),
    ],
)
def test_manual_files(name: str, count: int | None, first: tuple, last: tuple | None) -> None:
    path = next(p for p in FILES if p.name == name)
    raw = json.loads(path.read_text())["compression"]
    raw = raw[0] if isinstance(raw, list) else raw
    expected = [tuple(pair) for pair in raw["initializer"]["precision"]["bitwidth_per_scope"]]
    cfg = _load(name)
    precision = cfg.quantization.precision
    assert isinstance(precision, ManualSpec)  # the mobilenet file has no "type": manual anyway
    assert list(precision.bitwidth_per_scope) == expected
    assert precision.bitwidth_per_scope[0] == first
    if count is not None:
        assert len(precision.bitwidth_per_scope) == count
    if last is not None:
        assert precision.bitwidth_per_scope[-1] == last
    assert cfg.algorithm == "manual"


def test_manual_example_target_and_constraints() -> None:
    cfg = _load("mobilenet_v2_imagenet_mixed_int_manual.json")
    assert cfg.target_device == "trial"
    weights, acts = cfg.quantization.weights, cfg.quantization.activations
    assert (weights.mode, weights.bits, weights.per_channel, weights.signed) == (
        "asymmetric",
        4,
        True,
        None,
    )
    assert (acts.mode, acts.bits) == ("asymmetric", None)


def test_magnitude_sparsity_example() -> None:
    cfg = _load("resnet34_cifar_magnitude_sparsity.json")
    spec = cfg.sparsity
    assert isinstance(spec, MagnitudeSparsitySpec)
    assert cfg.algorithm == "magnitude_sparsity"
    assert spec.sparsity_init == 0.1
    assert spec.schedule == "multistep"
    assert spec.multistep_steps == (5, 10, 20, 30, 40)
    assert spec.multistep_sparsity_levels == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    assert spec.target_level == 0.6
    assert spec.sparsity_freeze_epoch == 50
    assert (spec.sparsity_target_epoch, spec.power, spec.weight_importance) == (
        90,
        0.9,
        "normed_abs",
    )


def test_bootstrapnas_files() -> None:
    cfg = _load("bootstrapnas_example_config.json")
    assert cfg.algorithm == "nsga"
    assert cfg.compression == ()
    assert cfg.bootstrapnas.search["num_evals"] == 3000
    stages = cfg.bootstrapnas.training["schedule"]["list_stage_descriptions"]
    assert [s["epochs"] for s in stages] == [25, 40, 50, 50]
    width = cfg.bootstrapnas.training["elasticity"]["width"]
    assert (
        width["min_width"] == 32 and "min_out_channels" not in width
    )  # legacy name, read as min_width
    assert cfg.extra["optimizer"]["type"] == "sgd"

    full = _load("full_nas_params.json")
    assert full.algorithm == "elastic"  # training only
    assert full.input_info == ()  # "input_info": {} means "not given"


def test_warnings_for_unused_root_keys_name_them() -> None:
    path = next(p for p in FILES if p.name == "resnet50_imagenet_mixed_int_hawq.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config(path)
    messages = sorted(str(w.message) for w in caught if w.category is SearchqWarning)
    assert [m.split(":")[0] for m in messages] == ["export_to_ir_via_onnx", "no_strip_on_export"]


@pytest.mark.parametrize("algorithm", ["filter_pruning", "rb_sparsity"])
def test_unsupported_algorithms_load_but_are_refused(write, algorithm: str) -> None:
    text = (
        '{\n  "input_info": {"sample_size": [1, 3, 32, 32]},\n  "compression": [\n'
        '    {"algorithm": "quantization"},\n'
        f'    {{"algorithm": "{algorithm}", "params": {{"schedule": "exponential"}}}}\n  ]\n}}\n'
    )
    cfg = load_config(write(text))
    assert cfg.compression[1] == UnsupportedAlgorithm(
        algorithm, {"algorithm": algorithm, "params": {"schedule": "exponential"}}
    )
    with pytest.raises(NotSupportedError) as info:
        cfg.require_supported()
    assert str(info.value).endswith(
        f"compression[1].algorithm: not supported: {algorithm} (searchq implements quantization, "
        "magnitude_sparsity, bootstrapNAS); remove this entry"
    )
    assert (info.value.line, info.value.column) == (5, 6)
    with pytest.raises(NotSupportedError):
        load_config(write(text, "again.json"), strict=True)
