"""Sparsity-level schedules (NNCF ``magnitude_sparsity.params.schedule``).

The epoch counter starts at -1 and :meth:`SparsitySchedule.epoch_step` is called at the start of
every epoch (epoch ``e = 0, 1, …``); :meth:`step` once per optimizer step. With
``update_per_optimizer_step`` the progress is fractional, ``(e + s / steps_per_epoch)``.

* ``polynomial``: ``p = clip(e / target_epoch, 0, 1)``;
  concave ``level = target − (target − init)·(1 − p)^power``,
  convex ``level = init + (target − init)·p^power``.
* ``exponential``: density ``d = 1 − level`` decays geometrically,
  ``d(e) = d0·(d_t / d0)^(e / target_epoch)``, never below ``d_t``.
* ``multistep``: ``levels[bisect_right(steps, e)]`` (``len(levels) == len(steps) + 1``).
* ``adaptive``: after ``patience`` epochs in which the model reached the current level
  (within ``eps``), raise the level by ``step``, up to ``target``.

``freeze_epoch``: from that epoch on the level stays and the masks are frozen.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from searchq.errors import ConfigError

__all__ = [
    "AdaptiveSchedule",
    "ExponentialSchedule",
    "MultiStepSchedule",
    "PolynomialSchedule",
    "SparsitySchedule",
    "make_schedule",
]

SCHEDULES = ("polynomial", "exponential", "multistep", "adaptive")


@dataclass
class SparsitySchedule:
    init: float = 0.0
    target: float = 0.5
    target_epoch: int = 90
    freeze_epoch: int = 100
    update_per_optimizer_step: bool = False
    steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        for key, v in (("sparsity_init", self.init), ("sparsity_target", self.target)):
            if not 0 <= v < 1:
                raise ConfigError(f"{v} must be in [0, 1)", key=key)
        if self.target_epoch < 0:
            raise ConfigError(f"{self.target_epoch} must be >= 0", key="sparsity_target_epoch")
        self.epoch = -1
        self._step_in_epoch = 0
        self._measured_steps = 0

    # -- counters -----------------------------------------------------------------------------
    def epoch_step(self) -> None:
        if self.epoch == 0 and self.steps_per_epoch is None and self._measured_steps:
            self.steps_per_epoch = self._measured_steps  # learnt during the first epoch
        self.epoch += 1
        self._step_in_epoch = 0

    def step(self) -> None:
        self._step_in_epoch += 1
        if self.epoch == 0:
            self._measured_steps = self._step_in_epoch

    @property
    def frozen(self) -> bool:
        return self.epoch >= self.freeze_epoch

    def progress_epochs(self) -> float:
        e = max(self.epoch, 0)
        if self.update_per_optimizer_step and self.steps_per_epoch:
            return e + self._step_in_epoch / self.steps_per_epoch
        return float(e)

    @property
    def level(self) -> float:
        if self.epoch < 0:
            return self.init
        e = min(self.progress_epochs(), float(self.freeze_epoch))
        return self._level(e)

    def _level(self, e: float) -> float:
        raise NotImplementedError

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, float | int | None]:
        return {
            "epoch": self.epoch,
            "step_in_epoch": self._step_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "measured_steps": self._measured_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self._step_in_epoch = int(state["step_in_epoch"])
        self.steps_per_epoch = state["steps_per_epoch"]
        self._measured_steps = int(state["measured_steps"])


@dataclass
class PolynomialSchedule(SparsitySchedule):
    power: float = 0.9
    concave: bool = True

    def _level(self, e: float) -> float:
        if self.target_epoch == 0:
            return self.target
        p = min(max(e / self.target_epoch, 0.0), 1.0)
        span = self.target - self.init
        if self.concave:
            return self.target - span * (1.0 - p) ** self.power
        return self.init + span * p**self.power


@dataclass
class ExponentialSchedule(SparsitySchedule):
    def _level(self, e: float) -> float:
        if self.target_epoch == 0:
            return self.target
        d0, dt = 1.0 - self.init, 1.0 - self.target
        density = d0 * (dt / d0) ** (e / self.target_epoch)
        return min(1.0 - max(density, dt), self.target)


@dataclass
class MultiStepSchedule(SparsitySchedule):
    steps: Sequence[int] = (90,)
    levels: Sequence[float] = (0.1, 0.5)

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.steps) + 1:
            raise ConfigError(
                f"{len(self.levels)} levels for {len(self.steps)} steps; give one more level than "
                "steps (the level before the first step comes first)",
                key="params.multistep_sparsity_levels",
            )
        if list(self.steps) != sorted(self.steps):
            raise ConfigError(
                f"{list(self.steps)} must be increasing", key="params.multistep_steps"
            )
        bad = [v for v in self.levels if not 0 <= v < 1]
        if bad:
            raise ConfigError(
                f"levels {bad} must be in [0, 1)", key="params.multistep_sparsity_levels"
            )
        self.init, self.target = float(self.levels[0]), float(self.levels[-1])
        super().__post_init__()

    def _level(self, e: float) -> float:
        return float(self.levels[bisect.bisect_right(list(self.steps), math.floor(e))])


@dataclass
class AdaptiveSchedule(SparsitySchedule):
    patience: int = 1
    level_step: float = 0.05
    eps: float = 0.03

    def __post_init__(self) -> None:
        super().__post_init__()
        self.current = self.init
        self._bad_epochs = 0

    def epoch_step(self, current_sparsity: float | None = None) -> None:  # type: ignore[override]
        super().epoch_step()
        if self.epoch > 0 and current_sparsity is not None and not self.frozen:
            if current_sparsity >= self.current - self.eps:
                self._bad_epochs += 1
            if self._bad_epochs >= self.patience:
                self.current = min(self.current + self.level_step, self.target)
                self._bad_epochs = 0

    def _level(self, e: float) -> float:
        return self.current

    def state_dict(self) -> dict:
        return {**super().state_dict(), "current": self.current, "bad_epochs": self._bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.current = float(state["current"])
        self._bad_epochs = int(state["bad_epochs"])


def make_schedule(kind: str, **params: object) -> SparsitySchedule:
    """Build a schedule by NNCF name; ``params`` are the dataclass fields."""
    classes = {
        "polynomial": PolynomialSchedule,
        "exponential": ExponentialSchedule,
        "multistep": MultiStepSchedule,
        "adaptive": AdaptiveSchedule,
    }
    if kind not in classes:
        raise ConfigError(
            f"schedule {kind!r} is not one of {list(SCHEDULES)}", key="params.schedule"
        )
    try:
        return classes[kind](**params)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ConfigError(f"bad parameters for schedule {kind!r}: {exc}", key="params") from None
