"""Range initialisation statistics (NNCF's ``initializer.range.type`` meanings).

Each observer sees a stream of tensors (batches of activations, or the weight once) and returns
``(low, high)``, overall or per channel:

===================  ============================================================================
``min_max``          minimum and maximum over everything seen
``mean_min_max``     mean over batches of each batch's minimum / maximum
``threesigma``       median ± 3·σ̂ of all values seen, σ̂ = 1.4826·MAD (median absolute
                     deviation; the factor makes it a standard-deviation estimate for a normal);
                     when the MAD is 0 (over half the values equal, e.g. ReLU zeros) min / max
``percentile``       the ``min_percentile`` / ``max_percentile`` of all values seen
``mean_percentile``  mean over batches of each batch's percentiles
``mixed_min_max``    per *sample* statistics: the maximum is the mean of the per-sample maxima;
                     the minimum is the mean of the per-sample minima for asymmetric quantizers
                     and the overall minimum otherwise (NNCF's ``use_means_of_mins``)
===================  ============================================================================

For symmetric quantizers ``high`` is collected on ``|x|`` (NNCF's ``use_abs_max``) and ``low``
only decides the sign. Weights are one "batch" and never use per-sample statistics.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from searchq.errors import ConfigError

__all__ = ["RANGE_INIT_TYPES", "RangeObserver", "make_observer"]

RANGE_INIT_TYPES = (
    "min_max",
    "mean_min_max",
    "threesigma",
    "percentile",
    "mean_percentile",
    "mixed_min_max",
)
_MAD_TO_SIGMA = 1.4826
_MAX_STORED = 1 << 22  # values kept per observer for value-based statistics (deterministic cap)


def _rows(x: Tensor, ch_axis: int | None) -> Tensor:
    """``x`` as (channels, values); one row when per-tensor."""
    x = x.detach().float()
    if ch_axis is None:
        return x.reshape(1, -1)
    return x.transpose(0, ch_axis).reshape(x.shape[ch_axis], -1)


class RangeObserver:
    """Base: collect statistics with :meth:`update`, read them with :meth:`range`."""

    def __init__(self, ch_axis: int | None = None) -> None:
        self.ch_axis = ch_axis
        self.count = 0
        self.abs_max = False  # symmetric: the upper statistic is taken of |x|
        self.sign_low: Tensor | None = None

    def update(self, x: Tensor) -> None:
        rows = _rows(x, self.ch_axis)
        if self.abs_max:
            lo = rows.min(dim=1).values
            self.sign_low = lo if self.sign_low is None else torch.minimum(self.sign_low, lo)
            rows = rows.abs()
        self._update(rows)
        self.count += 1

    def range(self) -> tuple[Tensor, Tensor]:
        if not self.count:
            raise RuntimeError("range() before any update()")
        low, high = self._range()
        if self.abs_max:
            assert self.sign_low is not None
            # the magnitude is ``high``; keep the sign information of the raw minimum
            low = torch.where(self.sign_low < 0, -high, torch.zeros_like(high))
        return low, high

    def _update(self, rows: Tensor) -> None:
        raise NotImplementedError

    def _range(self) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class MinMaxObserver(RangeObserver):
    def __init__(self, ch_axis: int | None = None) -> None:
        super().__init__(ch_axis)
        self.low: Tensor | None = None
        self.high: Tensor | None = None

    def _update(self, rows: Tensor) -> None:
        lo, hi = rows.min(dim=1).values, rows.max(dim=1).values
        self.low = lo if self.low is None else torch.minimum(self.low, lo)
        self.high = hi if self.high is None else torch.maximum(self.high, hi)

    def _range(self) -> tuple[Tensor, Tensor]:
        assert self.low is not None and self.high is not None
        return self.low, self.high


class MeanMinMaxObserver(RangeObserver):
    def __init__(self, ch_axis: int | None = None) -> None:
        super().__init__(ch_axis)
        self.lows: list[Tensor] = []
        self.highs: list[Tensor] = []

    def _update(self, rows: Tensor) -> None:
        self.lows.append(rows.min(dim=1).values)
        self.highs.append(rows.max(dim=1).values)

    def _range(self) -> tuple[Tensor, Tensor]:
        return torch.stack(self.lows).mean(0), torch.stack(self.highs).mean(0)


class _ValuesObserver(RangeObserver):
    """Keeps the values (up to a cap, subsampled with a fixed generator) for global statistics."""

    def __init__(self, ch_axis: int | None = None) -> None:
        super().__init__(ch_axis)
        self.values: list[Tensor] = []
        self.stored = 0
        self._gen = torch.Generator().manual_seed(0)

    def _update(self, rows: Tensor) -> None:
        budget = _MAX_STORED - self.stored
        if budget <= 0:
            return
        if rows.numel() > budget:
            cols = max(1, budget // rows.shape[0])
            idx = torch.randperm(rows.shape[1], generator=self._gen)[:cols]
            rows = rows[:, idx]
        self.values.append(rows)
        self.stored += rows.numel()

    def _all(self) -> Tensor:
        return torch.cat(self.values, dim=1)


class ThreeSigmaObserver(_ValuesObserver):
    def _range(self) -> tuple[Tensor, Tensor]:
        v = self._all()
        median = v.median(dim=1).values
        mad = (v - median[:, None]).abs().median(dim=1).values
        sigma = _MAD_TO_SIGMA * mad
        low, high = median - 3 * sigma, median + 3 * sigma
        # More than half the values equal (e.g. ReLU zeros) makes the MAD 0 and the range empty:
        # every value would clip. Such rows fall back to their min / max.
        span = v.abs().amax(dim=1)
        empty = (high - low) <= 1e-6 * span
        if bool(empty.any()):
            low = torch.where(empty, v.min(dim=1).values, low)
            high = torch.where(empty, v.max(dim=1).values, high)
        return low, high


class PercentileObserver(_ValuesObserver):
    def __init__(self, ch_axis: int | None, low_pct: float, high_pct: float) -> None:
        super().__init__(ch_axis)
        self.q = torch.tensor([low_pct / 100.0, high_pct / 100.0])

    def _range(self) -> tuple[Tensor, Tensor]:
        qs = torch.quantile(self._all(), self.q, dim=1)
        return qs[0], qs[1]


class MeanPercentileObserver(RangeObserver):
    def __init__(self, ch_axis: int | None, low_pct: float, high_pct: float) -> None:
        super().__init__(ch_axis)
        self.q = torch.tensor([low_pct / 100.0, high_pct / 100.0])
        self.lows: list[Tensor] = []
        self.highs: list[Tensor] = []

    def _update(self, rows: Tensor) -> None:
        if rows.shape[1] > _MAX_STORED:
            rows = rows[:, :: rows.shape[1] // _MAX_STORED + 1]
        qs = torch.quantile(rows, self.q, dim=1)
        self.lows.append(qs[0])
        self.highs.append(qs[1])

    def _range(self) -> tuple[Tensor, Tensor]:
        return torch.stack(self.lows).mean(0), torch.stack(self.highs).mean(0)


class MixedMinMaxObserver(RangeObserver):
    """Per-sample statistics (dim 0 of each batch is the sample axis)."""

    def __init__(self, ch_axis: int | None, means_of_mins: bool, per_sample: bool) -> None:
        super().__init__(ch_axis)
        self.means_of_mins = means_of_mins
        self.per_sample = per_sample
        self.lows: list[Tensor] = []
        self.highs: list[Tensor] = []

    def update(self, x: Tensor) -> None:
        x = x.detach().float()
        if self.abs_max:
            lo = x.min().reshape(1)
            self.sign_low = lo if self.sign_low is None else torch.minimum(self.sign_low, lo)
            x = x.abs()
        if self.ch_axis is not None or x.dim() == 0 or not self.per_sample:
            # per-channel: per-sample statistics do not apply (NNCF uses plain min/max then)
            rows = _rows(x, self.ch_axis)
            self.lows.append(rows.min(dim=1).values[None])
            self.highs.append(rows.max(dim=1).values[None])
        else:
            flat = x.reshape(x.shape[0], -1)
            self.lows.append(flat.min(dim=1).values[:, None])
            self.highs.append(flat.max(dim=1).values[:, None])
        self.count += 1

    def _range(self) -> tuple[Tensor, Tensor]:
        lows, highs = torch.cat(self.lows), torch.cat(self.highs)
        if self.ch_axis is not None or not self.per_sample:
            return lows.min(0).values, highs.max(0).values
        low = lows.mean(0) if self.means_of_mins else lows.min(0).values
        return low, highs.mean(0)


def make_observer(
    init_type: str,
    params: Mapping[str, float] | None = None,
    *,
    ch_axis: int | None = None,
    symmetric: bool = True,
    weights: bool = False,
) -> RangeObserver:
    """An observer for NNCF range-init ``init_type`` (see the module docstring).

    ``symmetric`` collects the upper statistic on ``|x|``; ``weights`` disables per-sample
    statistics (``mixed_min_max`` then is plain min / max).
    """
    obs = _make(init_type, params, ch_axis, symmetric, weights)
    obs.abs_max = symmetric
    return obs


def _make(
    init_type: str,
    params: Mapping[str, float] | None,
    ch_axis: int | None,
    symmetric: bool,
    weights: bool,
) -> RangeObserver:
    params = dict(params or {})
    low_pct = float(params.get("min_percentile", 0.1))
    high_pct = float(params.get("max_percentile", 99.9))
    if not 0.0 <= low_pct < high_pct <= 100.0:
        raise ConfigError(
            f"percentiles min {low_pct} / max {high_pct} must satisfy 0 <= min < max <= 100",
            key="initializer.range.params",
        )
    if init_type == "min_max":
        return MinMaxObserver(ch_axis)
    if init_type == "mean_min_max":
        return MeanMinMaxObserver(ch_axis)
    if init_type == "threesigma":
        return ThreeSigmaObserver(ch_axis)
    if init_type == "percentile":
        return PercentileObserver(ch_axis, low_pct, high_pct)
    if init_type == "mean_percentile":
        return MeanPercentileObserver(ch_axis, low_pct, high_pct)
    if init_type == "mixed_min_max":
        return MixedMinMaxObserver(ch_axis, means_of_mins=not symmetric, per_sample=not weights)
    raise ConfigError(
        f"range init type {init_type!r} is not one of {list(RANGE_INIT_TYPES)}",
        key="initializer.range.type",
    )
