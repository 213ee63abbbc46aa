"""Config loading for searchq: NNCF 2.x JSON-with-comments files -> typed, immutable specs.

>>> from searchq.config import load_config
>>> cfg = load_config("resnet50_imagenet_mixed_int_hawq.json")   # doctest: +SKIP
>>> cfg.algorithm, cfg.quantization.precision.compression_ratio   # doctest: +SKIP
('hawq', 1.4)

Also here: NNCF scope matching (:func:`match_scopes`, :func:`nncf_scope_to_module`) and NNI
``config_list`` selectors (:func:`resolve_nni_config_list`).
"""

from __future__ import annotations

from searchq.config.config import SearchqConfig
from searchq.config.load import load_config
from searchq.config.loader import parse_json_with_comments
from searchq.config.nni import NNISelection, resolve_nni_config_list
from searchq.config.positions import SourceMap
from searchq.config.schema import NNCF_SCHEMA
from searchq.config.scopes import (
    MODEL_INPUT,
    NNCFAddress,
    ScopeMatch,
    match_scopes,
    nncf_scope_to_module,
)
from searchq.config.specs import (
    AlgorithmSpec,
    AutoqSpec,
    BNAdaptSpec,
    BootstrapNASSpec,
    HawqSpec,
    InputInfo,
    MagnitudeSparsitySpec,
    ManualSpec,
    PrecisionSpec,
    QuantizationSpec,
    QuantizerConstraints,
    RangeInitSpec,
    UnsupportedAlgorithm,
)
from searchq.config.warn import SearchqWarning

__all__ = [
    "MODEL_INPUT",
    "NNCF_SCHEMA",
    "AlgorithmSpec",
    "AutoqSpec",
    "BNAdaptSpec",
    "BootstrapNASSpec",
    "HawqSpec",
    "InputInfo",
    "MagnitudeSparsitySpec",
    "ManualSpec",
    "NNCFAddress",
    "NNISelection",
    "PrecisionSpec",
    "QuantizationSpec",
    "QuantizerConstraints",
    "RangeInitSpec",
    "ScopeMatch",
    "SearchqConfig",
    "SearchqWarning",
    "SourceMap",
    "UnsupportedAlgorithm",
    "load_config",
    "match_scopes",
    "nncf_scope_to_module",
    "parse_json_with_comments",
    "resolve_nni_config_list",
]
