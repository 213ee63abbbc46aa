"""The elastic search space: width per channel group, kernel per conv, skippable blocks.

Choice lists follow NNCF 2.x BootstrapNAS:

* width (``elastic_width.py``): with ``width_multipliers`` each multiplier m gives
  ``⌊max·m⌋`` rounded down to a multiple of 8 (at least ``min_width``), the full width first;
  otherwise ``max, max − width_step, …`` down to ``min_width``; at most ``max_num_widths``
  values (−1: no cap); a group no wider than ``min_width`` stays fixed. NNCF's defaults
  (``min_width`` 32, ``width_step`` 32) leave every 16- and 32-channel layer rigid, so searchq's
  defaults are multipliers (1, 0.75, 0.5) with ``min_width`` 8 — NNCF's keys still override.
* kernel: odd sizes max, max − 2, … ≥ 3, at most ``max_num_kernels`` (−1: no cap).
* depth: residual blocks with equal input and output shape (ModelGraph) or the blocks named in
  ``skipped_blocks``; with ``depth_indicator`` d only the last d blocks of each stage may be
  skipped.

A subnet config is JSON: ``{"width": {group: channels}, "depth": [skipped block, …],
"kernel": {conv: size}}`` — the same object as ``result.json``'s ``assignment.subnet``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from searchq.core.graph import ModelGraph
from searchq.errors import ConfigError

__all__ = [
    "DepthBlock",
    "ElasticSpace",
    "SubnetConfig",
    "WidthGroup",
    "kernel_choices",
    "width_choices",
]

ALIGN = 8  # NNCF's alignment constant for multiplier widths


def width_choices(
    max_width: int,
    *,
    multipliers: Sequence[float] | None = (1.0, 0.75, 0.5),
    width_step: int = 32,
    min_width: int = 8,
    max_num_widths: int = -1,
) -> list[int]:
    """NNCF's width list for a layer of ``max_width`` channels (largest first)."""
    if min_width < 1:
        raise ConfigError(f"min_width {min_width} must be >= 1 channel", key="width.min_width")
    if max_width <= min_width:
        return [max_width]
    out: list[int] = []
    if not multipliers:
        if width_step < 1:
            raise ConfigError(f"width_step {width_step} must be >= 1", key="width.width_step")
        w = max_width
        while w >= min_width and len(out) != max_num_widths:
            out.append(w)
            w -= width_step
        return out
    ms = sorted(multipliers, reverse=True)
    bad = [m for m in ms if not 0 < m <= 1]
    if bad:
        raise ConfigError(
            f"width multipliers {bad} must be in (0, 1]", key="width.width_multipliers"
        )
    if ms[0] < 1:
        out.append(max_width)
    for m in ms:
        if len(out) == max_num_widths:
            break
        w = int(max_width * m)
        w = max(w - w % ALIGN, min_width)
        if w not in out and w <= max_width:
            out.append(w)
    return out


def kernel_choices(max_kernel: int, max_num_kernels: int = -1) -> list[int]:
    """Odd kernel sizes from the layer's own down to 3 (largest first)."""
    if max_kernel % 2 == 0:
        raise ConfigError(
            f"kernel size {max_kernel} is even; elastic kernels need odd sizes (centre crop)",
            key="kernel",
        )
    out = list(range(max_kernel, 2, -2)) or [max_kernel]
    return out if max_num_kernels < 0 else out[: max(1, max_num_kernels)]


@dataclass(frozen=True)
class WidthGroup:
    key: str  # its first producer's name
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    depthwise: tuple[str, ...]
    norms: tuple[str, ...]
    choices: tuple[int, ...]  # largest first

    @property
    def max(self) -> int:
        return self.choices[0]


@dataclass(frozen=True)
class DepthBlock:
    name: str
    stage: str
    position: int  # 0-based among the skippable blocks of its stage, from the stage's end


@dataclass
class SubnetConfig:
    width: dict[str, int] = field(default_factory=dict)
    depth: list[str] = field(default_factory=list)  # skipped blocks
    kernel: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"width": dict(self.width), "depth": list(self.depth), "kernel": dict(self.kernel)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SubnetConfig:
        if not isinstance(d, Mapping):
            raise ConfigError("a subnet config is an object {width, depth, kernel}", key="subnet")
        extra = sorted(set(d) - {"width", "depth", "kernel"})
        if extra:
            raise ConfigError(
                f"unknown keys {extra}; a subnet has width, depth, kernel", key="subnet"
            )
        return cls(
            width={str(k): int(v) for k, v in dict(d.get("width", {})).items()},
            depth=[str(b) for b in d.get("depth", [])],
            kernel={str(k): int(v) for k, v in dict(d.get("kernel", {})).items()},
        )

    def key(self) -> tuple:
        return (
            tuple(sorted(self.width.items())),
            tuple(sorted(self.depth)),
            tuple(sorted(self.kernel.items())),
        )


