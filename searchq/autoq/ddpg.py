"""DDPG (Lillicrap et al. 2016) as HAQ (Wang et al., CVPR 2019) uses it for bit allocation.

Importable pieces: :class:`Actor`, :class:`Critic`, :class:`ReplayBuffer` and :class:`DDPG`
(``act``, ``update() -> dict``, ``state_dict`` / ``load_state_dict``). Exploration is HAQ's:
the action is drawn from a normal distribution around the actor's output, truncated to [0, 1],
with σ decaying geometrically per episode. Every random draw comes from the agent's own
``numpy.random.Generator`` and ``torch.Generator`` — both part of its saved state.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import truncnorm
from torch import Tensor, nn

__all__ = ["DDPG", "Actor", "Critic", "DDPGConfig", "ReplayBuffer"]


@dataclass(frozen=True)
class DDPGConfig:
    hidden1: int = 300  # width of the first hidden layer (actor and critic)
    hidden2: int = 300  # width of the second hidden layer
    lr_actor: float = 1e-4
    lr_critic: float = 1e-3
    tau: float = 0.01  # soft target-update rate
    discount: float = 1.0  # HAQ: the final reward is given to every step
    batch_size: int = 64
    sigma: float = 0.5  # initial exploration noise (truncated normal)
    sigma_decay: float = 0.99  # per episode after warm-up
    buffer_size: int | None = None  # None: sized by the search, warm-up episodes × steps × 4
    init_w: float = 3e-3  # uniform init range of the output layers
    moving_alpha: float = 0.5  # weight of a new reward in the moving-average baseline
    updates_per_step: float = 1.0  # gradient updates per episode step after warm-up (HAQ: 1)


class Actor(nn.Module):
    """state → action in [0, 1]."""

    def __init__(self, state_dim: int, hidden1: int = 300, hidden2: int = 300) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(state_dim, hidden1), nn.ReLU(),
            nn.Linear(hidden1, hidden2), nn.ReLU(),
            nn.Linear(hidden2, 1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, state: Tensor) -> Tensor:
        return self.net(state)


class Critic(nn.Module):
    """(state, action) → Q value."""

    def __init__(self, state_dim: int, hidden1: int = 300, hidden2: int = 300) -> None:
        super().__init__()
        self.state_in = nn.Linear(state_dim, hidden1)
        self.action_in = nn.Linear(1, hidden1)
        self.net = nn.Sequential(nn.ReLU(), nn.Linear(hidden1, hidden2), nn.ReLU(),
                                 nn.Linear(hidden2, 1))  # fmt: skip

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        return self.net(self.state_in(state) + self.action_in(action))


class ReplayBuffer:
    """A ring buffer of (state, action, reward, next state, done) transitions."""

    def __init__(self, capacity: int, state_dim: int) -> None:
        self.capacity = capacity
        self.states = np.zeros((capacity, state_dim), dtype=np.float32)
        self.actions = np.zeros((capacity, 1), dtype=np.float32)
        self.rewards = np.zeros((capacity, 1), dtype=np.float32)
        self.next_states = np.zeros((capacity, state_dim), dtype=np.float32)
        self.dones = np.zeros((capacity, 1), dtype=np.float32)
        self.size = 0
        self.pos = 0

    def add(
        self, state: np.ndarray, action: float, reward: float, next_state: np.ndarray, done: bool
    ) -> None:
        i = self.pos
        self.states[i], self.actions[i, 0], self.rewards[i, 0] = state, action, reward
        self.next_states[i], self.dones[i, 0] = next_state, float(done)
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[Tensor, ...]:
        idx = rng.integers(0, self.size, size=batch)
        return tuple(
            torch.from_numpy(a[idx])
            for a in (self.states, self.actions, self.rewards, self.next_states, self.dones)
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "states": torch.from_numpy(self.states[: self.size].copy()),
            "actions": torch.from_numpy(self.actions[: self.size].copy()),
            "rewards": torch.from_numpy(self.rewards[: self.size].copy()),
            "next_states": torch.from_numpy(self.next_states[: self.size].copy()),
            "dones": torch.from_numpy(self.dones[: self.size].copy()),
            "pos": self.pos,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = int(state["states"].shape[0])
        for name in ("states", "actions", "rewards", "next_states", "dones"):
            getattr(self, name)[:n] = state[name].numpy()
        self.size, self.pos = n, int(state["pos"])


class DDPG:
    """Actor-critic with target networks, a replay buffer and a moving-average reward baseline."""

    def __init__(self, state_dim: int, config: DDPGConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or DDPGConfig()
        c = self.config
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.actor = Actor(state_dim, c.hidden1, c.hidden2)
            self.critic = Critic(state_dim, c.hidden1, c.hidden2)
            for head in (self.actor.net[-2], self.critic.net[-1]):
                assert isinstance(head, nn.Linear)
                nn.init.uniform_(head.weight, -c.init_w, c.init_w)
                nn.init.uniform_(head.bias, -c.init_w, c.init_w)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic_target = copy.deepcopy(self.critic)
        # foreach: one fused kernel per step instead of one per tensor (the nets are tiny, so
        # per-call overhead, not arithmetic, is what an update costs)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr_actor, foreach=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.lr_critic, foreach=True)
        self._pairs: list[tuple[list[Tensor], list[Tensor]]] = [
            ([*self.actor_target.parameters()], [*self.actor.parameters()]),
            ([*self.critic_target.parameters()], [*self.critic.parameters()]),
        ]
        self.buffer = ReplayBuffer(c.buffer_size or 2000, state_dim)
        self.sigma = c.sigma
        self.baseline: float | None = None

    # -- acting -----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, state: np.ndarray, *, explore: bool = True) -> float:
        mean = float(self.actor(torch.from_numpy(state.astype(np.float32))[None])[0, 0])
        if not explore or self.sigma <= 0:
            return mean
        lo, hi = (0.0 - mean) / self.sigma, (1.0 - mean) / self.sigma
        return float(truncnorm.rvs(lo, hi, loc=mean, scale=self.sigma, random_state=self.rng))

    def random_action(self) -> float:
        return float(self.rng.uniform(0.0, 1.0))

    def end_episode(self, warmup: bool) -> None:
        if not warmup:
            self.sigma *= self.config.sigma_decay

    def shaped(self, reward: float) -> float:
        """Reward minus the moving-average baseline (which is then updated)."""
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self.baseline += self.config.moving_alpha * (reward - self.baseline)
        return advantage

    # -- learning ---------------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        """One gradient step of critic and actor on a replay batch, then soft target updates."""
        c = self.config
        if self.buffer.size < 2:
            return {}
        s, a, r, s2, done = self.buffer.sample(min(c.batch_size, self.buffer.size), self.rng)
        with torch.no_grad():
            target_q = r + c.discount * (1 - done) * self.critic_target(s2, self.actor_target(s2))
        critic_loss = nn.functional.mse_loss(self.critic(s, a), target_q)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        actor_loss = -self.critic(s, self.actor(s)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for targets, params in self._pairs:
                torch._foreach_lerp_(targets, params, c.tau)  # t ← t + τ (p − t)
        return {"actor_loss": float(actor_loss.item()), "critic_loss": float(critic_loss.item())}

    # -- persistence ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "buffer": self.buffer.state_dict(),
            "sigma": self.sigma,
            "baseline": math.nan if self.baseline is None else self.baseline,
            "torch_gen": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any], rng_state: dict[str, Any]) -> None:
        for name in ("actor", "critic", "actor_target", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.buffer.load_state_dict(state["buffer"])
        self.sigma = float(state["sigma"])
        baseline = float(state["baseline"])
        self.baseline = None if math.isnan(baseline) else baseline
        self.gen.set_state(state["torch_gen"])
        self.rng.bit_generator.state = rng_state
