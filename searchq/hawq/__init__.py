"""HAWQ: Hessian-aware mixed precision with an exact bit allocation.

>>> import searchq
>>> result = searchq.hawq.search(searchq.get_task("digits"), ratio=1.5)   # doctest: +SKIP
"""

from __future__ import annotations

from searchq.hawq.allocate import SELECTIONS, Allocation, allocate, frontier
from searchq.hawq.hutchinson import TraceEstimate, estimate_traces
from searchq.hawq.search import search
from searchq.hawq.sensitivity import quantization_noise, sensitivities

__all__ = [
    "SELECTIONS",
    "Allocation",
    "TraceEstimate",
    "allocate",
    "estimate_traces",
    "frontier",
    "quantization_noise",
    "search",
    "sensitivities",
]
