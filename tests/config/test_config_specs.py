"""Spec defaults are NNCF's, specs validate themselves, warnings come once per key."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from searchq.config import (
    AutoqSpec,
    BNAdaptSpec,
    BootstrapNASSpec,
    HawqSpec,
    InputInfo,
    MagnitudeSparsitySpec,
    ManualSpec,
    QuantizationSpec,
    QuantizerConstraints,
    RangeInitSpec,
    SearchqConfig,
    SearchqWarning,
    load_config,
)
from searchq.errors import ConfigError

# Defaults as read from NNCF's sources (nncf/config/schemata/defaults.py, hawq_init.py,
# init_range.py / RangeInitConfig.from_dict, sparsity schedulers) — see notes/nncf_reference.md.
NNCF_DEFAULTS = {
    RangeInitSpec: {
        "type": "mixed_min_max",
        "num_init_samples": 256,
        "min_percentile": 0.1,
        "max_percentile": 99.9,
    },
    BNAdaptSpec: {"num_bn_adaptation_samples": 2000},
    HawqSpec: {
        "bits": (2, 4, 8),
        "num_data_points": 100,
        "iter_number": 200,
        "tolerance": 1e-4,
        "compression_ratio": 1.5,
        "dump_init_precision_data": False,
        "bitwidth_assignment_mode": "liberal",
        "traces_per_layer_path": None,
    },
    AutoqSpec: {
        "bits": (2, 4, 8),
        "compression_ratio": 0.15,
        "eval_subset_ratio": 1.0,
        "warmup_iter_number": 20,
    },
    MagnitudeSparsitySpec: {
        "sparsity_init": 0.0,
        "schedule": "polynomial",
        "sparsity_target": 0.5,
        "sparsity_target_epoch": 90,
        "sparsity_freeze_epoch": 100,
        "power": 0.9,
        "concave": True,
        "update_per_optimizer_step": False,
        "steps_per_epoch": None,
        "multistep_steps": (90,),
        "multistep_sparsity_levels": (0.1, 0.5),
        "patience": 1,
        "sparsity_level_setting_mode": "global",
        "weight_importance": "normed_abs",
    },
}


@pytest.mark.parametrize("cls", list(NNCF_DEFAULTS), ids=lambda c: c.__name__)
def test_defaults_are_nncf_defaults(cls: type) -> None:
    spec = cls()
    for name, value in NNCF_DEFAULTS[cls].items():
        assert getattr(spec, name) == value, name


def test_searchq_only_hawq_defaults_and_autoq_iter_number() -> None:
    hawq = HawqSpec()
    assert (hawq.batch_size, hawq.selection, hawq.stop, hawq.stderr_fraction) == (
        None,
        "exact",
        "pick",
        0.05,
    )
    assert (hawq.pick_tolerance, hawq.deflation_rank) == (0.02, 16)
    assert AutoqSpec().iter_number == 300  # NNCF's 0 never runs an episode and then crashes
    assert QuantizationSpec().quantize_inputs is True


def test_specs_are_frozen_and_hashable_where_flat() -> None:
    spec = HawqSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.bits = (8,)  # type: ignore[misc]
    assert hash(spec) == hash(HawqSpec())
    q = QuantizationSpec(params={"base_lr": 1e-3})
    with pytest.raises(TypeError):
        q.params["base_lr"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("build", "key", "fragment"),
    [
        (lambda: HawqSpec(bits=(1, 8)), "bits", "[2, 16]"),
        (lambda: HawqSpec(bits=(4, 4)), "bits", "twice"),
        (lambda: HawqSpec(bits=()), "bits", "non-empty list"),
        (lambda: HawqSpec(stop="never"), "stop", "'stderr', 'tolerance'"),
        (lambda: HawqSpec(selection="greedy"), "selection", "'exact', 'monotone'"),
        (lambda: HawqSpec(compression_ratio=0), "compression_ratio", "(0"),
        (lambda: HawqSpec(iter_number=0), "iter_number", "[1, inf]"),
        (lambda: AutoqSpec(eval_subset_ratio=1.5), "eval_subset_ratio", "(0, 1]"),
        (lambda: AutoqSpec(overlap_updates="yes"), "overlap_updates", "expected true or false"),
        (lambda: RangeInitSpec(type="max"), "type", "'min_max'"),
        (lambda: RangeInitSpec(num_init_samples=-1), "num_init_samples", "[0, inf]"),
        (lambda: QuantizerConstraints(bits=1), "bits", "[2, 16]"),
        (lambda: QuantizerConstraints(mode="sym"), "mode", "did you mean 'symmetric'?"),
        (lambda: InputInfo(sample_size=(1, 0)), "sample_size", "[1, inf]"),
        (lambda: InputInfo(sample_size=(1, 3), type="int"), "type", "'float', 'long'"),
        (lambda: ManualSpec(((8, "a"), (4, "a"))), "bitwidth_per_scope[1]", "keep one entry"),
        (lambda: MagnitudeSparsitySpec(sparsity_target=1.0), "params.sparsity_target", "[0, 1)"),
        (
            lambda: MagnitudeSparsitySpec(
                schedule="multistep",
                multistep_steps=(5, 3),
                multistep_sparsity_levels=(0.1, 0.2, 0.3),
            ),
            "params.multistep_steps",
            "strictly increasing",
        ),
        (lambda: SearchqConfig(target_device="tpu"), "target_device", "'trial'"),
        (
            lambda: SearchqConfig(compression=(QuantizationSpec(), QuantizationSpec())),
            "compression[1].algorithm",
            "twice",
        ),
    ],
)
def test_post_init_validation(build, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.key == key
    assert fragment in info.value.message


def test_from_dict_to_dict_round_trip_fills_defaults() -> None:
    spec = QuantizationSpec.from_dict(
        {"algorithm": "quantization", "initializer": {"precision": {"type": "hawq"}}}
    )
    out = spec.to_dict()
    assert out["initializer"]["range"] == {
        "type": "mixed_min_max",
        "num_init_samples": 256,
        "params": {"min_percentile": 0.1, "max_percentile": 99.9},
    }
    assert out["initializer"]["precision"]["iter_number"] == 200
    assert QuantizationSpec.from_dict(out) == spec
    autoq = QuantizationSpec.from_dict(
        {"initializer": {"precision": {"type": "autoq", "overlap_updates": False}}}
    )
    assert isinstance(autoq.precision, AutoqSpec) and autoq.precision.overlap_updates is False
    assert AutoqSpec().overlap_updates is True  # searchq only: NNCF has no such key
    assert QuantizationSpec.from_dict(autoq.to_dict()) == autoq
    sparsity = MagnitudeSparsitySpec(schedule="exponential", sparsity_target=0.7)
    assert MagnitudeSparsitySpec.from_dict(sparsity.to_dict()) == sparsity


def test_from_dict_errors_carry_the_full_path() -> None:
    with pytest.raises(ConfigError) as info:
        QuantizationSpec.from_dict(
            {"initializer": {"range": [{"type": "min_max"}]}}, path=("compression", 2)
        )
    assert info.value.key == "compression[2].initializer.range[0]"
    assert "needs 'target_scopes' or 'ignored_scopes'" in info.value.message


def test_manual_without_type_and_per_layer_range() -> None:
    spec = QuantizationSpec.from_dict(
        {
            "initializer": {
                "precision": {"bitwidth_per_scope": [[4, "M/NNCFConv2d[c]/conv2d_0|WEIGHT"]]},
                "range": [
                    {
                        "type": "percentile",
                        "target_scopes": "{re}.*conv.*",
                        "params": {"max_percentile": 99},
                    }
                ],
            }
        }
    )
    assert spec.precision == ManualSpec(((4, "M/NNCFConv2d[c]/conv2d_0|WEIGHT"),))
    assert spec.range_init_overrides == (
        RangeInitSpec(type="percentile", max_percentile=99.0, target_scopes=("{re}.*conv.*",)),
    )
    assert spec.range_init == RangeInitSpec()


def test_target_device_mapping() -> None:
    cases = {
        "ANY": "any",
        "CPU": "cpu",
        "CPU_SPR": "cpu",
        "GPU": "gpu",
        "NPU": "npu",
        "VPU": "npu",
        "TRIAL": "trial",
        "npu": "npu",
    }
    for given, expected in cases.items():
        assert load_config({"target_device": given}).target_device == expected
    assert load_config({}).target_device == "any"
    assert load_config({"hw_config_type": "vpu"}).target_device == "npu"  # NNCF <= 2.0 spelling
    assert load_config({"hw_config_type": "cpu", "target_device": "ANY"}).target_device == "cpu"


def test_algorithm_property() -> None:
    def algo(doc: dict) -> str | None:
        return load_config(doc).algorithm

    q = {"algorithm": "quantization"}
    assert algo({}) is None
    assert algo({"compression": q}) == "quantization"
    assert algo({"compression": {**q, "initializer": {"precision": {"type": "autoq"}}}}) == "autoq"
    assert algo({"compression": {"algorithm": "magnitude_sparsity"}}) == "magnitude_sparsity"
    assert algo({"bootstrapNAS": {"training": {}}}) == "elastic"
    assert algo({"bootstrapNAS": {"training": {}, "search": {"num_evals": 4}}}) == "nsga"
    assert BootstrapNASSpec().to_dict() == {}


def test_extra_root_keys_are_kept_without_error() -> None:
    doc = {
        "model": "resnet18",
        "batch_size": 8,
        "epochs": 3,
        "optimizer": {"type": "sgd"},
        "workers": 2,
        "dataset": "x",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = load_config(doc)
    assert dict(config.extra) == {k: v for k, v in doc.items() if k != "optimizer"} | {
        "optimizer": config.extra["optimizer"]
    }
    assert config.to_dict()["optimizer"] == {"type": "sgd"}


def _warnings_of(doc: dict, *, times: int = 1) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(times):
            load_config(doc)
    return [str(w.message) for w in caught if issubclass(w.category, SearchqWarning)]


def test_unused_nncf_keys_warn_once_per_key() -> None:
    doc = {
        "no_strip_on_export": True,
        "compression": [
            {"algorithm": "quantization", "overflow_fix": "disable", "preset": "mixed",
             "scope_overrides": {}, "quantize_outputs": True, "export_to_onnx_standard_ops": False,
             "weights": {"logarithm_scale": True}},
            {"algorithm": "magnitude_sparsity", "compression_lr_multiplier": 2.0},
        ],
    }  # fmt: skip
    messages = _warnings_of(doc, times=3)
    keys = sorted(m.split(":")[0] for m in messages)
    assert keys == sorted(
        [
            "no_strip_on_export",
            "compression.overflow_fix",
            "compression.preset",
            "compression.scope_overrides",
            "compression.quantize_outputs",
            "compression.export_to_onnx_standard_ops",
            "compression.weights.logarithm_scale",
            "compression.compression_lr_multiplier",
        ]
    )
    assert all("does not act on" in m for m in messages)


def test_strict_mode_refuses_unused_keys() -> None:
    with pytest.raises(ConfigError, match="strict mode refuses it") as info:
        load_config(
            {"compression": {"algorithm": "quantization", "overflow_fix": "enable"}}, strict=True
        )
    assert info.value.key == "compression.overflow_fix"


def test_keys_of_another_precision_type_warn() -> None:
    doc = {
        "compression": {
            "algorithm": "quantization",
            "initializer": {
                "precision": {"type": "autoq", "num_data_points": 3, "selection": "exact"}
            },
        }
    }
    messages = _warnings_of(doc)
    prefix = "compression.initializer.precision"
    assert sorted(messages) == [
        f"{prefix}.num_data_points: not used by precision type 'autoq'; ignored",
        f"{prefix}.selection: not used by precision type 'autoq'; ignored",
    ]


def test_tolerance_without_stop_warns_about_the_stop_rule() -> None:
    doc = {
        "compression": {
            "algorithm": "quantization",
            "initializer": {"precision": {"type": "hawq", "tolerance": 1e-3}},
        }
    }
    (message,) = _warnings_of(doc)
    assert '"stop": "tolerance"' in message
    doc["compression"]["initializer"]["precision"]["stop"] = "tolerance"
    assert _warnings_of(doc) == []


def test_near_miss_root_key_warns_when_a_section_exists() -> None:
    messages = _warnings_of({"compression": {"algorithm": "quantization"}, "target_devise": "CPU"})
    assert (
        messages and messages[0].startswith("target_devise:") and "'target_device'" in messages[0]
    )


def test_warnings_point_at_the_callers_line() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config({"compression": {"algorithm": "quantization", "preset": "mixed"}})
    assert [w.filename for w in caught] == [__file__]


def test_from_dict_type_errors_point_at_the_section() -> None:
    with pytest.raises(ConfigError) as info:
        QuantizationSpec.from_dict({"initializer": [1]}, path=("compression",))
    assert info.value.key == "compression.initializer"
    assert "expected an object" in info.value.message
