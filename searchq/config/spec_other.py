"""Specs of ``magnitude_sparsity``, the ``bootstrapNAS`` section and algorithms searchq lacks."""

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
    format_path,
    freeze,
    prefixed,
    short_repr,
    thaw,
)
from searchq.config.schema import UNUSED_KEYS
from searchq.config.spec_quantization import BNAdaptSpec
from searchq.config.warn import warn_once
from searchq.errors import ConfigError

__all__ = ["BootstrapNASSpec", "MagnitudeSparsitySpec", "UnsupportedAlgorithm"]

_SCHEDULE_KEYS = (
    "schedule", "sparsity_target", "sparsity_target_epoch", "sparsity_freeze_epoch", "power",
    "concave", "update_per_optimizer_step", "steps_per_epoch", "multistep_steps",
    "multistep_sparsity_levels", "patience", "sparsity_level_setting_mode", "weight_importance",
)  # fmt: skip


def _level(key: str, value: object) -> float:
    return check_number(key, value, low=0, high=1, high_open=True)


@dataclass(frozen=True)
class MagnitudeSparsitySpec:
    """Magnitude sparsity with NNCF's schedules (formulas: notes/nncf_reference.md §3).

    polynomial: s(e) = target − (target − init)·(1 − p)^power (concave) or
    init + (target − init)·p^power (convex), p = clip(e / sparsity_target_epoch, 0, 1);
    multistep: ``multistep_sparsity_levels[bisect_right(multistep_steps, e)]`` (one more level
    than steps; the last level is the target); masks freeze from ``sparsity_freeze_epoch`` on.
    """

    sparsity_init: float = 0.0
    schedule: str = "polynomial"
    sparsity_target: float = 0.5
    sparsity_target_epoch: int = 90
    sparsity_freeze_epoch: int = 100
    power: float = 0.9
    concave: bool = True
    update_per_optimizer_step: bool = False
    steps_per_epoch: int | None = None
    multistep_steps: tuple[int, ...] = (90,)
    multistep_sparsity_levels: tuple[float, ...] = (0.1, 0.5)
    patience: int = 1
    sparsity_level_setting_mode: str = "global"
    weight_importance: str = "normed_abs"
    bn_adaptation: BNAdaptSpec = BNAdaptSpec()
    ignored_scopes: tuple[str, ...] = ()
    target_scopes: tuple[str, ...] | None = None

    name = "magnitude_sparsity"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "sparsity_init", _level("sparsity_init", self.sparsity_init))
        check_choice(
            "params.schedule", self.schedule, ("polynomial", "exponential", "adaptive", "multistep")
        )
        set_(self, "sparsity_target", _level("params.sparsity_target", self.sparsity_target))
        for name in ("sparsity_target_epoch", "sparsity_freeze_epoch"):
            set_(self, name, check_int(f"params.{name}", getattr(self, name), low=0))
        set_(self, "power", check_number("params.power", self.power, low=0, low_open=True))
        check_bool("params.concave", self.concave)
        check_bool("params.update_per_optimizer_step", self.update_per_optimizer_step)
        if self.steps_per_epoch is not None:
            set_(
                self,
                "steps_per_epoch",
                check_int("params.steps_per_epoch", self.steps_per_epoch, low=1),
            )
        steps = self._sequence("multistep_steps")
        levels = self._sequence("multistep_sparsity_levels")
        set_(
            self,
            "multistep_steps",
            tuple(check_int("params.multistep_steps", s, low=0) for s in steps),
        )
        key = "params.multistep_sparsity_levels"
        set_(self, "multistep_sparsity_levels", tuple(_level(key, v) for v in levels))
        if self.schedule == "multistep":
            self._check_multistep()
        set_(self, "patience", check_int("params.patience", self.patience, low=1))
        check_choice(
            "params.sparsity_level_setting_mode",
            self.sparsity_level_setting_mode,
            ("global", "local"),
        )
        check_choice("params.weight_importance", self.weight_importance, ("abs", "normed_abs"))
        if not isinstance(self.bn_adaptation, BNAdaptSpec):
            raise ConfigError(
                f"expected a BNAdaptSpec, got {type(self.bn_adaptation).__name__}",
                key="bn_adaptation",
            )
        set_(self, "ignored_scopes", check_scopes("ignored_scopes", self.ignored_scopes))
        if self.target_scopes is not None:
            set_(self, "target_scopes", check_scopes("target_scopes", self.target_scopes))

    def _sequence(self, name: str) -> tuple[Any, ...]:
        value = getattr(self, name)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"got {short_repr(value)}; expected a list", key=f"params.{name}")
        return tuple(value)

    def _check_multistep(self) -> None:
        steps, levels = self.multistep_steps, self.multistep_sparsity_levels
        if len(levels) != len(steps) + 1:
            raise ConfigError(
                f"{len(levels)} levels for {len(steps)} steps; multistep needs one more level "
                "than steps (the first level applies before the first step)",
                key="params.multistep_sparsity_levels",
            )
        if any(a >= b for a, b in zip(steps, steps[1:], strict=False)):
            raise ConfigError(
                f"{list(steps)} is not strictly increasing; sort the epochs",
                key="params.multistep_steps",
            )

    @property
    def target_level(self) -> float:
        """The final sparsity level (multistep: its last level, like NNCF)."""
        return (
            self.multistep_sparsity_levels[-1]
            if self.schedule == "multistep"
            else self.sparsity_target
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: KeyPath = ()) -> MagnitudeSparsitySpec:
        keys = (
            "algorithm",
            "sparsity_init",
            "params",
            "initializer",
            "ignored_scopes",
            "target_scopes",
        )
        with prefixed(path):
            values = dict(check_keys(data, keys, ignored=UNUSED_KEYS[("magnitude_sparsity",)]))
            values.pop("algorithm", None)
        with prefixed((*path, "initializer")):
            init = check_keys(values.pop("initializer", {}), ("batchnorm_adaptation",))
        with prefixed((*path, "params")):
            values.update(check_keys(values.pop("params", {}), _SCHEDULE_KEYS))
        if "batchnorm_adaptation" in init:
            bn_path = (*path, "initializer", "batchnorm_adaptation")
            values["bn_adaptation"] = BNAdaptSpec.from_dict(
                init["batchnorm_adaptation"], path=bn_path
            )
        with prefixed(path):
            return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        params = {k: getattr(self, k) for k in _SCHEDULE_KEYS}
        params = {
            k: list(v) if isinstance(v, tuple) else v for k, v in params.items() if v is not None
        }
        out: dict[str, Any] = {
            "algorithm": "magnitude_sparsity",
            "sparsity_init": self.sparsity_init,
            "params": params,
            "initializer": {"batchnorm_adaptation": self.bn_adaptation.to_dict()},
            "ignored_scopes": list(self.ignored_scopes),
        }
        if self.target_scopes is not None:
            out["target_scopes"] = list(self.target_scopes)
        return out


