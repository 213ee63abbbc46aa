"""Supernet training figure: min / max subnet accuracy per epoch with stage boundaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from searchq.report.plots import _plt

__all__ = ["stages_figure"]


def stages_figure(history: Sequence[Mapping[str, Any]]) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    xs = list(range(1, len(history) + 1))
    ax.plot(xs, [r["max_accuracy"] for r in history], "o-", label="maximal subnet")
    ax.plot(xs, [r["min_accuracy"] for r in history], "s-", label="minimal subnet")
    previous = None
    for x, row in zip(xs, history, strict=True):
        if row["stage"] != previous:
            ax.axvline(x - 0.5, color="#999999", lw=0.8, ls="--")
            ax.text(
                x - 0.45,
                ax.get_ylim()[0],
                "+".join(d[0].upper() for d in row["train_dims"]),
                fontsize=7,
                va="bottom",
            )
            previous = row["stage"]
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy % (BN recalibrated)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
