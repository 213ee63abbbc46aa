"""JSON Schema (Draft 2020-12) of the NNCF 2.x keys searchq reads, plus searchq's own HAWQ keys.

Mirrors ``nncf/config/schemata`` for quantization, magnitude_sparsity and bootstrapNAS, with
tighter types where NNCF says "number" but means a count (``integer``) or a bitwidth (2..16).
Root level stays open (NNCF's root schema allows any extra key: they belong to the user's training
script); every section below it is closed (``additionalProperties: false``), like NNCF's.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ALL_ALGORITHMS",
    "IMPLEMENTED_ALGORITHMS",
    "KNOWN_ROOT_KEYS",
    "NNCF_SCHEMA",
    "RANGE_INIT_TYPES",
    "SECTION_KEYS",
    "TARGET_DEVICES",
    "UNSUPPORTED_ALGORITHMS",
    "UNUSED_KEYS",
]

IMPLEMENTED_ALGORITHMS = ("quantization", "magnitude_sparsity")
#: Algorithms NNCF 2.x accepts in ``compression`` that searchq loads but cannot run.
UNSUPPORTED_ALGORITHMS = (
    "filter_pruning",
    "rb_sparsity",
    "const_sparsity",
    "knowledge_distillation",
    "movement_sparsity",
    "binarization",
    "experimental_quantization",
)
ALL_ALGORITHMS = IMPLEMENTED_ALGORITHMS + UNSUPPORTED_ALGORITHMS

#: NNCF target_device values (any case; VPU is the pre-2.6 name of NPU) -> searchq hardware preset.
TARGET_DEVICES = {
    "any": "any",
    "cpu": "cpu",
    "cpu_spr": "cpu",
    "gpu": "gpu",
    "npu": "npu",
    "vpu": "npu",
    "trial": "trial",
}
#: Legacy ``hw_config_type`` values (NNCF <= 2.0, lower-case) -> searchq hardware preset.
HW_CONFIG_TYPES = {"cpu": "cpu", "gpu": "gpu", "vpu": "npu"}

RANGE_INIT_TYPES = (
    "mixed_min_max",
    "min_max",
    "mean_min_max",
    "threesigma",
    "percentile",
    "mean_percentile",
)

#: Root keys that are NNCF's own (everything else at the root is the user's pipeline setting).
SECTION_KEYS = ("compression", "bootstrapNAS")
KNOWN_ROOT_KEYS = (
    "input_info",
    "target_device",
    "hw_config_type",
    "compression",
    "bootstrapNAS",
    "log_dir",
    "accuracy_aware_training",
    "compression_lr_multiplier",
    "disable_shape_matching",
    "no_strip_on_export",
    "export_to_ir_via_onnx",
)

#: Keys NNCF knows but searchq does not act on: warned about once, then ignored. ``*`` = list index;
#: "quantization" / "magnitude_sparsity" stand for the algorithm's entry in ``compression``.
UNUSED_KEYS = {
    (): (
        "accuracy_aware_training",
        "compression_lr_multiplier",
        "disable_shape_matching",
        "no_strip_on_export",
        "export_to_ir_via_onnx",
    ),
    ("quantization",): (
        "overflow_fix",
        "export_to_onnx_standard_ops",
        "preset",
        "scope_overrides",
        "quantize_outputs",
        "disable_saturation_fix",
        "compression_lr_multiplier",
    ),
    ("quantization", "weights"): ("logarithm_scale",),
    ("quantization", "activations"): ("logarithm_scale", "unified_scale_ops"),
    ("magnitude_sparsity",): ("compression_lr_multiplier",),
}

_BOOL = {"type": "boolean"}
_STR = {"type": "string"}
_NUM = {"type": "number"}
_BITS = {"type": "integer", "minimum": 2, "maximum": 16}
_COUNT = {"type": "integer", "minimum": 0}
_POSITIVE = {"type": "integer", "minimum": 1}
_LEVEL = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
_SCOPES = {"type": ["string", "array"], "items": _STR}


def _obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False, **extra}


def _one_or_many(ref: str, item_ref: str | None = None) -> dict[str, Any]:
    # if/then/else instead of NNCF's oneOf: errors then come from the branch that applies.
    return {
        "type": ["object", "array"],
        "if": {"type": "object"},
        "then": {"$ref": ref},
        "else": {"items": {"$ref": item_ref or ref}},
    }


_BN_ADAPT = _obj({"num_bn_adaptation_samples": _COUNT})

_RANGE_PROPS = {
    "type": {"enum": list(RANGE_INIT_TYPES)},
    "num_init_samples": _COUNT,
    "params": _obj(
        {
            "min_percentile": {"type": "number", "minimum": 0, "maximum": 100},
            "max_percentile": {"type": "number", "minimum": 0, "maximum": 100},
        }
    ),
}

_PRECISION = _obj(
    {
        "type": {"enum": ["hawq", "autoq", "manual"]},
        "bits": {"type": "array", "items": _BITS, "minItems": 1, "uniqueItems": True},
        "num_data_points": _POSITIVE,
        "iter_number": _POSITIVE,
        "tolerance": {"type": "number", "minimum": 0},
        "compression_ratio": {"type": "number", "exclusiveMinimum": 0},
        "eval_subset_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "warmup_iter_number": _COUNT,
        "bitwidth_per_scope": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [_BITS, {"type": "string", "minLength": 1}],
                "minItems": 2,
                "maxItems": 2,
            },
        },
        "traces_per_layer_path": _STR,
        "dump_init_precision_data": _BOOL,
        "bitwidth_assignment_mode": {"enum": ["strict", "liberal"]},
        # searchq-only HAWQ keys
        "batch_size": _POSITIVE,
        "selection": {"enum": ["exact", "monotone"]},
        "stop": {"enum": ["pick", "stderr", "tolerance"]},
        "stderr_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "pick_tolerance": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "deflation_rank": {"type": "integer", "minimum": 0},
        "activation_sensitivity": _BOOL,
        "activation_probes": _POSITIVE,
        "trace_method": {"enum": ["auto", "gauss_newton", "hutchinson"]},
        # searchq-only AutoQ key
        "overlap_updates": _BOOL,
    }
)

_QUANTIZER_GROUP = {
    "mode": {"enum": ["symmetric", "asymmetric"]},
    "bits": _BITS,
    "signed": _BOOL,
    "per_channel": _BOOL,
    "ignored_scopes": _SCOPES,
    "target_scopes": _SCOPES,
    "logarithm_scale": _BOOL,
}

_QUANTIZATION = _obj(
    {
        "algorithm": {"const": "quantization"},
        "initializer": _obj(
            {
                "range": _one_or_many("#/$defs/range", "#/$defs/range_per_layer"),
                "batchnorm_adaptation": _BN_ADAPT,
                "precision": _PRECISION,
            }
        ),
        "weights": _obj(_QUANTIZER_GROUP),
        "activations": _obj(
            {
                **_QUANTIZER_GROUP,
                "unified_scale_ops": {"type": "array", "items": {"type": "array", "items": _STR}},
            }
        ),
        "quantize_inputs": _BOOL,
        "quantize_outputs": _BOOL,
        "preset": {"enum": ["performance", "mixed"]},
        "scope_overrides": {"type": "object"},
        "ignored_scopes": _SCOPES,
        "target_scopes": _SCOPES,
        "validate_scopes": _BOOL,
        "export_to_onnx_standard_ops": _BOOL,
        "overflow_fix": {"enum": ["enable", "disable", "first_layer_only"]},
        "disable_saturation_fix": _BOOL,
        "compression_lr_multiplier": _NUM,
        "params": _obj(
            {
                "batch_multiplier": _POSITIVE,
                "activations_quant_start_epoch": _COUNT,
                "weights_quant_start_epoch": _COUNT,
                "lr_poly_drop_start_epoch": _COUNT,
                "lr_poly_drop_duration_epochs": _COUNT,
                "disable_wd_start_epoch": _COUNT,
                "base_lr": {"type": "number", "minimum": 0},
                "base_wd": {"type": "number", "minimum": 0},
            }
        ),
    }
)

_MAGNITUDE_SPARSITY = _obj(
    {
        "algorithm": {"const": "magnitude_sparsity"},
        "sparsity_init": _LEVEL,
        "initializer": _obj({"batchnorm_adaptation": _BN_ADAPT}),
        "ignored_scopes": _SCOPES,
        "target_scopes": _SCOPES,
        "compression_lr_multiplier": _NUM,
        "params": _obj(
            {
                "schedule": {"enum": ["polynomial", "exponential", "adaptive", "multistep"]},
                "patience": _POSITIVE,
                "power": {"type": "number", "exclusiveMinimum": 0},
                "concave": _BOOL,
                "sparsity_target": _LEVEL,
                "sparsity_target_epoch": _COUNT,
                "sparsity_freeze_epoch": _COUNT,
                "update_per_optimizer_step": _BOOL,
                "steps_per_epoch": _POSITIVE,
                "multistep_steps": {"type": "array", "items": _COUNT},
                "multistep_sparsity_levels": {"type": "array", "items": _LEVEL, "minItems": 1},
                "sparsity_level_setting_mode": {"enum": ["global", "local"]},
                "weight_importance": {"enum": ["abs", "normed_abs"]},
            }
        ),
    }
)

_ELASTIC_DIMS = {
    "type": "array",
    "items": {"enum": ["width", "depth", "kernel"]},
    "uniqueItems": True,
}

_NAS_TRAINING = _obj(
    {
        "algorithm": {"enum": ["progressive_shrinking"]},
        "progressivity_of_elasticity": _ELASTIC_DIMS,
        "batchnorm_adaptation": _BN_ADAPT,
        "schedule": _obj(
            {
                "list_stage_descriptions": {
                    "type": "array",
                    "items": _obj(
                        {
                            "train_dims": _ELASTIC_DIMS,
                            "epochs": _COUNT,
                            "depth_indicator": _POSITIVE,
                            "width_indicator": _POSITIVE,
                            "reorg_weights": _BOOL,
                            "bn_adapt": _BOOL,
                            "init_lr": {"type": "number", "minimum": 0},
                            "epochs_lr": _COUNT,
                            "sample_rate": _POSITIVE,
                        }
                    ),
                }
            }
        ),
        "elasticity": _obj(
            {
                "available_elasticity_dims": _ELASTIC_DIMS,
                "ignored_scopes": _SCOPES,
                "target_scopes": _SCOPES,
                "width": _obj(
                    {
                        "min_width": _POSITIVE,
                        # old name of min_width, still used by NNCF's own example config
                        "min_out_channels": _POSITIVE,
                        "max_num_widths": {"type": "integer", "minimum": -1},
                        "width_step": _POSITIVE,
                        "width_multipliers": {
                            "type": "array",
                            "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        },
                        "filter_importance": {"enum": ["L1", "L2", "geometric_median", "external"]},
                        "external_importance_path": _STR,
                        "overwrite_groups": {"type": "array"},
                        "overwrite_groups_widths": {"type": "array"},
                        "add_dynamic_inputs": {"type": "array", "items": _STR},
                    }
                ),
                "depth": _obj(
                    {
                        "skipped_blocks": {
                            "type": "array",
                            "items": {
                                "anyOf": [
                                    {"type": "array", "items": _STR, "minItems": 2, "maxItems": 2},
                                    _STR,  # searchq: a module name such as "layer2.1"
                                ]
                            },
                        },
                        "min_block_size": _POSITIVE,
                        "max_block_size": _POSITIVE,
                        "hw_fused_ops": _BOOL,
                    }
                ),
                "kernel": _obj({"max_num_kernels": {"type": "integer", "minimum": -1}}),
            }
        ),
        "lr_schedule": _obj({"params": _obj({"base_lr": {"type": "number", "minimum": 0}})}),
        "train_steps": _POSITIVE,
        # searchq-only (searchq/elastic/spec.py): knowledge distillation (from the maximal
        # subnet in place, else the original net), sandwich max / min / random, subnets per step
        "distillation": _obj(
            {
                "type": {"enum": ["softmax", "mse", "none"]},
                "temperature": {"type": "number", "exclusiveMinimum": 0},
                "inplace": _BOOL,
                "distill_max": _BOOL,
            }
        ),
        "subnets_per_step": {"oneOf": [_POSITIVE, {"const": "auto"}]},
        "sandwich": _BOOL,
        "max_subnet_every": {"type": "integer", "minimum": 0},
    }
)

_NAS_SEARCH = _obj(
    {
        "algorithm": {"enum": ["NSGA2", "RNSGA2"]},
        "batchnorm_adaptation": _BN_ADAPT,
        "num_evals": _POSITIVE,
        "num_constraints": _COUNT,
        "population": _POSITIVE,
        "seed": _COUNT,
        "crossover_prob": {"type": "number", "minimum": 0, "maximum": 1},
        "crossover_eta": {"type": "number", "minimum": 0},
        "mutation_eta": {"type": "number", "minimum": 0},
        "mutation_prob": {"type": "number", "minimum": 0, "maximum": 1},
        "acc_delta": {"type": "number", "minimum": 0},
        "ref_acc": _NUM,
        "aspiration_points": {"type": "array"},
        "epsilon": {"type": "number", "minimum": 0},
        "weights": _NUM,
        "extreme_points_as_ref_points": _BOOL,
        "compression": {"type": ["object", "array"]},
    }
)

_INPUT_INFO = _obj(
    {
        "sample_size": {"type": "array", "items": _POSITIVE, "minItems": 1},
        "type": {"enum": ["float", "long"]},
        "filler": {"enum": ["ones", "zeros", "random"]},
        "keyword": {"type": "string", "minLength": 1},
    }
)

_ALGORITHM_ENTRY = {
    "type": "object",
    "required": ["algorithm"],
    "properties": {"algorithm": {"enum": list(ALL_ALGORITHMS)}},
    "allOf": [
        {
            "if": {"properties": {"algorithm": {"const": name}}, "required": ["algorithm"]},
            "then": {"$ref": f"#/$defs/{name}"},
        }
        for name in IMPLEMENTED_ALGORITHMS
    ],
}

NNCF_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "searchq view of an NNCF 2.x configuration file",
    "type": "object",
    "properties": {
        "input_info": _one_or_many("#/$defs/input_info"),
        "target_device": _STR,  # case-insensitive enum, checked with a suggestion in the specs
        "hw_config_type": _STR,
        "compression": _one_or_many("#/$defs/algorithm_entry"),
        "bootstrapNAS": _obj({"training": _NAS_TRAINING, "search": _NAS_SEARCH}),
        "log_dir": {"type": "string", "minLength": 1},
        "accuracy_aware_training": {"type": "object"},
        "compression_lr_multiplier": _NUM,
        "disable_shape_matching": _BOOL,
    },
    "$defs": {
        "input_info": _INPUT_INFO,
        "algorithm_entry": _ALGORITHM_ENTRY,
        "quantization": _QUANTIZATION,
        "magnitude_sparsity": _MAGNITUDE_SPARSITY,
        "range": _obj(_RANGE_PROPS),
        "range_per_layer": {
            "type": "object",
            "properties": {
                **_RANGE_PROPS,
                "target_scopes": _SCOPES,
                "ignored_scopes": _SCOPES,
                "target_quantizer_group": {"enum": ["activations", "weights"]},
            },
            "additionalProperties": False,
        },
    },
}
