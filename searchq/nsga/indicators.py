"""Search progress: the non-dominated front and its hypervolume after every batch of
evaluations, against a fixed reference point recorded with the result.

Objectives for the indicator: f1 = −accuracy / 100 ∈ [−1, 0] and f2 = cost / cost of the
maximal subnet (≈ [0, 1]); reference point (0, 1.05), so any subnet with positive accuracy and
cost below 1.05× the maximal counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from searchq.nsga.problem import Evaluation, SubnetProblemCore
from searchq.runner import Run

__all__ = ["ProgressTracker", "hypervolume", "non_dominated"]

REFERENCE = (0.0, 1.05)


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows no other row dominates (minimisation in every column)."""
    n = len(points)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(points <= points[i], axis=1) & np.any(points < points[i], axis=1)
        if dominated.any():
            keep[i] = False
    return keep


def hypervolume(points: np.ndarray, reference: tuple[float, float] = REFERENCE) -> float:
    """Hypervolume of 2-D minimisation points (pymoo's indicator)."""
    from pymoo.indicators.hv import HV

    inside = points[np.all(points < np.asarray(reference), axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(HV(ref_point=np.asarray(reference))(inside))


class ProgressTracker:
    def __init__(self, rec: Run, core: SubnetProblemCore) -> None:
        self.rec, self.core = rec, core
        self.rows: list[dict[str, Any]] = []
        self.reference = REFERENCE
        self._cost_scale = self._scale()

    def _scale(self) -> float:
        if self.core.qmodel is not None:
            return 1.0  # bit-ops ratios are already relative to the maximal subnet at INT8
        return self.core.max_macs / 1e6

    def points(self) -> np.ndarray:
        return np.asarray(
            [[-e.accuracy / 100.0, e.cost / self._cost_scale] for _, e in self.core.history]
        ).reshape(-1, 2)

    def front(self) -> list[tuple[np.ndarray, Evaluation]]:
        pts = self.points()
        if len(pts) == 0:
            return []
        mask = non_dominated(pts)
        seen, out = set(), []
        for keep, item in zip(mask, self.core.history, strict=True):
            key = (item[1].accuracy, item[1].cost)
            if keep and key not in seen:
                seen.add(key)
                out.append(item)
        return sorted(out, key=lambda t: t[1].cost)

    def update(self) -> None:
        pts = self.points()
        if len(pts) == 0:
            return
        hv = hypervolume(pts[non_dominated(pts)], self.reference)
        best = max(e.accuracy for _, e in self.core.history)
        n = len(self.core.history)
        row = {"evaluations": n, "hv": hv, "best_accuracy": best, "front_size": len(self.front())}
        self.rows.append(row)
        self.rec.scalar("search/hv", hv, n)
        self.rec.scalar("search/best_acc", best, n)
        self.rec.scalar("search/front_size", row["front_size"], n)
