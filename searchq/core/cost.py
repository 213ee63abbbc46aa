"""Costs of an assignment: bit complexity, model size, MACs, parameters, latency.

Bit-complexity ratio (NNCF's HAWQ ``compression_ratio``)::

    ratio = Σ_i MACs_i · 8  /  Σ_i MACs_i · max(w_bits_i, a_bits_i)

over the quantized ops, where ``a_bits_i`` is the bits of op i's input quantizer (an op without
one counts its weight bits only). Uniform 8 bit gives 1.0; uniform 4 bit gives 2.0.

Model-size ratio (NNCF's AutoQ ``compression_ratio``)::

    size_ratio = Σ_i n_i · w_bits_i  /  Σ_i n_i · 32

over the quantized weight tensors (``n_i`` weights each); uniform 8 bit gives 0.25.

Latency: a JSON table ``{op_name_or_kind: {w_bits: {a_bits: ms}}}`` looked up per op (exact
module name first, then its kind such as ``conv2d``), summed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from searchq._io import read_json_file
from searchq.core.assignment import Assignment
from searchq.core.graph import ModelGraph
from searchq.errors import ConfigError

__all__ = [
    "CostModel",
    "LatencyTable",
    "bit_complexity",
    "bit_complexity_ratio",
    "size_ratio",
]

FP32_BITS = 32


def _op_bits(graph: ModelGraph, assignment: Assignment) -> list[tuple[int, int, int | None]]:
    """(macs, w_bits, a_bits or None) for every op with a weight quantizer."""
    out = []
    for op in graph.ops:
        w = assignment.weights.get(op.weight_qname)
        if w is None:
            continue
        out.append((op.macs, w, assignment.activations.get(op.input_group)))
    return out


def bit_complexity(graph: ModelGraph, assignment: Assignment) -> int:
    """Σ MACs · max(w_bits, a_bits) over the quantized ops."""
    return sum(m * max(w, a if a is not None else w) for m, w, a in _op_bits(graph, assignment))


def bit_complexity_ratio(graph: ModelGraph, assignment: Assignment) -> float:
    ops = _op_bits(graph, assignment)
    if not ops:
        return 1.0
    int8 = sum(m * 8 for m, _, _ in ops)
    return int8 / bit_complexity(graph, assignment)


def size_ratio(graph: ModelGraph, assignment: Assignment) -> float:
    num = den = 0
    for op in graph.ops:
        w = assignment.weights.get(op.weight_qname)
        if w is not None:
            num += op.weight_numel * w
            den += op.weight_numel * FP32_BITS
    return num / den if den else 1.0


@dataclass(frozen=True)
class LatencyTable:
    """Per-op latency in milliseconds by (w_bits, a_bits)."""

    table: Mapping[str, Mapping[int, Mapping[int, float]]]
    source: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        raw = read_json_file(path, what="latency table", key="latency_table")
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: object, *, source: str | None = None) -> LatencyTable:
        form = '{"op": {"w_bits": {"a_bits": ms}}}'
        if not isinstance(raw, Mapping):
            raise ConfigError(f"a latency table is an object {form}", file=source)
        table: dict[str, dict[int, dict[int, float]]] = {}
        for op, by_w in raw.items():
            if not isinstance(by_w, Mapping):
                raise ConfigError(f"must be an object {form}", key=str(op), file=source)
            table[op] = {}
            for w, by_a in by_w.items():
                if not isinstance(by_a, Mapping):
                    raise ConfigError(f"must be an object {form}", key=f"{op}.{w}", file=source)
                try:
                    table[op][int(w)] = {int(a): float(ms) for a, ms in by_a.items()}
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"bits must be integers and latencies numbers, as in {form}",
                        key=f"{op}.{w}",
                        file=source,
                    ) from None
        return cls(table=table, source=source)

    def op_latency(self, name: str, kind: str, w_bits: int, a_bits: int) -> float:
        entry = self.table.get(name) or self.table.get(kind)
        if entry is None:
            raise ConfigError(
                f"latency table has no entry for op {name!r} (or its kind {kind!r}); add one",
                file=self.source,
            )
        try:
            return entry[w_bits][a_bits]
        except KeyError:
            raise ConfigError(
                f"latency table lacks w_bits {w_bits} / a_bits {a_bits} for {name!r}; "
                f"it has w_bits {sorted(entry)}",
                file=self.source,
            ) from None

    def latency(self, graph: ModelGraph, assignment: Assignment) -> float:
        total = 0.0
        for op in graph.ops:
            w = assignment.weights.get(op.weight_qname, FP32_BITS)
            a = assignment.activations.get(op.input_group, w)
            total += self.op_latency(op.name, op.kind, w, a)
        return total


class CostModel:
    """All costs of assignments on one graph, with the FP32 / INT8 references."""

    def __init__(self, graph: ModelGraph, latency: LatencyTable | None = None) -> None:
        self.graph = graph
        self.latency_table = latency

    def bit_complexity_ratio(self, a: Assignment) -> float:
        return bit_complexity_ratio(self.graph, a)

    def size_ratio(self, a: Assignment) -> float:
        return size_ratio(self.graph, a)

    def size_bytes(self, a: Assignment) -> float:
        """Bytes of the quantized weights (float weights of unquantized ops not counted)."""
        return sum(
            op.weight_numel * a.weights[op.weight_qname] / 8
            for op in self.graph.ops
            if op.weight_qname in a.weights
        )

    @property
    def macs(self) -> int:
        return self.graph.total_macs

    @property
    def params(self) -> int:
        return sum(op.params for op in self.graph.ops)

    def latency_ms(self, a: Assignment) -> float:
        if self.latency_table is None:
            raise ConfigError("no latency table given; pass --latency-table FILE")
        return self.latency_table.latency(self.graph, a)

    def summary(self, a: Assignment) -> dict[str, float]:
        out = {
            "bit_complexity_ratio": self.bit_complexity_ratio(a),
            "size_ratio": self.size_ratio(a),
            "size_bytes": self.size_bytes(a),
            "macs": float(self.macs),
        }
        if self.latency_table is not None:
            out["latency_ms"] = self.latency_ms(a)
        return out
