"""Specs of the model inputs and of NNCF's ``algorithm: "quantization"`` section."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from searchq.config._common import (
    FrozenDict,
    KeyPath,
    check_bool,
    check_choice,
    check_int,
    check_keys,
    check_number,
    check_scopes,
    freeze,
    prefixed,
    short_repr,
    thaw,
)
from searchq.config.schema import RANGE_INIT_TYPES, UNUSED_KEYS
from searchq.config.spec_precision import PrecisionSpec, precision_from_dict
from searchq.errors import ConfigError

__all__ = ["BNAdaptSpec", "InputInfo", "QuantizationSpec", "QuantizerConstraints", "RangeInitSpec"]


@dataclass(frozen=True)
class InputInfo:
    """One model input: shape with batch dimension, dtype ("float" | "long"), filler, keyword."""

    sample_size: tuple[int, ...]
    type: str = "float"
    filler: str = "ones"
    keyword: str | None = None

    def __post_init__(self) -> None:
        size = self.sample_size
        if not isinstance(size, (list, tuple)) or not size:
            raise ConfigError(
                f"got {short_repr(size)}; expected a shape like [1, 3, 224, 224]", key="sample_size"
            )
        object.__setattr__(
            self, "sample_size", tuple(check_int("sample_size", d, low=1) for d in size)
        )
        check_choice("type", self.type, ("float", "long"))
        check_choice("filler", self.filler, ("ones", "zeros", "random"))
        if self.keyword is not None and not (isinstance(self.keyword, str) and self.keyword):
            raise ConfigError(
                f"got {short_repr(self.keyword)}; expected a forward() argument name", key="keyword"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: KeyPath = ()) -> InputInfo:
        with prefixed(path):
            values = check_keys(data, ("sample_size", "type", "filler", "keyword"))
            if "sample_size" not in values:
                raise ConfigError(
                    "missing key 'sample_size'; add the input shape, e.g. "
                    '"sample_size": [1, 3, 224, 224]'
                )
            return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sample_size": list(self.sample_size),
            "type": self.type,
            "filler": self.filler,
        }
        if self.keyword is not None:
            out["keyword"] = self.keyword
        return out


@dataclass(frozen=True)
class QuantizerConstraints:
    """User constraints for all weight (or all activation) quantizers; None = not set by the user
    (the hardware preset decides)."""

    mode: str | None = None
    bits: int | None = None
    signed: bool | None = None
    per_channel: bool | None = None
    ignored_scopes: tuple[str, ...] = ()
    target_scopes: tuple[str, ...] | None = None

    KEYS = ("mode", "bits", "signed", "per_channel", "ignored_scopes", "target_scopes")

    def __post_init__(self) -> None:
        if self.mode is not None:
            check_choice("mode", self.mode, ("symmetric", "asymmetric"))
        if self.bits is not None:
            object.__setattr__(self, "bits", check_int("bits", self.bits, low=2, high=16))
        for name in ("signed", "per_channel"):
            if getattr(self, name) is not None:
                check_bool(name, getattr(self, name))
        object.__setattr__(
            self, "ignored_scopes", check_scopes("ignored_scopes", self.ignored_scopes)
        )
        if self.target_scopes is not None:
            object.__setattr__(
                self, "target_scopes", check_scopes("target_scopes", self.target_scopes)
            )

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, path: KeyPath = (), ignored: tuple[str, ...] = ()
    ) -> QuantizerConstraints:
        with prefixed(path):
            return cls(**check_keys(data, cls.KEYS, ignored=ignored))

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.KEYS[:4] if getattr(self, k) is not None}
        if self.ignored_scopes:
            out["ignored_scopes"] = list(self.ignored_scopes)
        if self.target_scopes is not None:
            out["target_scopes"] = list(self.target_scopes)
        return out


@dataclass(frozen=True)
class RangeInitSpec:
    """Quantizer range initialisation (see notes/nncf_reference.md §2 for each ``type``).

    NNCF's default type is ``mixed_min_max`` (schema and ``RangeInitConfig.from_dict`` agree);
    ``num_init_samples=0`` disables range init. Scopes / ``target_quantizer_group`` are only for
    the per-layer (list) form.
    """

    type: str = "mixed_min_max"
    num_init_samples: int = 256
    min_percentile: float = 0.1
    max_percentile: float = 99.9
    target_scopes: tuple[str, ...] | None = None
    ignored_scopes: tuple[str, ...] = ()
    target_quantizer_group: str | None = None

    def __post_init__(self) -> None:
        check_choice("type", self.type, RANGE_INIT_TYPES)
        object.__setattr__(
            self, "num_init_samples", check_int("num_init_samples", self.num_init_samples, low=0)
        )
        low = check_number("params.min_percentile", self.min_percentile, low=0, high=100)
        high = check_number("params.max_percentile", self.max_percentile, low=0, high=100)
        if low >= high:
            raise ConfigError(
                f"min_percentile {low} must be below max_percentile {high}; swap or fix them",
                key="params",
            )
        object.__setattr__(self, "min_percentile", low)
        object.__setattr__(self, "max_percentile", high)
        object.__setattr__(
            self, "ignored_scopes", check_scopes("ignored_scopes", self.ignored_scopes)
        )
        if self.target_scopes is not None:
            object.__setattr__(
                self, "target_scopes", check_scopes("target_scopes", self.target_scopes)
            )
        if self.target_quantizer_group is not None:
            check_choice(
                "target_quantizer_group", self.target_quantizer_group, ("activations", "weights")
            )

    @property
    def is_per_layer(self) -> bool:
        return (
            self.target_scopes is not None
            or bool(self.ignored_scopes)
            or self.target_quantizer_group is not None
        )

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, path: KeyPath = (), per_layer: bool = False
    ) -> RangeInitSpec:
        keys: tuple[str, ...] = ("type", "num_init_samples", "params")
        if per_layer:
            keys += ("target_scopes", "ignored_scopes", "target_quantizer_group")
        with prefixed(path):
            values = dict(check_keys(data, keys))
            params = values.pop("params", {})
        with prefixed((*path, "params")):
            values.update(check_keys(params, ("min_percentile", "max_percentile")))
        with prefixed(path):
            spec = cls(**values)
            if per_layer and spec.target_scopes is None and not spec.ignored_scopes:
                raise ConfigError(
                    "a per-layer range entry needs 'target_scopes' or 'ignored_scopes'; add one"
                )
            return spec

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "num_init_samples": self.num_init_samples,
            "params": {
                "min_percentile": self.min_percentile,
                "max_percentile": self.max_percentile,
            },
        }
        if self.target_scopes is not None:
            out["target_scopes"] = list(self.target_scopes)
        if self.ignored_scopes:
            out["ignored_scopes"] = list(self.ignored_scopes)
        if self.target_quantizer_group is not None:
            out["target_quantizer_group"] = self.target_quantizer_group
        return out


@dataclass(frozen=True)
class BNAdaptSpec:
    """BatchNorm statistics re-estimation after quantization; 0 samples disables it."""

    num_bn_adaptation_samples: int = 2000

    def __post_init__(self) -> None:
        value = check_int("num_bn_adaptation_samples", self.num_bn_adaptation_samples, low=0)
        object.__setattr__(self, "num_bn_adaptation_samples", value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: KeyPath = ()) -> BNAdaptSpec:
        with prefixed(path):
            return cls(**check_keys(data, ("num_bn_adaptation_samples",)))

    def to_dict(self) -> dict[str, Any]:
        return {"num_bn_adaptation_samples": self.num_bn_adaptation_samples}


@dataclass(frozen=True)
class QuantizationSpec:
    """NNCF's quantization section as searchq uses it.

    ``range_init`` applies to every quantizer that no entry of ``range_init_overrides`` (NNCF's
    per-layer list form) selects. ``params`` keeps NNCF's staged-quantization schedule keys.
    """

    weights: QuantizerConstraints = QuantizerConstraints()
    activations: QuantizerConstraints = QuantizerConstraints()
    range_init: RangeInitSpec = RangeInitSpec()
    range_init_overrides: tuple[RangeInitSpec, ...] = ()
    bn_adaptation: BNAdaptSpec = BNAdaptSpec()
    precision: PrecisionSpec | None = None
    ignored_scopes: tuple[str, ...] = ()
    target_scopes: tuple[str, ...] | None = None
    quantize_inputs: bool = True
    validate_scopes: bool = True
    params: Mapping[str, Any] = field(default_factory=FrozenDict)

    name = "quantization"
    KEYS = (
        "algorithm", "initializer", "weights", "activations", "ignored_scopes", "target_scopes",
        "quantize_inputs", "validate_scopes", "params",
    )  # fmt: skip

    def __post_init__(self) -> None:
        expected = {
            "weights": QuantizerConstraints,
            "activations": QuantizerConstraints,
            "range_init": RangeInitSpec,
            "bn_adaptation": BNAdaptSpec,
        }
        for name, cls in expected.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(
                    f"expected a {cls.__name__}, got {type(getattr(self, name)).__name__}", key=name
                )
        object.__setattr__(self, "range_init_overrides", tuple(self.range_init_overrides))
        object.__setattr__(
            self, "ignored_scopes", check_scopes("ignored_scopes", self.ignored_scopes)
        )
        if self.target_scopes is not None:
            object.__setattr__(
                self, "target_scopes", check_scopes("target_scopes", self.target_scopes)
            )
        check_bool("quantize_inputs", self.quantize_inputs)
        check_bool("validate_scopes", self.validate_scopes)
        if not isinstance(self.params, Mapping):
            raise ConfigError(f"got {short_repr(self.params)}; expected an object", key="params")
        object.__setattr__(self, "params", freeze(self.params))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: KeyPath = ()) -> QuantizationSpec:
        ipath = (*path, "initializer")
        with prefixed(path):
            values = dict(check_keys(data, cls.KEYS, ignored=UNUSED_KEYS[("quantization",)]))
            values.pop("algorithm", None)
        with prefixed(ipath):
            init = check_keys(
                values.pop("initializer", {}), ("range", "batchnorm_adaptation", "precision")
            )
        kwargs: dict[str, Any] = {}
        for group in ("weights", "activations"):
            if group in values:
                skip = UNUSED_KEYS[("quantization", group)]
                kwargs[group] = QuantizerConstraints.from_dict(
                    values.pop(group), path=(*path, group), ignored=skip
                )
        rng = init.get("range")
        if isinstance(rng, (list, tuple)):
            kwargs["range_init_overrides"] = tuple(
                RangeInitSpec.from_dict(r, path=(*ipath, "range", i), per_layer=True)
                for i, r in enumerate(rng)
            )
        elif rng is not None:
            kwargs["range_init"] = RangeInitSpec.from_dict(rng, path=(*ipath, "range"))
        if "batchnorm_adaptation" in init:
            kwargs["bn_adaptation"] = BNAdaptSpec.from_dict(
                init["batchnorm_adaptation"], path=(*ipath, "batchnorm_adaptation")
            )
        if "precision" in init:
            kwargs["precision"] = precision_from_dict(init["precision"], path=(*ipath, "precision"))
        with prefixed(path):
            return cls(**values, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        init: dict[str, Any] = {
            "range": [r.to_dict() for r in self.range_init_overrides] or self.range_init.to_dict(),
            "batchnorm_adaptation": self.bn_adaptation.to_dict(),
        }
        if self.precision is not None:
            init["precision"] = self.precision.to_dict()
        out: dict[str, Any] = {
            "algorithm": "quantization",
            "initializer": init,
            "weights": self.weights.to_dict(),
            "activations": self.activations.to_dict(),
            "ignored_scopes": list(self.ignored_scopes),
            "quantize_inputs": self.quantize_inputs,
            "validate_scopes": self.validate_scopes,
            "params": thaw(self.params),
        }
        if self.target_scopes is not None:
            out["target_scopes"] = list(self.target_scopes)
        return out
