"""``SearchqConfig``: a whole NNCF-style config file as typed, immutable specs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from searchq.config._common import (
    FrozenDict,
    KeyPath,
    check_choice,
    format_path,
    freeze,
    parse_path,
    short_repr,
    thaw,
)
from searchq.config.positions import SourceMap
from searchq.config.schema import (
    HW_CONFIG_TYPES,
    IMPLEMENTED_ALGORITHMS,
    KNOWN_ROOT_KEYS,
    TARGET_DEVICES,
)
from searchq.config.specs import (
    AlgorithmSpec,
    AutoqSpec,
    BootstrapNASSpec,
    HawqSpec,
    InputInfo,
    MagnitudeSparsitySpec,
    QuantizationSpec,
    UnsupportedAlgorithm,
)
from searchq.errors import ConfigError, NotSupportedError

__all__ = ["SearchqConfig", "config_from_document"]

HARDWARE_TARGETS = ("any", "cpu", "gpu", "npu", "trial")
_SUPPORTED = ", ".join((*IMPLEMENTED_ALGORITHMS, "bootstrapNAS"))


@dataclass(frozen=True)
class SearchqConfig:
    """A loaded config: NNCF sections as specs, the user's own root keys in ``extra``.

    ``target_device`` is searchq's hardware preset name (NNCF's ``VPU`` -> ``npu``, ``CPU_SPR`` ->
    ``cpu``, legacy ``hw_config_type`` honoured). ``source`` maps keys to file positions so that
    later stages can report errors at the right line with :meth:`error`.
    """

    input_info: tuple[InputInfo, ...] = ()
    target_device: str = "any"
    compression: tuple[AlgorithmSpec, ...] = ()
    bootstrapnas: BootstrapNASSpec | None = None
    log_dir: str | None = None
    extra: Mapping[str, Any] = field(default_factory=FrozenDict)
    source: SourceMap | None = field(default=None, compare=False, repr=False)
    path: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_info", tuple(self.input_info))
        if not all(isinstance(i, InputInfo) for i in self.input_info):
            raise ConfigError("expected InputInfo entries", key="input_info")
        check_choice("target_device", self.target_device, HARDWARE_TARGETS)
        object.__setattr__(self, "compression", tuple(self.compression))
        seen: set[str] = set()
        for index, spec in enumerate(self.compression):
            if not isinstance(
                spec, (QuantizationSpec, MagnitudeSparsitySpec, UnsupportedAlgorithm)
            ):
                raise ConfigError(
                    f"unexpected entry {short_repr(spec)}", key=f"compression[{index}]"
                )
            if spec.name in seen:
                # NNCF refuses this too (extract_algo_specific_config): which one wins is unclear.
                raise ConfigError(
                    f"algorithm {spec.name!r} appears twice; merge the two entries into one",
                    key=f"compression[{index}].algorithm",
                )
            seen.add(spec.name)
        if self.bootstrapnas is not None and not isinstance(self.bootstrapnas, BootstrapNASSpec):
            raise ConfigError(
                f"expected a BootstrapNASSpec, got {short_repr(self.bootstrapnas)}",
                key="bootstrapNAS",
            )
        if self.log_dir is not None and not (isinstance(self.log_dir, str) and self.log_dir):
            raise ConfigError(
                f"got {short_repr(self.log_dir)}; expected a directory path", key="log_dir"
            )
        if not isinstance(self.extra, Mapping):
            raise ConfigError(f"got {short_repr(self.extra)}; expected a mapping", key="extra")
        object.__setattr__(self, "extra", freeze(self.extra))

    # -- lookups ---------------------------------------------------------------------------------

    @property
    def quantization(self) -> QuantizationSpec | None:
        return next((s for s in self.compression if isinstance(s, QuantizationSpec)), None)

    @property
    def sparsity(self) -> MagnitudeSparsitySpec | None:
        return next((s for s in self.compression if isinstance(s, MagnitudeSparsitySpec)), None)

    @property
    def algorithm(self) -> str | None:
        """What ``searchq run --config FILE`` should run.

        The precision type (``hawq`` / ``autoq`` / ``manual``) if there is one; else ``nsga`` for
        a bootstrapNAS section with ``search`` (supernet training first if ``training`` is given),
        ``elastic`` for training only; else ``magnitude_sparsity`` or ``quantization``; else None.
        """
        quant = self.quantization
        if quant is not None and quant.precision is not None:
            if isinstance(quant.precision, HawqSpec):
                return "hawq"
            return "autoq" if isinstance(quant.precision, AutoqSpec) else "manual"
        if self.bootstrapnas is not None:
            return "nsga" if self.bootstrapnas.search else "elastic"
        if self.sparsity is not None:
            return "magnitude_sparsity"
        return "quantization" if quant is not None else None

    # -- errors ----------------------------------------------------------------------------------

    def error(self, path: KeyPath | str, message: str) -> ConfigError:
        """A ConfigError located at ``path`` (e.g. ``"compression.initializer.precision.bits"``)."""
        key = parse_path(path) if isinstance(path, str) else tuple(path)
        key = self._resolve_compression_path(key)
        if self.source is not None:
            return self.source.error(key, message)
        return ConfigError(message, key=format_path(key) or None, file=self.path)

    def _resolve_compression_path(self, key: KeyPath) -> KeyPath:
        # Later code names sections by algorithm ("compression.initializer...") without knowing
        # whether the file used the object or the list form; add the index when it is a list.
        if (
            len(key) < 2
            or key[0] != "compression"
            or isinstance(key[1], int)
            or self.source is None
        ):
            return key
        if ("compression", 0) not in self.source.offsets:
            return key
        for index, spec in enumerate(self.compression):
            if isinstance(spec, QuantizationSpec) and key[1] in QuantizationSpec.KEYS:
                return ("compression", index, *key[1:])
            if isinstance(spec, MagnitudeSparsitySpec) and key[1] in ("sparsity_init", "params"):
                return ("compression", index, *key[1:])
        return key

    def require_supported(self) -> None:
        """Raise NotSupportedError at the first algorithm searchq does not implement."""
        for spec in self.compression:
            if isinstance(spec, UnsupportedAlgorithm):
                implemented = f"searchq implements {_SUPPORTED}"
                message = f"not supported: {spec.name} ({implemented}); remove this entry"
                if self.source is not None:
                    raise self.source.error((*spec.path, "algorithm"), message, NotSupportedError)
                raise NotSupportedError(
                    message, key=format_path((*spec.path, "algorithm")), file=self.path
                )

    # -- output ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The resolved config (defaults filled) in NNCF layout; loads back to an equal config."""
        out: dict[str, Any] = {}
        if self.input_info:
            out["input_info"] = [i.to_dict() for i in self.input_info]
        out["target_device"] = self.target_device
        if self.compression or self.bootstrapnas is None:
            # kept even when empty: without it, a root key resembling 'compression' would be
            # reported as a misspelt section when the resolved config is loaded again
            out["compression"] = [s.to_dict() for s in self.compression]
        if self.bootstrapnas is not None:
            out["bootstrapNAS"] = self.bootstrapnas.to_dict()
        if self.log_dir is not None:
            out["log_dir"] = self.log_dir
        out.update(thaw(self.extra))
        return out


