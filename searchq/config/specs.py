"""All config specs in one import: frozen dataclasses that validate in ``__post_init__``.

Each has ``from_dict(data, *, path=())`` (NNCF layout in, defaults filled) and ``to_dict()``
(resolved values out). Errors are :class:`~searchq.errors.ConfigError` naming the key.
"""

from __future__ import annotations

from searchq.config.spec_other import BootstrapNASSpec, MagnitudeSparsitySpec, UnsupportedAlgorithm
from searchq.config.spec_precision import (
    AutoqSpec,
    HawqSpec,
    ManualSpec,
    PrecisionSpec,
    precision_from_dict,
)
from searchq.config.spec_quantization import (
    BNAdaptSpec,
    InputInfo,
    QuantizationSpec,
    QuantizerConstraints,
    RangeInitSpec,
)

__all__ = [
    "AlgorithmSpec",
    "AutoqSpec",
    "BNAdaptSpec",
    "BootstrapNASSpec",
    "HawqSpec",
    "InputInfo",
    "MagnitudeSparsitySpec",
    "ManualSpec",
    "PrecisionSpec",
    "QuantizationSpec",
    "QuantizerConstraints",
    "RangeInitSpec",
    "UnsupportedAlgorithm",
    "precision_from_dict",
]

#: One entry of ``SearchqConfig.compression``.
AlgorithmSpec = QuantizationSpec | MagnitudeSparsitySpec | UnsupportedAlgorithm
