"""HAWQ figures: traces with error bars, the Σ Ω–budget frontier, noise against trace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from searchq.report.plots import _plt

__all__ = ["frontier_figure", "noise_figure", "traces_figure"]


def traces_figure(names: Sequence[str], mean: np.ndarray, stderr: np.ndarray, title: str) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(names) + 2), 3.6))
    xs = np.arange(len(names))
    err = np.where(np.isfinite(stderr), stderr, 0.0)
    ax.bar(xs, np.maximum(mean, 0), yerr=err, color="#55A868", capsize=2, ecolor="#333333")
    ax.set_yscale("symlog", linthresh=max(float(np.abs(mean).max()) * 1e-3, 1e-12))
    ax.set_xticks(xs)
    ax.set_xticklabels([n.removesuffix(".weight") for n in names], rotation=75, ha="right",
                       fontsize=7)  # fmt: skip
    ax.set_ylabel("average Hessian trace (± s.e.)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def frontier_figure(
    curve: Sequence[tuple[float, float]],
    chosen: tuple[float, float],
    *,
    xlabel: str,
    others: Mapping[str, tuple[float, float]] | None = None,
) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    if curve:
        xs, ys = zip(*curve, strict=True)
        ax.step(xs, ys, where="post", color="#4C72B0", label="exact optimum (Pareto frontier)")
    for label, (x, y) in (others or {}).items():
        ax.plot([x], [y], "s", label=label)
    ax.plot([chosen[0]], [chosen[1]], "*", ms=14, color="#C44E52", label="chosen")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Σ Ω (trace × quantization noise)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def noise_figure(
    traces: Mapping[str, float],
    noise: Mapping[str, Mapping[int, float]],
    chosen: Mapping[str, int],
) -> Any:
    """Per layer: average trace against quantization noise at each bitwidth (chosen ringed)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    bits = sorted({b for by in noise.values() for b in by})
    for b in bits:
        pts = [(max(traces[q], 1e-30), by[b]) for q, by in noise.items() if b in by]
        if pts:
            ax.scatter(*zip(*pts, strict=True), s=14, label=f"{b} bits", alpha=0.7)
    sel = [(max(traces[q], 1e-30), noise[q][b]) for q, b in chosen.items() if q in noise]
    if sel:
        ax.scatter(*zip(*sel, strict=True), s=70, facecolors="none", edgecolors="k",
                   label="chosen")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("average Hessian trace")
    ax.set_ylabel("‖W − Q_b(W)‖²")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
