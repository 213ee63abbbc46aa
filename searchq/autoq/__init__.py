"""AutoQ: a DDPG agent choosing bits quantizer by quantizer under a budget (HAQ-style).

>>> import searchq
>>> task = searchq.get_task("digits")
>>> result = searchq.autoq.search(task, ratio=0.15, episodes=60)  # doctest: +SKIP
"""

from __future__ import annotations

from searchq.autoq.ddpg import DDPG, Actor, Critic, DDPGConfig, ReplayBuffer
from searchq.autoq.env import StepPlan, bits_from_action, plan_steps
from searchq.autoq.search import search

__all__ = [
    "DDPG",
    "Actor",
    "Critic",
    "DDPGConfig",
    "ReplayBuffer",
    "StepPlan",
    "bits_from_action",
    "plan_steps",
    "search",
]
