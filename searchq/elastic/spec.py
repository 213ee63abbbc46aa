"""Typed view of NNCF's ``bootstrapNAS.training`` section (progressive shrinking).

NNCF's keys keep their meaning; where NNCF's defaults do not train a small model, searchq's
differ and say so:

* ``init_lr`` unset falls back to 3.5e-6 in NNCF — too small to move the weights; searchq uses
  ``DEFAULT_LR`` 0.15 (SGD Nesterov, momentum 0.9, batch 64, cosine over ``epochs_lr``), chosen
  on the digits ResNet-20 (0.05 / 0.1 / 0.15 / 0.2 compared below); set ``init_lr`` per stage
  for other models and batch sizes.
* width defaults: multipliers (1, 0.75, 0.5), ``min_width`` 8 (NNCF: step 32, min 32, which
  leaves 16- and 32-channel layers rigid); NNCF's own keys override.
* the default stage list is NNCF's five one-epoch stages, K / K+D / K+D(d=2) / K+D+W /
  K+D+W(w=2, reorg, bn_adapt); dimensions the model does not have are dropped from each stage.
* searchq-only keys (sandwich training after BigNAS, Yu et al. 2020, and Once-for-All):

  - ``distillation`` {``type`` softmax | mse | none (default softmax), ``temperature`` (2),
    ``inplace`` (true), ``distill_max`` (false)}: every non-maximal subnet learns from the labels
    and from a teacher: the maximal subnet's own output when that step also trains it
    (in-place distillation, no extra forward), else the original (frozen) network's output,
    computed once per step under ``no_grad`` and shared by the step's subnets. The maximal
    subnet learns from the labels (plus the original net with ``distill_max``).
  - ``sandwich`` (true): the trained subnets cycle max → min → random (min = the stage's
    smallest subnet; random = one drawn from the stage's dimensions); false: all random (NNCF).
  - ``subnets_per_step`` (``"auto"``): an integer k trains the next k members of the cycle in
    every step (k = 3: BigNAS's max + min + random). ``"auto"`` sizes a step by the stage: one
    member per step while the stage's smallest subnet keeps more than ``SANDWICH_BELOW`` (a
    quarter) of the maximal MACs (depth / kernel stages, where every subnet costs most of a
    full step); otherwise (width stages, small subnets) the whole sandwich in every step.
  - ``max_subnet_every`` (0): in steps with several members, the maximal subnet is trained only
    at every N-th sampling event, and teaches the step's others in place when it is; the other
    steps train min + random with the original network as teacher. 0 (default): never — the
    width stage trains the smallest and a random subnet per step under the frozen original
    net, as Once-for-All's progressive shrinking uses the full network (~1.3 × a plain step);
    1: BigNAS's max + min + random in every step (~2 ×).

  Measured on digits ResNet-20 (3 stages / 7 epochs; BN-recalibrated min / middle / max subnets vs
  the same architectures trained alone, per-seed std ~0.8 point; 32 seeds,
  experiments/results/elastic_sweep.md): ``max_subnet_every`` 0 +0.66 / +0.01 / +0.07 accuracy
  points at 1.14 × the plain training time (experiments/results/elastic.md); 1 (BigNAS) +0.74 /
  +0.25 / +0.21 at 1.44 ×; 2 +0.62 / −0.05 / +0.13 at ~1.3 ×. Paired, BigNAS − default: accuracy
  +0.08 / +0.24 / +0.14 (± 0.12), validation cross-entropy +0.006 / +0.014 / +0.012 (± 0.004;
  higher = worse): the default loses a quarter point of middle-subnet accuracy, gains calibration,
  and trains in 79 % of the time. The learning rate mattered more (BigNAS setting, 32 seeds,
  experiments/results/elastic.md (d)): +0.74 / +0.25 / +0.21 at 0.15, +0.32 / +0.01 / +0.23 at
  0.1, −0.26 / −0.56 / +0.09 at 0.05 (16 seeds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from searchq._frozen import thaw
from searchq.errors import ConfigError

__all__ = ["AUTO", "DEFAULT_LR", "SANDWICH_BELOW", "ElasticSpec", "StageSpec", "elastic_spec"]

DIMS = ("kernel", "depth", "width")
DEFAULT_LR = 0.15
AUTO = "auto"
SANDWICH_BELOW = 0.25  # "auto": max + min + random every step up to this MAC share of the min
_STAGE_KEYS = (
    "train_dims",
    "epochs",
    "depth_indicator",
    "width_indicator",
    "reorg_weights",
    "bn_adapt",
    "init_lr",
    "epochs_lr",
    "sample_rate",
)


@dataclass(frozen=True)
class StageSpec:
    train_dims: tuple[str, ...] = ("kernel",)
    epochs: int = 1
    depth_indicator: int = 1
    width_indicator: int = 1
    reorg_weights: bool = False
    bn_adapt: bool = False
    init_lr: float | None = None
    epochs_lr: int | None = None
    sample_rate: int = 1

    def __post_init__(self) -> None:
        bad = [d for d in self.train_dims if d not in DIMS]
        if bad:
            raise ConfigError(f"train_dims {bad} are not in {list(DIMS)}", key="train_dims")
        if self.epochs < 0:
            raise ConfigError(f"epochs {self.epochs} must be >= 0", key="epochs")
        for name in ("depth_indicator", "width_indicator"):
            if getattr(self, name) < 1 and getattr(self, name) != -1:
                raise ConfigError(
                    f"{name} {getattr(self, name)} must be >= 1 (or -1: all)", key=name
                )
        object.__setattr__(self, "sample_rate", max(1, int(self.sample_rate)))

    @property
    def lr(self) -> float:
        return DEFAULT_LR if self.init_lr is None else float(self.init_lr)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageSpec:
        extra = sorted(set(d) - set(_STAGE_KEYS))
        if extra:
            raise ConfigError(
                f"unknown stage keys {extra}; allowed {list(_STAGE_KEYS)}",
                key="schedule.list_stage_descriptions",
            )
        values = dict(d)
        if "train_dims" in values:
            values["train_dims"] = tuple(values["train_dims"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


DEFAULT_STAGES = (
    StageSpec(("kernel",), 1),
    StageSpec(("kernel", "depth"), 1, depth_indicator=1),
    StageSpec(("kernel", "depth"), 1, depth_indicator=2),
    StageSpec(("kernel", "depth", "width"), 1, depth_indicator=2, width_indicator=2),
    StageSpec(
        ("kernel", "depth", "width"),
        1,
        depth_indicator=2,
        width_indicator=2,
        reorg_weights=True,
        bn_adapt=True,
    ),
)


@dataclass(frozen=True)
class ElasticSpec:
    stages: tuple[StageSpec, ...] = DEFAULT_STAGES
    available_dims: tuple[str, ...] = DIMS
    progressivity: tuple[str, ...] = DIMS
    width_multipliers: tuple[float, ...] | None = (1.0, 0.75, 0.5)
    width_step: int = 32
    min_width: int = 8
    max_num_widths: int = -1
    filter_importance: str = "L1"
    external_importance_path: str | None = None
    max_num_kernels: int = -1
    skipped_blocks: tuple[str, ...] | None = None
    bn_adaptation_samples: int = 2000
    distillation: str = "softmax"  # "softmax" | "mse" | "none"
    temperature: float = 2.0
    subnets_per_step: int | str = "auto"  # an int >= 1, or "auto" (see the module doc)
    sandwich: bool = True  # members cycle max → min → random (BigNAS sandwich rule)
    inplace_distillation: bool = True  # the max trained in a step teaches that step's others
    distill_max: bool = False  # the maximal subnet also learns from the original net
    max_subnet_every: int = 0  # multi-member steps train the maximal subnet every N-th (0: never)
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = self.subnets_per_step
        if k != AUTO and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise ConfigError(
                f"subnets_per_step {k!r} must be an integer >= 1 or {AUTO!r}",
                key="subnets_per_step",
            )
        n = self.max_subnet_every
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(
                f"max_subnet_every {n!r} must be an integer >= 0 (1: every step, 0: never)",
                key="max_subnet_every",
            )

    def space_options(self) -> dict[str, Any]:
        return {
            "multipliers": self.width_multipliers,
            "width_step": self.width_step,
            "min_width": self.min_width,
            "max_num_widths": self.max_num_widths,
            "max_num_kernels": self.max_num_kernels,
            "skipped_blocks": self.skipped_blocks,
        }

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("stages", "extras")}
        out["stages"] = [s.to_dict() for s in self.stages]
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


def _block_name(pair: Any) -> str:
    """NNCF gives a block as [start node, end node]; the block is the module owning ``end``.

    ``ResNet/Sequential[layer1]/Bottleneck[2]/ReLU[relu]/relu__2`` → ``layer1.2``. A plain
    module name is taken as is."""
    from searchq.config.scopes import nncf_scope_to_module

    end = pair[-1] if isinstance(pair, (list, tuple)) else pair
    if not isinstance(end, str) or not end:
        raise ConfigError(
            f"skipped block {pair!r} must be [start, end] node names or a module name",
            key="depth.skipped_blocks",
        )
    if "/" not in end and "[" not in end:
        return end
    module = nncf_scope_to_module(end).module_name
    return module.rsplit(".", 1)[0] if "." in module else module


def elastic_spec(training: Mapping[str, Any] | None = None) -> ElasticSpec:
    """Build the spec from NNCF's ``bootstrapNAS.training`` mapping (all keys optional)."""
    t = thaw(training or {})
    el = t.get("elasticity", {}) or {}
    width = el.get("width", {}) or {}
    depth = el.get("depth", {}) or {}
    kernel = el.get("kernel", {}) or {}
    schedule = t.get("schedule", {}) or {}
    stages_raw = schedule.get("list_stage_descriptions")
    if stages_raw is not None and not stages_raw:
        raise ConfigError(
            "the stage list is empty; give at least one stage or drop the key",
            key="schedule.list_stage_descriptions",
        )
    stages = tuple(StageSpec.from_dict(s) for s in stages_raw) if stages_raw else DEFAULT_STAGES
    multipliers = width.get("width_multipliers")
    if multipliers is None and ("width_step" in width or "min_width" in width):
        mults: tuple[float, ...] | None = None  # NNCF's step mode when its step keys are given
    else:
        mults = tuple(multipliers) if multipliers is not None else (1.0, 0.75, 0.5)
    blocks = depth.get("skipped_blocks")
    kd = t.get("distillation", {}) or {}
    return ElasticSpec(
        stages=stages,
        available_dims=tuple(el.get("available_elasticity_dims", DIMS)),
        progressivity=tuple(t.get("progressivity_of_elasticity", DIMS)),
        width_multipliers=mults,
        width_step=int(width.get("width_step", 32)),
        min_width=int(width.get("min_width", 8)),
        max_num_widths=int(width.get("max_num_widths", -1)),
        filter_importance=str(width.get("filter_importance", "L1")),
        external_importance_path=width.get("external_importance_path"),
        max_num_kernels=int(kernel.get("max_num_kernels", -1)),
        skipped_blocks=tuple(_block_name(b) for b in blocks) if blocks is not None else None,
        bn_adaptation_samples=int(
            (t.get("batchnorm_adaptation", {}) or {}).get("num_bn_adaptation_samples", 2000)
        ),
        distillation=str(kd.get("type", "softmax")),
        temperature=float(kd.get("temperature", 2.0)),
        subnets_per_step=_subnets_per_step(t.get("subnets_per_step", AUTO)),
        sandwich=bool(t.get("sandwich", True)),
        inplace_distillation=bool(kd.get("inplace", True)),
        distill_max=bool(kd.get("distill_max", False)),
        max_subnet_every=t.get("max_subnet_every", 0),  # type checked by ElasticSpec
    )


def _subnets_per_step(value: Any) -> int | str:
    return value if value == AUTO else int(value)


def with_epochs(spec: ElasticSpec, epochs: int) -> ElasticSpec:
    """Every stage set to ``epochs`` epochs (``--epochs N`` for quick runs)."""
    from dataclasses import replace

    stages = tuple(replace(s, epochs=epochs, epochs_lr=None) for s in spec.stages)
    return replace(spec, stages=stages)


def stage_dims(stage: StageSpec, available: Sequence[str]) -> tuple[str, ...]:
    return tuple(d for d in stage.train_dims if d in available)