@dataclass(frozen=True)
class BootstrapNASSpec:
    """NNCF's ``bootstrapNAS`` section, kept as immutable mappings (checked by the schema).

    ``elasticity.width.min_out_channels`` (the pre-2.x name NNCF's own example still uses and
    current NNCF silently ignores) is read as ``min_width`` with a warning.
    """

    training: Mapping[str, Any] = field(default_factory=FrozenDict)
    search: Mapping[str, Any] = field(default_factory=FrozenDict)

    name = "bootstrapNAS"

    def __post_init__(self) -> None:
        for part in ("training", "search"):
            value = getattr(self, part)
            if not isinstance(value, Mapping):
                raise ConfigError(f"got {short_repr(value)}; expected an object", key=part)
            object.__setattr__(self, part, freeze(value))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: KeyPath = ()) -> BootstrapNASSpec:
        with prefixed(path):
            values = dict(check_keys(data, ("training", "search")))
            training = thaw(values.get("training", {}))
            width = (
                training.get("elasticity", {}).get("width") if isinstance(training, dict) else None
            )
            if isinstance(width, dict) and "min_out_channels" in width:
                old = width.pop("min_out_channels")
                warn_once(
                    format_path((*path, "training", "elasticity", "width", "min_out_channels")),
                    "old name of 'min_width'; read as min_width (NNCF 2.x ignores it) — rename it",
                )
                width.setdefault("min_width", old)
            return cls(training=training, search=values.get("search", {}))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.training:
            out["training"] = thaw(self.training)
        if self.search:
            out["search"] = thaw(self.search)
        return out


@dataclass(frozen=True)
class UnsupportedAlgorithm:
    """An NNCF algorithm searchq loads but cannot run (``require_supported()`` raises for it)."""

    name: str
    config: Mapping[str, Any] = field(default_factory=FrozenDict)
    path: KeyPath = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(
                f"got {short_repr(self.name)}; expected an algorithm name", key="algorithm"
            )
        object.__setattr__(self, "config", freeze(self.config))
        object.__setattr__(self, "path", tuple(self.path))

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.name,
            **{k: v for k, v in thaw(self.config).items() if k != "algorithm"},
        }
