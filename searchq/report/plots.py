"""Figures shared by the algorithms (matplotlib, Agg backend, never shown on screen)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["bits_figure"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def bits_figure(rows: Sequence[dict[str, Any]], title: str = "bits per layer") -> Any:
    """Bars of weight bits and markers of input-activation bits per layer (execution order)."""
    plt = _plt()
    names = [r["name"] for r in rows]
    w = [r.get("w_bits") or 0 for r in rows]
    a = [r.get("a_bits") or 0 for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(rows) + 2), 3.6))
    xs = range(len(rows))
    ax.bar(xs, w, color="#4C72B0", label="weights")
    ax.plot(xs, a, "o", color="#DD8452", label="input activations")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=75, ha="right", fontsize=7)
    ax.set_ylabel("bits")
    ax.set_title(title)
    ax.set_ylim(0, max([*w, *a, 8]) + 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    return fig
