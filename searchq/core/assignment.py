"""Assignment: what every search algorithm proposes and the shared core applies.

Bits per weight quantizer (``<module>.weight``) and per input-activation quantizer
(``<first consumer>.input``), plus optional subnet dimensions and sparsity levels. Frozen,
hashable through :meth:`Assignment.key`, and JSON round-trippable with a ``schema_version``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from searchq._frozen import freeze, thaw
from searchq._io import read_json_file
from searchq.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from searchq.core.insert import QuantizedModel

__all__ = ["SCHEMA_VERSION", "Assignment"]

SCHEMA_VERSION = 1


def _check_bits(kind: str, bits: Mapping[str, Any]) -> dict[str, int]:
    out = {}
    for name, b in bits.items():
        if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 32:
            raise ConfigError(
                f"bits of {name!r} is {b!r}; use an integer number of bits (2..16 quantized, "
                "32 for float)",
                key=f"{kind}.{name}",
            )
        out[str(name)] = int(b)
    return out


@dataclass(frozen=True)
class Assignment:
    """Bits per quantizer and optional subnet / sparsity. Use :meth:`from_dict` to load JSON."""

    weights: Mapping[str, int] = field(default_factory=dict)
    activations: Mapping[str, int] = field(default_factory=dict)
    subnet: Mapping[str, Any] | None = None
    sparsity: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", MappingProxyType(_check_bits("weights", self.weights)))
        object.__setattr__(
            self, "activations", MappingProxyType(_check_bits("activations", self.activations))
        )
        if self.subnet is not None:
            object.__setattr__(self, "subnet", freeze(self.subnet))
        if self.sparsity is not None:
            for name, level in self.sparsity.items():
                if not isinstance(level, (int, float)) or not 0.0 <= float(level) < 1.0:
                    raise ConfigError(
                        f"sparsity level of {name!r} is {level!r}; use a fraction in [0, 1)",
                        key=f"sparsity.{name}",
                    )
            object.__setattr__(
                self, "sparsity", MappingProxyType({k: float(v) for k, v in self.sparsity.items()})
            )

    # -- identity -------------------------------------------------------------------------
    def key(self) -> tuple:
        """A hashable, order-independent identity (for evaluation caches)."""
        return (
            tuple(sorted(self.weights.items())),
            tuple(sorted(self.activations.items())),
            json.dumps(thaw(self.subnet), sort_keys=True) if self.subnet is not None else None,
            tuple(sorted(self.sparsity.items())) if self.sparsity is not None else None,
        )

    def __hash__(self) -> int:
        return hash(self.key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Assignment) and self.key() == other.key()

    def replace(self, **changes: Any) -> Assignment:
        data: dict[str, Any] = {
            "weights": dict(self.weights),
            "activations": dict(self.activations),
            "subnet": self.subnet,
            "sparsity": self.sparsity,
        }
        data.update(changes)
        return Assignment(**data)

    @property
    def bits(self) -> dict[str, int]:
        """All quantizers' bits in one mapping (weights first)."""
        return {**self.weights, **self.activations}

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "weights": dict(self.weights),
            "activations": dict(self.activations),
        }
        if self.subnet is not None:
            d["subnet"] = thaw(self.subnet)
        if self.sparsity is not None:
            d["sparsity"] = dict(self.sparsity)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str | None = None) -> Assignment:
        """Load from :meth:`to_dict` output, a ``result.json`` or a plain ``{qname: bits}``."""
        if not isinstance(d, Mapping):
            raise ConfigError(
                f"an assignment must be a JSON object, got {type(d).__name__}", file=source
            )
        if "assignment" in d and isinstance(d["assignment"], Mapping):  # a whole result.json
            d = d["assignment"]
        version = d.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise CheckpointError(
                f"{source or 'assignment'}: schema_version {version} is not supported "
                f"(this searchq reads {SCHEMA_VERSION}); re-run the search with this version"
            )
        known = {"schema_version", "weights", "activations", "subnet", "sparsity"}
        if not (set(d) & {"weights", "activations", "subnet", "sparsity"}):
            # plain {qname: bits}: split by suffix
            weights = {
                k: v for k, v in d.items() if k != "schema_version" and k.endswith(".weight")
            }
            acts = {k: v for k, v in d.items() if k != "schema_version" and k.endswith(".input")}
            other = sorted(set(d) - set(weights) - set(acts) - {"schema_version"})
            if other:
                raise ConfigError(
                    f"keys {other[:3]} are neither '<module>.weight' nor '<module>.input' "
                    "quantizer names; see `searchq show` of a run for the names",
                    file=source,
                )
            return cls(weights=weights, activations=acts)
        extra = sorted(set(d) - known)
        if extra:
            raise ConfigError(
                f"unknown keys {extra}; an assignment has {sorted(known)}", file=source
            )
        for part in ("weights", "activations"):
            if part in d and not isinstance(d[part], Mapping):
                raise ConfigError("must map quantizer names to bits", key=part, file=source)
        return cls(
            weights=d.get("weights", {}),
            activations=d.get("activations", {}),
            subnet=d.get("subnet"),
            sparsity=d.get("sparsity"),
        )

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> Assignment:
        return cls.from_dict(read_json_file(path, what="assignment"), source=str(path))

    # -- application ----------------------------------------------------------------------
    def apply(self, qmodel: QuantizedModel) -> None:
        """Set these bits on the quantizers of ``qmodel`` in place (no copy)."""
        qmodel.set_bits(self)
