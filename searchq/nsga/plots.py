"""NSGA figures: every evaluation, the front and the choice; hypervolume vs evaluations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from searchq.report.plots import _plt

__all__ = ["pareto_figure", "progress_figure"]


def pareto_figure(core: Any, front: Sequence[Any], chosen: Any, *, bits: bool) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    xs = [e.cost for _, e in core.history]
    ys = [e.accuracy for _, e in core.history]
    ax.scatter(xs, ys, s=10, alpha=0.35, color="#8C8C8C", label="evaluated")
    if front:
        ax.step(
            [e.cost for _, e in front],
            [e.accuracy for _, e in front],
            where="post",
            color="#4C72B0",
            label="Pareto front",
        )
        ax.plot(
            [e.cost for _, e in front], [e.accuracy for _, e in front], "o", ms=4, color="#4C72B0"
        )
    ax.plot([chosen.cost], [chosen.accuracy], "*", ms=15, color="#C44E52", label="chosen")
    ax.set_xlabel("bit-ops ratio (1 = maximal subnet at INT8)" if bits else "MMACs")
    ax.set_ylabel("accuracy %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def progress_figure(rows: Sequence[Mapping[str, Any]], reference: tuple[float, float]) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    ax.plot([r["evaluations"] for r in rows], [r["hv"] for r in rows], "-", color="#55A868")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"hypervolume (ref. point {reference})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
