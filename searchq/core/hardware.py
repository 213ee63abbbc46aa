"""Hardware bitwidth rules as plain data (the presets live in ``core/hw/*.json``).

A preset says, per op type (``conv``, ``depthwise_conv``, ``linear``), which quantizer
configurations its weights and its input activations may use: bits, modes (symmetric /
asymmetric) and granularity (per-channel / per-tensor). The presets follow what NNCF 2.19 ships
(``nncf/common/hardware/configs/{cpu,gpu,npu}.json``) plus a ``trial`` preset that allows
anything, so the user's ``bits`` list decides.

Rules are looked up here; checking an assignment against them needs the model's quantizer
points and lives in :mod:`searchq.core.space`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from searchq.errors import ConfigError

__all__ = ["HW_OP_TYPES", "HardwareSpec", "OpRules", "QuantOption", "list_presets", "load_hardware"]

HW_OP_TYPES = ("conv", "depthwise_conv", "linear")
QUANT_KINDS = ("weights", "activations")
MODES = ("symmetric", "asymmetric")
MIN_BITS, MAX_BITS = 2, 16
SCHEMA_VERSION = 1
_PRESET_DIR = Path(__file__).with_name("hw")


@dataclass(frozen=True)
class QuantOption:
    """One legal quantizer configuration family: any of ``bits`` × ``modes`` × granularity."""

    bits: tuple[int, ...]
    modes: tuple[str, ...] = MODES
    per_channel: tuple[bool, ...] = (True, False)
    narrow_range: bool = False
    nncf: str | None = None  # the NNCF quantizer-config name this mirrors (documentation only)

    def __post_init__(self) -> None:
        if not self.bits or any(not MIN_BITS <= b <= MAX_BITS for b in self.bits):
            raise ConfigError(
                f"bits {list(self.bits)} must be integers in {MIN_BITS}..{MAX_BITS}", key="bits"
            )
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ConfigError(f"mode {bad} is not one of {list(MODES)}", key="modes")

    def allows(self, bits: int, mode: str | None = None, per_channel: bool | None = None) -> bool:
        return (
            bits in self.bits
            and (mode is None or mode in self.modes)
            and (per_channel is None or per_channel in self.per_channel)
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QuantOption:
        bits = d["bits"]
        return cls(
            bits=tuple(bits) if isinstance(bits, (list, tuple)) else (int(bits),),
            modes=tuple(d.get("modes", MODES)),
            per_channel=tuple(d.get("per_channel", (True, False))),
            narrow_range=bool(d.get("narrow_range", False)),
            nncf=d.get("nncf"),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "bits": list(self.bits),
            "modes": list(self.modes),
            "per_channel": list(self.per_channel),
        }
        if self.narrow_range:
            d["narrow_range"] = True
        if self.nncf:
            d["nncf"] = self.nncf
        return d


@dataclass(frozen=True)
class OpRules:
    """Legal configurations of the weight and the input-activation quantizers of one op type."""

    weights: tuple[QuantOption, ...]
    activations: tuple[QuantOption, ...]

    def options(self, kind: str) -> tuple[QuantOption, ...]:
        if kind not in QUANT_KINDS:
            raise ValueError(f"kind {kind!r} is not one of {QUANT_KINDS}")
        return self.weights if kind == "weights" else self.activations

    def bits(self, kind: str, mode: str | None = None, per_channel: bool | None = None) -> tuple:
        found: set[int] = set()
        for opt in self.options(kind):
            if (mode is None or mode in opt.modes) and (
                per_channel is None or per_channel in opt.per_channel
            ):
                found.update(opt.bits)
        return tuple(sorted(found))

    def narrow_range(self, kind: str, bits: int, mode: str) -> bool:
        """Whether the first option allowing (bits, mode) asks for the narrow signed range."""
        for opt in self.options(kind):
            if opt.allows(bits, mode):
                return opt.narrow_range
        return False


@dataclass(frozen=True)
class HardwareSpec:
    """Bitwidth rules of one target (``cpu``, ``gpu``, ``npu``, ``trial`` or a user file)."""

    name: str
    ops: Mapping[str, OpRules]
    description: str = ""
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        missing = [t for t in HW_OP_TYPES if t not in self.ops]
        if missing:
            raise ConfigError(
                f"hardware preset {self.name!r} lacks rules for op types {missing}; "
                f"every preset must define {list(HW_OP_TYPES)}",
                key="ops",
                file=self.source,
            )
        object.__setattr__(self, "ops", MappingProxyType(dict(self.ops)))

    def rules(self, op_type: str) -> OpRules:
        try:
            return self.ops[op_type]
        except KeyError:
            raise ConfigError(
                f"op type {op_type!r} is not one of {list(self.ops)}", key="op_type"
            ) from None

    def allowed_bits(
        self,
        op_type: str,
        kind: str,
        *,
        mode: str | None = None,
        per_channel: bool | None = None,
    ) -> tuple[int, ...]:
        return self.rules(op_type).bits(kind, mode, per_channel)

    def all_bits(self) -> tuple[int, ...]:
        out: set[int] = set()
        for r in self.ops.values():
            for kind in QUANT_KINDS:
                out.update(r.bits(kind))
        return tuple(sorted(out))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str | None = None) -> HardwareSpec:
        version = d.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"hardware file schema_version {version} is not supported (expected "
                f"{SCHEMA_VERSION}); regenerate it with `searchq hw PRESET --json`",
                key="schema_version",
                file=source,
            )
        try:
            ops = {
                t: OpRules(
                    weights=tuple(QuantOption.from_dict(o) for o in r["weights"]),
                    activations=tuple(QuantOption.from_dict(o) for o in r["activations"]),
                )
                for t, r in d["ops"].items()
            }
        except (KeyError, TypeError) as exc:
            raise ConfigError(
                f"malformed hardware rules ({type(exc).__name__}: {exc}); each op type needs "
                "'weights' and 'activations' lists of {bits, modes, per_channel}",
                key="ops",
                file=source,
            ) from None
        return cls(
            name=str(d.get("name", "custom")),
            ops=ops,
            description=str(d.get("description", "")),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "description": self.description,
            "ops": {
                t: {
                    "weights": [o.to_dict() for o in r.weights],
                    "activations": [o.to_dict() for o in r.activations],
                }
                for t, r in self.ops.items()
            },
        }


# NNCF's target_device values and the preset each one means.
_ALIASES = {"any": "cpu", "cpu_spr": "cpu", "vpu": "npu", "trial": "trial"}


def list_presets() -> list[str]:
    return sorted(p.stem for p in _PRESET_DIR.glob("*.json"))


def load_hardware(name_or_path: str | Path) -> HardwareSpec:
    """Load a preset by name (``cpu``, ``gpu``, ``npu``, ``trial``, NNCF aliases) or a JSON file."""
    if isinstance(name_or_path, HardwareSpec):
        return name_or_path
    text = str(name_or_path)
    key = _ALIASES.get(text.lower(), text.lower())
    path = _PRESET_DIR / f"{key}.json"
    if not path.exists():
        path = Path(text)
        if path.suffix != ".json" or not path.exists():
            raise ConfigError(
                f"hardware {text!r} is neither a preset {list_presets()} nor an existing .json "
                "file; pass --hw cpu|gpu|npu|trial or a path",
                key="hw",
            )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read hardware file: {exc}", key="hw", file=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("hardware file must hold a JSON object", key="hw", file=str(path))
    return HardwareSpec.from_dict(data, source=str(path))
