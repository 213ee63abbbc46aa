"""AutoQ figures: reward per episode with the best so far."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from searchq.report.plots import _plt

__all__ = ["reward_figure"]


def reward_figure(rows: Sequence[Mapping[str, Any]]) -> Any:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    episodes = [int(r["episode"]) for r in rows]
    rewards = np.asarray([float(r["reward"]) for r in rows])
    warm = [int(r["episode"]) for r in rows if r["warmup"]]
    if warm:
        ax.axvspan(min(warm) - 0.5, max(warm) + 0.5, color="#DDDDDD", label="warm-up (random)")
    ax.plot(episodes, rewards, ".", color="#4C72B0", label="reward")
    ax.plot(episodes, np.maximum.accumulate(rewards), "-", color="#C44E52", label="best so far")
    ax.set_xlabel("episode")
    ax.set_ylabel("reward = 0.1 · (accuracy − FP32 accuracy)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
