"""The ``pick`` stop rule: stop estimating traces once the chosen bits no longer depend on them.

After each chunk of probes, the current pick (exact allocation on the mean traces) is scored
against ``samples`` draws of the traces from N(mean, stderr²): for each draw, its relative Σ Ω
regret against that draw's own optimum. When the mean regret is below ``tolerance``, more probes
would not change the decision materially — which is what the traces are for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from searchq.core.allocate import Budget
from searchq.core.space import QuantSpace
from searchq.hawq.allocate import allocate, objective
from searchq.hawq.sensitivity import sensitivities

__all__ = ["PickStability"]


class PickStability:
    def __init__(
        self,
        space: QuantSpace,
        names: Sequence[str],
        noise: Mapping[str, Mapping[int, float]],
        budget: Budget,
        *,
        tolerance: float = 0.01,
        samples: int = 16,
        seed: int = 0,
        fixed: Mapping[str, Mapping[int, float]] | None = None,
    ) -> None:
        self.space, self.names, self.noise, self.budget = space, list(names), noise, budget
        # Ω terms that are not drawn (the activations')
        self.fixed = {q: dict(v) for q, v in (fixed or {}).items()}
        self.tolerance, self.samples, self.seed = tolerance, samples, seed
        self.history: list[tuple[int, float]] = []

    def regret(
        self, mean: np.ndarray, stderr: np.ndarray, iteration: int, *, record: bool = True
    ) -> float:
        traces = dict(zip(self.names, mean, strict=True))
        pick = allocate(self.space, self._omega(traces), self.budget).assignment
        rng = np.random.default_rng([self.seed, iteration])
        regrets = []
        for _ in range(self.samples):
            draw = mean + np.where(np.isfinite(stderr), stderr, 0.0) * rng.standard_normal(
                len(mean)
            )
            omega = self._omega(dict(zip(self.names, draw, strict=True)))
            best = allocate(self.space, omega, self.budget).objective
            mine = objective(pick, omega)
            regrets.append((mine - best) / max(best, 1e-30))
        value = float(np.mean(regrets))
        if record:
            self.history.append((iteration, value))
        return value

    def _omega(self, traces: Mapping[str, float]) -> dict[str, dict[int, float]]:
        return {**sensitivities(traces, self.noise), **self.fixed}

    def __call__(self, mean: np.ndarray, stderr: np.ndarray, iteration: int) -> bool:
        return self.regret(mean, stderr, iteration) <= self.tolerance
