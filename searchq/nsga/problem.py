"""The subnet (and bit) search problem: integer encoding, objectives, cached evaluation.

Variables (all integers, lower bound 0):

* one per elastic width group — index into its width choices (largest first);
* one per elastic-kernel conv — index into its kernel choices;
* ONE PER SKIPPABLE BLOCK (within the trained ``depth_indicator``) — 1 = skipped; NNCF encoded
  depth as one categorical index over all 2^N block subsets, which crossover cannot exploit;
* with bits (joint search, APQ-style): one per quantizer — index into its allowed bits.

Objectives, both minimised: ``−accuracy`` and a cost — MACs (subnet only), or bit operations
Σ MACs·max(w, a) when bits are searched, reported as the ratio to the maximal subnet at INT8.
An evaluation activates the subnet (and the bits, through the shared quantization core),
recalibrates BatchNorm on fixed samples, and measures accuracy; results are cached by the
decoded configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor, nn

from searchq.core.assignment import Assignment
from searchq.core.bn import adapt_batchnorm
from searchq.core.insert import QuantizedModel
from searchq.elastic.space import SubnetConfig
from searchq.elastic.supernet import Supernet

__all__ = ["Encoding", "Evaluation", "SubnetProblemCore"]


@dataclass(frozen=True)
class Encoding:
    """Integer genome ↔ (subnet config, bits)."""

    widths: tuple[tuple[str, tuple[int, ...]], ...]
    kernels: tuple[tuple[str, tuple[int, ...]], ...]
    blocks: tuple[str, ...]
    bits: tuple[tuple[str, str, tuple[int, ...]], ...] = ()  # (qname, kind, allowed)

    @classmethod
    def build(
        cls,
        supernet: Supernet,
        *,
        width_indicator: int = -1,
        depth_indicator: int = -1,
        qmodel: QuantizedModel | None = None,
    ) -> Encoding:
        space = supernet.space
        widths = tuple(
            (k, tuple(g.choices if width_indicator < 0 else g.choices[:width_indicator]))
            for k, g in space.widths.items()
        )
        kernels = tuple((k, tuple(v)) for k, v in space.kernels.items())
        blocks = tuple(b.name for b in space.skippable(depth_indicator))
        bits: tuple[tuple[str, str, tuple[int, ...]], ...] = ()
        if qmodel is not None:
            bits = tuple((p.qname, p.kind, tuple(p.bits)) for p in qmodel.space.points)
        return cls(widths, kernels, blocks, bits)

    @property
    def n_var(self) -> int:
        return len(self.widths) + len(self.kernels) + len(self.blocks) + len(self.bits)

    @property
    def upper(self) -> np.ndarray:
        ups = [len(c) - 1 for _, c in self.widths] + [len(c) - 1 for _, c in self.kernels]
        ups += [1] * len(self.blocks) + [len(b) - 1 for _, _, b in self.bits]
        return np.asarray(ups, dtype=int)

    def decode(self, x: Sequence[float] | np.ndarray) -> tuple[SubnetConfig, Assignment | None]:
        v = [int(round(float(t))) for t in x]
        i = 0
        width = {}
        for key, choices in self.widths:
            width[key] = choices[min(max(v[i], 0), len(choices) - 1)]
            i += 1
        kernel = {}
        for key, choices in self.kernels:
            kernel[key] = choices[min(max(v[i], 0), len(choices) - 1)]
            i += 1
        depth = []
        for name in self.blocks:
            if v[i] >= 1:
                depth.append(name)
            i += 1
        cfg = SubnetConfig(width, depth, kernel)
        if not self.bits:
            return cfg, None
        weights: dict[str, int] = {}
        acts: dict[str, int] = {}
        for qname, kind, allowed in self.bits:
            b = allowed[min(max(v[i], 0), len(allowed) - 1)]
            (weights if kind == "weight" else acts)[qname] = b
            i += 1
        return cfg, Assignment(weights=weights, activations=acts)

    def encode(self, cfg: SubnetConfig, bits: Assignment | None = None) -> np.ndarray:
        x = [choices.index(cfg.width[key]) for key, choices in self.widths]
        x += [choices.index(cfg.kernel[key]) for key, choices in self.kernels]
        skipped = set(cfg.depth)
        x += [1 if name in skipped else 0 for name in self.blocks]
        if self.bits:
            assert bits is not None
            all_bits = bits.bits
            x += [allowed.index(all_bits[q]) for q, _, allowed in self.bits]
        return np.asarray(x, dtype=int)


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    cost: float
    macs: int
    bit_ops: float | None
    metrics: Mapping[str, float]


class SubnetProblemCore:
    """Evaluates decoded configurations (cached) for any optimiser (pymoo or optuna)."""

    def __init__(
        self,
        supernet: Supernet,
        encoding: Encoding,
        evaluator: Callable[[nn.Module], Mapping[str, float]],
        bn_samples: list[Tensor],
        *,
        qmodel: QuantizedModel | None = None,
        cost: str = "macs",
    ) -> None:
        self.supernet, self.encoding, self.evaluator = supernet, encoding, evaluator
        self.bn_samples = bn_samples
        self.qmodel = qmodel
        self.cost_kind = cost
        self.cache: dict[tuple, Evaluation] = {}
        self.max_macs = supernet.macs(supernet.maximal())
        self.history: list[tuple[np.ndarray, Evaluation]] = []

    def key(self, cfg: SubnetConfig, bits: Assignment | None) -> tuple:
        return (cfg.key(), bits.key() if bits is not None else None)

    def bit_ops(self, cfg: SubnetConfig, bits: Assignment) -> float:
        per_op = self.supernet.op_macs(cfg)
        graph = self.supernet.graph
        total = 0.0
        for op in graph.ops:
            macs = per_op.get(op.name, 0)
            w = bits.weights.get(op.weight_qname, 32)
            a = bits.activations.get(op.input_group, w)
            total += macs * max(w, a)
        return total

    def cost(self, cfg: SubnetConfig, bits: Assignment | None) -> tuple[float, int, float | None]:
        macs = self.supernet.macs(cfg)
        if bits is None:
            return macs / 1e6, macs, None  # MMACs
        bops = self.bit_ops(cfg, bits)
        return bops / (self.max_macs * 8), macs, bops  # 1.0 = maximal subnet at INT8

    def evaluate(self, x: Sequence[float] | np.ndarray) -> Evaluation:
        cfg, bits = self.encoding.decode(x)
        key = self.key(cfg, bits)
        if key not in self.cache:
            self.cache[key] = self._measure(cfg, bits)
        result = self.cache[key]
        self.history.append((np.asarray(x, dtype=int), result))
        return result

    def _measure(self, cfg: SubnetConfig, bits: Assignment | None) -> Evaluation:
        self.supernet.activate(cfg)
        if self.qmodel is not None and bits is not None:
            self.qmodel.set_bits(self.qmodel.space.repair(bits))
        n = sum(int(t.shape[0]) for t in self.bn_samples)
        adapt_batchnorm(self.supernet.model, self.bn_samples, n)
        metrics = {k: float(v) for k, v in self.evaluator(self.supernet.model).items()}
        cost, macs, bops = self.cost(cfg, bits)
        return Evaluation(metrics["accuracy"], cost, macs, bops, metrics)


def decode_row(encoding: Encoding, x: Sequence[float]) -> dict[str, Any]:
    cfg, bits = encoding.decode(x)
    out: dict[str, Any] = {"subnet": cfg.to_dict()}
    if bits is not None:
        out["bits"] = bits.to_dict()
    return out