def _target_device(doc: Mapping[str, Any]) -> str:
    device = doc.get("target_device")
    legacy = doc.get("hw_config_type")
    resolved = None
    if device is not None:
        resolved = TARGET_DEVICES.get(device.lower())
        if resolved is None:
            allowed = ", ".join(d.upper() for d in TARGET_DEVICES)
            check_choice("target_device", device, allowed.split(", "))  # raises with a suggestion
        assert resolved is not None
    if legacy is not None:
        old = HW_CONFIG_TYPES.get(legacy.lower())
        if old is None:
            check_choice("hw_config_type", legacy, tuple(HW_CONFIG_TYPES))
        assert old is not None
        if resolved is not None and resolved not in ("any", old):
            raise ConfigError(
                f"{device!r} conflicts with hw_config_type {legacy!r}; keep only target_device",
                key="target_device",
            )
        resolved = resolved if resolved not in (None, "any") else old
    return resolved or "any"


def _algorithm_spec(entry: Mapping[str, Any], path: KeyPath) -> AlgorithmSpec:
    name = entry["algorithm"]
    if name == "quantization":
        return QuantizationSpec.from_dict(entry, path=path)
    if name == "magnitude_sparsity":
        return MagnitudeSparsitySpec.from_dict(entry, path=path)
    return UnsupportedAlgorithm(name, entry, path=path)


def config_from_document(
    doc: Mapping[str, Any], source: SourceMap | None, path: str | None
) -> SearchqConfig:
    """Build a SearchqConfig from a document that already passed :func:`validate_document`."""
    try:
        info = doc.get("input_info")
        infos: tuple[InputInfo, ...]
        if isinstance(info, Mapping):
            infos = (InputInfo.from_dict(info, path=("input_info",)),) if info else ()
        else:
            infos = tuple(
                InputInfo.from_dict(d, path=("input_info", i)) for i, d in enumerate(info or ())
            )
        section = doc.get("compression")
        if isinstance(section, Mapping):
            compression: tuple[AlgorithmSpec, ...] = (_algorithm_spec(section, ("compression",)),)
        else:
            compression = tuple(
                _algorithm_spec(e, ("compression", i)) for i, e in enumerate(section or ())
            )
        nas = doc.get("bootstrapNAS")
        return SearchqConfig(
            input_info=infos,
            target_device=_target_device(doc),
            compression=compression,
            bootstrapnas=BootstrapNASSpec.from_dict(nas, path=("bootstrapNAS",))
            if nas is not None
            else None,
            log_dir=doc.get("log_dir"),
            extra={k: v for k, v in doc.items() if k not in KNOWN_ROOT_KEYS},
            source=source,
            path=path,
        )
    except ConfigError as err:
        if err.file is not None or source is None:
            raise
        raise source.error(err.key or (), err.message, type(err)) from None
