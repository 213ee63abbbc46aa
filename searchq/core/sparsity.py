"""Magnitude sparsity: masks on weights, level setting and schedules (NNCF ``magnitude_sparsity``).

Importance is ``|w|`` (``abs``) or ``|w| / ‖W‖₂`` per layer (``normed_abs``, NNCF's default, so
one global threshold treats layers of different scale fairly).

* ``global`` level setting: the ``round(level · N)`` least important weights over all N target
  weights are zeroed (ties broken by position), so the level is met exactly. NNCF instead picks
  the threshold ``sorted(importance)[int((N − 1)·level)]`` and keeps ``importance > threshold``,
  which can overshoot on ties.
* ``local``: the same per layer.

Schedules live in :mod:`searchq.core.schedules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from searchq.core._param import add_weight_transform, original_weight, remove_weight_transform
from searchq.errors import ConfigError

__all__ = ["MagnitudeSparsifier", "WeightMask"]

IMPORTANCE = ("abs", "normed_abs")
LEVEL_MODES = ("global", "local")


class WeightMask(nn.Module):
    """``w ↦ w · mask`` (the mask is a buffer, saved in state dicts)."""

    mask: Tensor

    def __init__(self, shape: torch.Size, device: torch.device | None = None) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones(shape, device=device))

    def forward(self, w: Tensor) -> Tensor:
        return w * self.mask


def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 <= level < 1:
        raise ConfigError(f"sparsity level {level!r} must be a number in [0, 1)", key="level")
    return float(level)


class MagnitudeSparsifier:
    """Masks the weights of ``modules`` (names in ``model.named_modules()``) by magnitude."""

    def __init__(
        self,
        model: nn.Module,
        modules: Iterable[str],
        *,
        importance: str = "normed_abs",
        level_mode: str = "global",
    ) -> None:
        if importance not in IMPORTANCE:
            raise ConfigError(
                f"weight_importance {importance!r} is not one of {list(IMPORTANCE)}",
                key="params.weight_importance",
            )
        if level_mode not in LEVEL_MODES:
            raise ConfigError(
                f"sparsity_level_setting_mode {level_mode!r} is not one of {list(LEVEL_MODES)}",
                key="params.sparsity_level_setting_mode",
            )
        self.model = model
        self.importance = importance
        self.level_mode = level_mode
        self.frozen = False
        self.level = 0.0
        named = dict(model.named_modules())
        self.masks: dict[str, WeightMask] = {}
        self._modules: dict[str, nn.Module] = {}
        for name in modules:
            if name not in named or not isinstance(getattr(named[name], "weight", None), Tensor):
                raise ConfigError(
                    f"module {name!r} has no weight to sparsify; pick from the model's Conv / "
                    "Linear layers",
                    key="target_scopes",
                )
            mod = named[name]
            w = original_weight(mod)
            mask = WeightMask(w.shape, device=w.device)
            add_weight_transform(mod, mask)
            self.masks[name] = mask
            self._modules[name] = mod
        if not self.masks:
            raise ConfigError(
                "no layer selected for sparsity; check ignored_scopes / target_scopes"
            )

    # -- levels -------------------------------------------------------------------------------
    def _importance(self, name: str) -> Tensor:
        w = original_weight(self._modules[name]).detach().abs().float()
        if self.importance == "normed_abs":
            w = w / w.norm().clamp_min(1e-12)
        return w

    @torch.no_grad()
    def set_level(self, level: float | Mapping[str, float]) -> None:
        """Recompute masks for ``level`` (a fraction, or per-layer fractions in local mode).

        Does nothing once :meth:`freeze` has been called.
        """
        if self.frozen:
            return
        if isinstance(level, Mapping):
            unknown = sorted(set(level) - set(self.masks))
            if unknown:
                raise ConfigError(f"sparsity levels for unknown layers {unknown[:3]}", key="level")
            for name, lv in level.items():
                self._mask_lowest([name], _check_level(lv))
            self.level = self.sparsity()
            return
        lv = _check_level(level)
        if self.level_mode == "global":
            self._mask_lowest(list(self.masks), lv)
        else:
            for name in self.masks:
                self._mask_lowest([name], lv)
        self.level = lv

    def _mask_lowest(self, names: list[str], level: float) -> None:
        scores = [self._importance(n).reshape(-1) for n in names]
        flat = torch.cat(scores)
        k = int(round(level * flat.numel()))
        keep = torch.ones_like(flat)
        if k > 0:
            # stable sort: equal importances are pruned in position order (deterministic)
            order = torch.sort(flat, stable=True).indices
            keep[order[:k]] = 0.0
        start = 0
        for n, s in zip(names, scores, strict=True):
            self.masks[n].mask.copy_(
                keep[start : start + s.numel()].reshape(self.masks[n].mask.shape)
            )
            start += s.numel()

    def freeze(self) -> None:
        """Stop updating masks (NNCF's ``sparsity_freeze_epoch``)."""
        self.frozen = True

    # -- statistics ---------------------------------------------------------------------------
    def sparsity(self) -> float:
        zeros = sum(int((m.mask == 0).sum()) for m in self.masks.values())
        total = sum(m.mask.numel() for m in self.masks.values())
        return zeros / total

    def layer_sparsity(self) -> dict[str, float]:
        return {n: int((m.mask == 0).sum()) / m.mask.numel() for n, m in self.masks.items()}

    # -- persistence ----------------------------------------------------------------------------
    def mask_state(self) -> dict[str, Tensor]:
        return {n: m.mask.detach().clone() for n, m in self.masks.items()}

    @torch.no_grad()
    def load_masks(self, masks: Mapping[str, Tensor], *, freeze: bool = True) -> None:
        """Use given masks (``const`` sparsity keeps a loaded mask; frozen by default)."""
        for name, mask in masks.items():
            if name not in self.masks:
                raise ConfigError(f"mask for unknown layer {name!r}", key="masks")
            if tuple(mask.shape) != tuple(self.masks[name].mask.shape):
                raise ConfigError(
                    f"mask of {name!r} has shape {tuple(mask.shape)}, the weight "
                    f"{tuple(self.masks[name].mask.shape)}",
                    key="masks",
                )
            self.masks[name].mask.copy_((mask != 0).float())
        self.level = self.sparsity()
        self.frozen = freeze

    def remove(self, *, apply: bool = True) -> nn.Module:
        """Remove the masks; ``apply=True`` writes the zeros into the weights first."""
        for name, mask in self.masks.items():
            mod = self._modules[name]
            if apply:
                with torch.no_grad():
                    original_weight(mod).mul_(mask.mask)
            remove_weight_transform(mod, mask)
        self.masks.clear()
        return self.model