class ElasticSpace:
    """Width groups, kernel choices and skippable blocks of one model."""

    def __init__(
        self,
        widths: Sequence[WidthGroup],
        kernels: Mapping[str, Sequence[int]],
        blocks: Sequence[DepthBlock],
    ) -> None:
        self.widths = {g.key: g for g in widths}
        self.kernels = {k: tuple(v) for k, v in kernels.items()}
        self.blocks = {b.name: b for b in blocks}

    @classmethod
    def build(
        cls,
        graph: ModelGraph,
        *,
        dims: Iterable[str] = ("width", "depth", "kernel"),
        multipliers: Sequence[float] | None = (1.0, 0.75, 0.5),
        width_step: int = 32,
        min_width: int = 8,
        max_num_widths: int = -1,
        max_num_kernels: int = -1,
        skipped_blocks: Sequence[str] | None = None,
    ) -> ElasticSpace:
        dims = set(dims)
        widths = []
        if "width" in dims:
            for g in graph.channel_groups:
                if g.rigid:
                    continue
                choices = width_choices(
                    g.channels,
                    multipliers=multipliers,
                    width_step=width_step,
                    min_width=min_width,
                    max_num_widths=max_num_widths,
                )
                if len(choices) > 1:
                    widths.append(
                        WidthGroup(
                            g.producers[0],
                            g.producers,
                            g.consumers,
                            g.depthwise,
                            g.norms,
                            tuple(choices),
                        )
                    )
        kernels: dict[str, list[int]] = {}
        if "kernel" in dims:
            for op in graph.ops:
                if op.kernel_size and op.kernel_size[0] >= 3 and op.kernel_size[0] % 2 == 1:
                    ks = kernel_choices(op.kernel_size[0], max_num_kernels)
                    if len(ks) > 1:
                        kernels[op.name] = ks
        blocks: list[DepthBlock] = []
        if "depth" in dims:
            available = {b.name: b for b in graph.blocks}
            names = list(available) if skipped_blocks is None else list(skipped_blocks)
            for name in names:
                if name not in available:
                    close = difflib.get_close_matches(name, list(available), n=1)
                    hint = f"; did you mean {close[0]!r}" if close else ""
                    raise ConfigError(
                        f"block {name!r} is not a skippable residual block of this model{hint}; "
                        f"skippable blocks: {list(available)[:6]}",
                        key="depth.skipped_blocks",
                    )
            stages: dict[str, list[str]] = {}
            for name in names:
                stages.setdefault(available[name].stage, []).append(name)
            for stage, members in stages.items():
                for pos, name in enumerate(reversed(members)):
                    blocks.append(DepthBlock(name, stage, pos))
            order = {name: i for i, name in enumerate(available)}
            blocks.sort(key=lambda b: order[b.name])
        return cls(widths, kernels, blocks)

    # -- configs ------------------------------------------------------------------------------
    def maximal(self) -> SubnetConfig:
        return SubnetConfig(
            {k: g.max for k, g in self.widths.items()},
            [],
            {k: v[0] for k, v in self.kernels.items()},
        )

    def minimal(
        self, *, width_indicator: int = -1, depth_indicator: int = -1, kernel_indicator: int = -1
    ) -> SubnetConfig:
        return SubnetConfig(
            {k: _cap(g.choices, width_indicator)[-1] for k, g in self.widths.items()},
            [b.name for b in self.skippable(depth_indicator)],
            {k: _cap(v, kernel_indicator)[-1] for k, v in self.kernels.items()},
        )

    def skippable(self, depth_indicator: int = -1) -> list[DepthBlock]:
        return [
            b for b in self.blocks.values() if depth_indicator < 0 or b.position < depth_indicator
        ]

    def sample(
        self,
        rng: np.random.Generator,
        *,
        dims: Iterable[str] = ("width", "depth", "kernel"),
        width_indicator: int = -1,
        depth_indicator: int = -1,
        kernel_indicator: int = -1,
    ) -> SubnetConfig:
        dims = set(dims)
        cfg = self.maximal()
        if "width" in dims:
            for k, g in self.widths.items():
                opts = _cap(g.choices, width_indicator)
                cfg.width[k] = int(opts[int(rng.integers(len(opts)))])
        if "kernel" in dims:
            for k, v in self.kernels.items():
                opts = _cap(v, kernel_indicator)
                cfg.kernel[k] = int(opts[int(rng.integers(len(opts)))])
        if "depth" in dims:
            cfg.depth = [b.name for b in self.skippable(depth_indicator) if rng.random() < 0.5]
        return cfg

    def validate(self, cfg: SubnetConfig) -> SubnetConfig:
        """Fill missing entries with the maximum and reject values outside the space."""
        out = self.maximal()
        for k, w in cfg.width.items():
            if k not in self.widths:
                raise ConfigError(
                    f"width group {k!r} is not elastic; groups: {list(self.widths)[:6]}",
                    key="subnet.width",
                )
            if w not in self.widths[k].choices:
                raise ConfigError(
                    f"width {w} of {k!r} is not one of {list(self.widths[k].choices)}",
                    key="subnet.width",
                )
            out.width[k] = w
        for k, s in cfg.kernel.items():
            if k not in self.kernels or s not in self.kernels[k]:
                allowed = list(self.kernels.get(k, ()))
                raise ConfigError(
                    f"kernel {s} of {k!r} is not elastic there (allowed {allowed})",
                    key="subnet.kernel",
                )
            out.kernel[k] = s
        for b in cfg.depth:
            if b not in self.blocks:
                raise ConfigError(
                    f"block {b!r} cannot be skipped; skippable: {list(self.blocks)}",
                    key="subnet.depth",
                )
        out.depth = [b for b in self.blocks if b in set(cfg.depth)]
        return out

    def size(self) -> int:
        n = 2 ** len(self.blocks)
        for g in self.widths.values():
            n *= len(g.choices)
        for v in self.kernels.values():
            n *= len(v)
        return n

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": {k: list(g.choices) for k, g in self.widths.items()},
            "kernel": {k: list(v) for k, v in self.kernels.items()},
            "depth": [
                {"block": b.name, "stage": b.stage, "position_from_end": b.position}
                for b in self.blocks.values()
            ],
            "size": self.size(),
        }


def _cap(choices: Sequence[int], indicator: int) -> Sequence[int]:
    return choices if indicator < 0 else choices[: max(1, indicator)]
