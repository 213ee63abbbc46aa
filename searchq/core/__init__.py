"""The shared core every search algorithm uses: graph, quantizers, hardware rules, costs."""

from __future__ import annotations

from searchq.core.assignment import Assignment
from searchq.core.bn import adapt_batchnorm
from searchq.core.cost import CostModel, LatencyTable, bit_complexity_ratio, size_ratio
from searchq.core.evaluate import AccuracyEvaluator, CachedEvaluator, Evaluator, accuracy
from searchq.core.graph import ModelGraph, OpInfo
from searchq.core.hardware import HardwareSpec, list_presets, load_hardware
from searchq.core.insert import QuantizedModel
from searchq.core.quant import FakeQuantizer, QuantizerSpec, fake_quantize, quantize_weight
from searchq.core.ranges import RANGE_INIT_TYPES, make_observer
from searchq.core.schedules import make_schedule
from searchq.core.space import QuantPoint, QuantSpace
from searchq.core.sparsity import MagnitudeSparsifier

__all__ = [
    "RANGE_INIT_TYPES",
    "AccuracyEvaluator",
    "Assignment",
    "CachedEvaluator",
    "CostModel",
    "Evaluator",
    "FakeQuantizer",
    "HardwareSpec",
    "LatencyTable",
    "MagnitudeSparsifier",
    "ModelGraph",
    "OpInfo",
    "QuantPoint",
    "QuantSpace",
    "QuantizedModel",
    "QuantizerSpec",
    "accuracy",
    "adapt_batchnorm",
    "bit_complexity_ratio",
    "fake_quantize",
    "list_presets",
    "load_hardware",
    "make_observer",
    "make_schedule",
    "quantize_weight",
    "size_ratio",
]
