"""Per-layer average Hessian traces by Hutchinson's estimator (HAWQ-V2, Dong et al. 2020).

For the task loss L over a fixed set of samples and the quantized weights W = (W_1, …, W_L), a
Rademacher probe v gives ``v_i · (H v)_i`` — an unbiased estimate of ``tr(H_ii)`` for EVERY block
i from ONE Hessian-vector product over all weights (the cross-block terms have zero mean). The
reported sensitivity is the average trace ``tr(H_ii) / n_i``.

What differs from NNCF 2.x's ``HessianTraceEstimator``:

* the first-order graph of a batch is reused for several probes (one ``autograd.grad`` with
  ``create_graph=True``, then one double-backward per probe), and only one such graph is alive;
* the Hessian batch size is independent of the training loader (``batch_size``);
* probes come from a seeded ``torch.Generator``; the per-iteration estimates are kept, so each
  layer gets a mean ± standard error;
* stopping: ``stderr`` (default) — every layer's standard error is below ``stderr_fraction`` of
  its |mean| (floored at 1e-3 of the largest |mean|); or NNCF's ``tolerance`` rule on the
  relative change of the summed mean, with ``abs()`` in the denominator so that negative
  curvature cannot stop it at once. ``max_iterations`` caps both. One *iteration* is one probe
  applied to all samples, as in NNCF.
* optional Hutch++-style deflation (``deflation_rank`` k > 0, Meyer et al. 2021): the top-k
  Hessian subspace Q (from a sketch) is traced exactly and Hutchinson runs on the deflated
  residual ``(I − QQᵀ) H (I − QQᵀ)``, which removes most of the cross-block variance when a few
  eigen-directions dominate.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from searchq.errors import CheckpointError, ConfigError

__all__ = ["STOP_RULES", "TraceEstimate", "estimate_traces"]

STOP_RULES = ("stderr", "tolerance")
SCHEMA_VERSION = 1
_FLOOR = 1e-3  # |mean| floor for the stderr rule, relative to the largest |mean|


@dataclass(frozen=True)
class TraceEstimate:
    """Average Hessian trace per layer with its standard error and the per-iteration history."""

    names: tuple[str, ...]
    mean: np.ndarray
    stderr: np.ndarray
    iterations: int
    stop_reason: str
    seconds: float = 0.0
    history: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    hvps: int = 0  # Hessian-vector products spent (pilot and deflation included)
    # "hutchinson"; "exact" (Gauss–Newton = Hessian block traces of a piecewise-linear net);
    # "gauss_newton" (forced on any net); a loaded file keeps its own
    method: str = "hutchinson"
    backward_directions: int = 0  # batched backward directions the exact methods spent
    note: str = ""  # e.g. why the exact method was not used
    # exact methods: standard error of the mean over the Hessian samples (None: not measured)
    data_stderr: np.ndarray | None = None

    def as_dict(self) -> dict[str, float]:
        return {n: float(m) for n, m in zip(self.names, self.mean, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "names": list(self.names),
            "mean": [float(x) for x in self.mean],
            "stderr": [float(x) for x in self.stderr],
            "iterations": self.iterations,
            "stop_reason": self.stop_reason,
            "seconds": self.seconds,
            "hvps": self.hvps,
            "method": self.method,
            "backward_directions": self.backward_directions,
            **({"note": self.note} if self.note else {}),
            **(
                {"data_stderr": [float(x) for x in self.data_stderr]}
                if self.data_stderr is not None
                else {}
            ),
        }

    def save(self, path: str | Path) -> None:
        p = Path(path)
        if p.suffix == ".pt":
            torch.save({**self.to_dict(), "history": torch.as_tensor(self.history)}, p)
        else:
            p.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> TraceEstimate:
        """Read a traces file (ours as JSON or .pt; NNCF's .pt tensor of traces is also read)."""
        p = Path(path)
        try:
            if p.suffix == ".pt":
                data: Any = torch.load(p, weights_only=True, map_location="cpu")
            else:
                data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                "traces file not found; check the path", key="traces_per_layer_path", file=str(p)
            ) from None
        except Exception as exc:  # corrupt pickles / JSON: one line, not a traceback
            raise CheckpointError(
                f"{p}: cannot read traces ({type(exc).__name__}: {exc})"
            ) from None
        if isinstance(data, Tensor):  # NNCF's format: a bare tensor in execution order
            values = data.detach().double().numpy().reshape(-1)
            names = tuple(f"#{i}" for i in range(len(values)))
            return cls(names, values, np.zeros_like(values), 0, "loaded")
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise CheckpointError(
                f"{p}: not a searchq traces file of schema_version {SCHEMA_VERSION}; re-run with "
                "--save-traces"
            )
        history = data.get("history")
        return cls(
            names=tuple(data["names"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            stderr=np.asarray(data["stderr"], dtype=np.float64),
            iterations=int(data["iterations"]),
            stop_reason="loaded",
            seconds=0.0,
            method=str(data.get("method", "hutchinson")),
            data_stderr=(
                np.asarray(data["data_stderr"], dtype=np.float64) if "data_stderr" in data else None
            ),
            history=np.asarray(history) if history is not None else np.zeros((0, 0)),
        )


def _rademacher(like: Tensor, gen: torch.Generator) -> Tensor:
    return torch.randint(0, 2, like.shape, generator=gen, dtype=like.dtype).mul_(2).sub_(1)


def _dot_blocks(a: Sequence[Tensor], b: Sequence[Tensor]) -> np.ndarray:
    return np.asarray([float((x * y).sum()) for x, y in zip(a, b, strict=True)])


class _Samples:
    """Per-iteration estimates (rows) and their per-layer mean / standard error."""

    def __init__(self, layers: int) -> None:
        self.rows: list[np.ndarray] = []
        self.layers = layers

    @property
    def iterations(self) -> int:
        return len(self.rows)

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.rows)
        if n == 0:
            return np.zeros(self.layers), np.full(self.layers, np.inf)
        data = np.stack(self.rows)
        if n == 1:
            return data[0], np.full(self.layers, np.inf)
        return data.mean(axis=0), data.std(axis=0, ddof=1) / math.sqrt(n)

    def history(self) -> np.ndarray:
        return np.stack(self.rows) if self.rows else np.zeros((0, self.layers))


def estimate_traces(
    model: nn.Module,
    params: Sequence[tuple[str, Tensor]],
    batches: Sequence[tuple[Tensor, Tensor]],
    criterion: Callable[[Tensor, Tensor], Tensor],
    *,
    max_iterations: int = 200,
    stop: str = "stderr",
    stderr_fraction: float = 0.05,
    tolerance: float = 1e-4,
    min_iterations: int = 16,
    probes_per_graph: int = 8,
    deflation_rank: int = 4,
    seed: int = 0,
    should_stop: Callable[[np.ndarray, np.ndarray, int], bool] | None = None,
    on_iteration: Callable[[int, np.ndarray], None] | None = None,
) -> TraceEstimate:
    """Estimate ``tr(H_ii) / n_i`` for every ``(name, weight)`` in ``params``.

    ``batches`` is the fixed data (``(input, target)`` pairs) the loss is averaged over; the
    model runs in eval mode (BatchNorm statistics frozen). ``probes_per_graph`` probes share one
    first-order graph per batch; the stop rules are checked after each such chunk, from
    ``min_iterations`` on. ``deflation_rank`` k > 0 spends 2k extra HVPs once to trace the top-k
    subspace exactly (see the module docstring); 0 gives plain Hutchinson as in NNCF.
    ``should_stop(mean, stderr, iterations)`` adds a caller's rule (e.g. a stable pick).
    """
    if stop not in STOP_RULES:
        raise ConfigError(f"stop rule {stop!r} is not one of {list(STOP_RULES)}", key="stop")
    if max_iterations < 1:
        raise ConfigError(f"iter_number {max_iterations} must be >= 1", key="iter_number")
    if deflation_rank < 0:
        raise ConfigError(f"deflation_rank {deflation_rank} must be >= 0", key="deflation_rank")
    if not batches:
        raise ConfigError("no data for the Hessian traces; num_data_points must be >= 1")
    names = tuple(n for n, _ in params)
    weights = [w for _, w in params]
    numels = np.asarray([w.numel() for w in weights], dtype=np.float64)
    gen = torch.Generator().manual_seed(seed)
    total = sum(int(x.shape[0]) for x, _ in batches)
    start = time.perf_counter()
    was_training = model.training
    flags = [(w, w.requires_grad) for w in weights]
    for w in weights:
        w.requires_grad_(True)
    model.eval()
    samples = _Samples(len(weights))
    reason = "iter_number"
    hvp = _HVP(model, weights, batches, criterion, total)
    try:
        basis = _deflation_basis(hvp, weights, deflation_rank, gen) if deflation_rank else None
        exact = basis.exact_part / numels if basis is not None else np.zeros(len(weights))
        while samples.iterations < max_iterations:
            chunk = min(probes_per_graph, max_iterations - samples.iterations)
            for row in hvp.global_probes(chunk, gen, basis):
                samples.rows.append(exact + row / numels)
                if on_iteration is not None:
                    on_iteration(samples.iterations, samples.estimate()[0])
            if samples.iterations < max(2, min_iterations):
                continue
            mean, err = samples.estimate()
            if stop == "tolerance" and _tolerance_reached(samples, tolerance, min_iterations):
                reason = "tolerance"
                break
            if stop == "stderr" and not _unconverged(mean, err, stderr_fraction):
                reason = "stderr"
                break
            if should_stop is not None and should_stop(mean, err, samples.iterations):
                reason = "stable pick"
                break
    finally:
        model.train(was_training)
        for w, flag in flags:
            w.requires_grad_(flag)
    mean, err = samples.estimate()
    return TraceEstimate(
        names=names,
        mean=mean,
        stderr=err,
        iterations=samples.iterations,
        stop_reason=reason,
        seconds=time.perf_counter() - start,
        history=samples.history(),
        hvps=hvp.count,
    )


def _unconverged(mean: np.ndarray, err: np.ndarray, fraction: float) -> set[int]:
    floor = _FLOOR * float(np.abs(mean).max()) if len(mean) else 0.0
    target = fraction * np.maximum(np.abs(mean), floor)
    return {int(i) for i in np.nonzero(~(err <= target))[0]}


def _tolerance_reached(samples: _Samples, tolerance: float, min_iterations: int) -> bool:
    """NNCF's rule on the running mean of the summed traces, checked at every iteration."""
    rows = samples.rows
    totals = np.cumsum([r.sum() for r in rows]) / np.arange(1, len(rows) + 1)
    for t in range(max(1, min_iterations - 1), len(rows)):
        if abs(totals[t] - totals[t - 1]) / (abs(totals[t - 1]) + 1e-6) < tolerance:
            del rows[t + 1 :]
            return True
    return False


class _HVP:
    """Hessian-vector products over the fixed batches, reusing each batch's first-order graph."""

    def __init__(
        self,
        model: nn.Module,
        weights: Sequence[Tensor],
        batches: Sequence[tuple[Tensor, Tensor]],
        criterion: Callable,
        total: int,
    ) -> None:
        self.model, self.weights, self.batches = model, list(weights), batches
        self.criterion, self.total = criterion, total
        self.count = 0
        self.batched = True

    def _grads(self, x: Tensor, y: Tensor) -> tuple[Tensor, ...]:
        loss = self.criterion(self.model(x), y)
        return torch.autograd.grad(loss, self.weights, create_graph=True)

    def products(self, vectors: Sequence[Sequence[Tensor]]) -> list[list[Tensor]]:
        """``H v`` for each vector (averaged over the batches).

        All vectors of one call go through the double backward together
        (``is_grads_batched``: about 1.6× faster per product than one at a time on CPU); if an
        op has no batching rule, they go one by one.
        """
        out = [[torch.zeros_like(w) for w in self.weights] for _ in vectors]
        for x, y in self.batches:
            share = float(x.shape[0]) / self.total
            grads = self._grads(x, y)
            for j, hv in enumerate(self._batched(grads, vectors)):
                for acc, h in zip(out[j], hv, strict=True):
                    acc.add_(h.detach(), alpha=share)
            del grads
        self.count += len(vectors)
        return out

    def _batched(
        self, grads: tuple[Tensor, ...], vectors: Sequence[Sequence[Tensor]]
    ) -> list[Sequence[Tensor]]:
        if self.batched and len(vectors) > 1:
            stacked = [torch.stack([v[k] for v in vectors]) for k in range(len(self.weights))]
            try:
                hv = torch.autograd.grad(
                    grads, self.weights, stacked, retain_graph=True, is_grads_batched=True
                )
                return [[h[j] for h in hv] for j in range(len(vectors))]
            except RuntimeError:
                self.batched = False  # some op lacks a vmap rule: fall back, once
        return [
            torch.autograd.grad(grads, self.weights, v, retain_graph=j < len(vectors) - 1)
            for j, v in enumerate(vectors)
        ]

    def global_probes(self, k: int, gen: torch.Generator, basis: _Basis | None) -> list[np.ndarray]:
        probes = [[_rademacher(w, gen) for w in self.weights] for _ in range(k)]
        if basis is None:
            return [_dot_blocks(v, hv) for v, hv in zip(probes, self.products(probes), strict=True)]
        projected = [basis.project_out(v) for v in probes]
        hvs = self.products(projected)
        return [_dot_blocks(v, basis.project_out(hv)) for v, hv in zip(probes, hvs, strict=True)]


@dataclass
class _Basis:
    """k orthonormal directions (rows of ``q``, flattened over all weights) and the exactly
    traced part."""

    q: Tensor  # (k, D)
    shapes: list[torch.Size]
    exact_part: np.ndarray  # per-layer trace of QQᵀH + HQQᵀ − QQᵀHQQᵀ

    def blocks(self, flat: Tensor) -> list[Tensor]:
        sizes = [math.prod(s) for s in self.shapes]
        return [p.reshape(s) for p, s in zip(torch.split(flat, sizes), self.shapes, strict=True)]

    def project_out(self, v: Sequence[Tensor]) -> list[Tensor]:
        """``(I − QQᵀ) v``."""
        flat = torch.cat([t.reshape(-1) for t in v])
        return self.blocks(flat - self.q.T @ (self.q @ flat))


def _deflation_basis(
    hvp: _HVP, weights: Sequence[Tensor], rank: int, gen: torch.Generator
) -> _Basis:
    """Hutch++'s sketch: Q = orth(H S) for a Rademacher S with ``rank`` columns, then H Q."""
    sketch = [[_rademacher(w, gen) for w in weights] for _ in range(rank)]
    hs = hvp.products(sketch)
    flat = torch.stack([torch.cat([b.reshape(-1) for b in h]) for h in hs], dim=1)
    q = torch.linalg.qr(flat).Q.T.contiguous()  # (k, D), orthonormal rows
    basis = _Basis(q=q, shapes=[w.shape for w in weights], exact_part=np.zeros(len(weights)))
    hq = hvp.products([basis.blocks(row) for row in q])
    hq_flat = torch.stack([torch.cat([b.reshape(-1) for b in h]) for h in hq])  # (k, D)
    qhq = q @ hq_flat.T
    exact = []
    start = 0
    for w in weights:  # per block: tr_i(QQᵀH + HQQᵀ − QQᵀHQQᵀ)
        qi, hi = q[:, start : start + w.numel()], hq_flat[:, start : start + w.numel()]
        exact.append(float(2 * (qi * hi).sum() - ((qi @ qi.T) * qhq).sum()))
        start += w.numel()
    basis.exact_part = np.asarray(exact)
    return basis
