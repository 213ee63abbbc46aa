"""QuantSpace: the model's quantizer points × the bits the hardware (and the user) allow.

Each weight quantizer (``<op>.weight``) and each input-activation quantizer
(``<first consumer>.input``, shared by every op reading that tensor) gets its allowed bits:
the hardware preset's bits for the op type, mode and granularity, intersected with the user's
list. ``check`` rejects an assignment naming the offending quantizer; ``repair`` snaps to the
nearest legal value.

Bitwidth assignment modes (NNCF's ``bitwidth_assignment_mode``):

* ``liberal`` — every quantizer picks its bits independently;
* ``strict`` — an activation quantizer and the weight quantizers of the ops it feeds form one
  *adjacency group* and share one bitwidth, legal for every member.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from searchq.core.assignment import Assignment
from searchq.core.graph import ModelGraph
from searchq.core.hardware import HardwareSpec, load_hardware
from searchq.core.quant import QuantizerSpec
from searchq.errors import ConfigError, HardwareConstraintError

__all__ = ["QuantPoint", "QuantSpace", "snap"]

ASSIGNMENT_MODES = ("liberal", "strict")


@dataclass(frozen=True)
class QuantPoint:
    qname: str
    kind: str  # "weight" | "activation"
    ops: tuple[str, ...]  # the op of a weight; the consumers of an activation
    hw_types: tuple[str, ...]
    bits: tuple[int, ...]  # allowed, ascending
    mode: str
    per_channel: bool
    narrow_range: Mapping[int, bool]  # per allowed bits (NNCF: narrow range for 8-bit sym weights)
    numel: int  # weights of the layer, or activation elements per sample
    signed: bool | None = None

    def spec(self, bits: int) -> QuantizerSpec:
        return QuantizerSpec(
            bits=bits,
            mode=self.mode,
            signed=True if self.kind == "weight" else self.signed,
            per_channel=self.per_channel,
            narrow_range=self.narrow_range.get(bits, False),
            ch_axis=0 if self.kind == "weight" else 1,
        )


def snap(value: int, allowed: Sequence[int]) -> int:
    """The allowed value nearest to ``value``; ties go to the larger (more accurate) one."""
    return min(allowed, key=lambda b: (abs(b - value), -b))


@dataclass(frozen=True)
class _KindOptions:
    bits: tuple[int, ...] | None
    mode: str
    per_channel: bool
    signed: bool | None


class QuantSpace:
    """Quantizer points of a :class:`ModelGraph` under a :class:`HardwareSpec`."""

    def __init__(
        self,
        graph: ModelGraph,
        hardware: HardwareSpec | str = "trial",
        *,
        weight_bits: Iterable[int] | None = None,
        activation_bits: Iterable[int] | None = None,
        weight_mode: str = "symmetric",
        activation_mode: str = "symmetric",
        weight_per_channel: bool = True,
        activation_per_channel: bool = False,
        activation_signed: bool | None = None,
        assignment_mode: str = "liberal",
        quantize_activations: bool = True,
        skip_ops: Iterable[str] = (),
        skip_weight_ops: Iterable[str] = (),
        skip_activation_ops: Iterable[str] = (),
    ) -> None:
        if assignment_mode not in ASSIGNMENT_MODES:
            raise ConfigError(
                f"bitwidth_assignment_mode {assignment_mode!r} is not one of "
                f"{list(ASSIGNMENT_MODES)}",
                key="bitwidth_assignment_mode",
            )
        self.graph = graph
        self.hardware = load_hardware(hardware) if isinstance(hardware, str) else hardware
        self.assignment_mode = assignment_mode
        skip = set(skip_ops)
        skip_w = skip | set(skip_weight_ops)
        skip_a = skip | set(skip_activation_ops)
        w = _KindOptions(_as_bits(weight_bits), weight_mode, weight_per_channel, True)
        a = _KindOptions(
            _as_bits(activation_bits), activation_mode, activation_per_channel, activation_signed
        )
        points: list[QuantPoint] = []
        for op in graph.ops:
            if op.name not in skip_w:
                points.append(
                    self._point(op.weight_qname, "weight", (op.name,), w, op.weight_numel)
                )
        if quantize_activations:
            for g in graph.activation_groups:
                consumers = tuple(c for c in g.consumers if c not in skip_a)
                if consumers:
                    points.append(self._point(g.qname, "activation", consumers, a, g.numel))
        if not points:
            raise HardwareConstraintError(
                "every quantizable op is excluded (ignored_scopes / skip); nothing to search"
            )
        self.points: tuple[QuantPoint, ...] = tuple(points)
        self._by_name = {p.qname: p for p in points}
        self._check_user_bits(weight_bits, activation_bits)
        self.groups = self._adjacency_groups()
        self._group_bits = {g: self._common_bits(g) for g in self.groups}

    # -- construction helpers ---------------------------------------------------------------
    def _point(
        self, qname: str, kind: str, ops: tuple[str, ...], opt: _KindOptions, numel: int
    ) -> QuantPoint:
        hw_kind = "weights" if kind == "weight" else "activations"
        hw_types = tuple(dict.fromkeys(self.graph.op(o).hw_type for o in ops))
        allowed: set[int] | None = None
        for t in hw_types:
            b = set(
                self.hardware.allowed_bits(t, hw_kind, mode=opt.mode, per_channel=opt.per_channel)
            )
            allowed = b if allowed is None else allowed & b
        allowed = allowed or set()
        gran = "per-channel" if opt.per_channel else "per-tensor"
        if not allowed:
            raise HardwareConstraintError(
                f"{qname}: preset '{self.hardware.name}' allows no {opt.mode} {gran} "
                f"{hw_kind} quantizer for {'/'.join(hw_types)}; change mode / per_channel or "
                "use --hw trial"
            )
        if opt.bits is not None:
            chosen = allowed & set(opt.bits)
            if not chosen:
                raise HardwareConstraintError(
                    f"{qname} ({'/'.join(hw_types)} {hw_kind}, {opt.mode} {gran}): bits "
                    f"{list(opt.bits)} are not allowed by preset '{self.hardware.name}', which "
                    f"allows {sorted(allowed)}; pick bits from that list or use --hw trial"
                )
            allowed = chosen
        bits = tuple(sorted(allowed))
        narrow = {
            b: any(self.hardware.rules(t).narrow_range(hw_kind, b, opt.mode) for t in hw_types)
            for b in bits
        }
        return QuantPoint(
            qname=qname,
            kind=kind,
            ops=ops,
            hw_types=hw_types,
            bits=bits,
            mode=opt.mode,
            per_channel=opt.per_channel,
            narrow_range=narrow,
            numel=numel,
            signed=opt.signed,
        )

    def _check_user_bits(self, weight_bits: Iterable[int] | None, act_bits: Iterable[int] | None):
        """A listed bit that no quantizer of this model may use is a mistake, not a hint."""
        asked = set(weight_bits or ()) | set(act_bits or ())
        used = {b for p in self.points for b in p.bits}
        unused = sorted(asked - used)
        if unused:
            allowed = sorted(
                {
                    b
                    for p in self.points
                    for b in self.hardware.allowed_bits(
                        p.hw_types[0],
                        "weights" if p.kind == "weight" else "activations",
                        mode=p.mode,
                    )
                }
            )
            raise HardwareConstraintError(
                f"bits {unused} are forbidden by preset '{self.hardware.name}' for every "
                f"quantizer of this model (it allows {allowed}); remove them from bits or use "
                "--hw trial"
            )

    def _adjacency_groups(self) -> tuple[tuple[str, ...], ...]:
        groups: list[tuple[str, ...]] = []
        in_group: set[str] = set()
        for p in self.points:
            if p.kind != "activation":
                continue
            members = [p.qname] + [f"{o}.weight" for o in p.ops if f"{o}.weight" in self._by_name]
            groups.append(tuple(members))
            in_group.update(members)
        groups.extend((p.qname,) for p in self.points if p.qname not in in_group)
        return tuple(groups)

    def _common_bits(self, group: tuple[str, ...]) -> tuple[int, ...]:
        common = set(self._by_name[group[0]].bits)
        for q in group[1:]:
            common &= set(self._by_name[q].bits)
        if self.assignment_mode == "strict" and not common:
            detail = ", ".join(f"{q}: {list(self._by_name[q].bits)}" for q in group)
            raise HardwareConstraintError(
                f"strict bitwidth_assignment_mode needs one bitwidth for the group [{detail}] but "
                "no value is allowed for all of them; use bitwidth_assignment_mode 'liberal'"
            )
        return tuple(sorted(common))

    # -- queries ---------------------------------------------------------------------------
    def point(self, qname: str) -> QuantPoint:
        try:
            return self._by_name[qname]
        except KeyError:
            close = difflib.get_close_matches(qname, list(self._by_name), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise HardwareConstraintError(
                f"{qname!r} is not a quantizer of this model; {hint}"
                "`searchq show` / ModelGraph.summary() list the names"
            ) from None

    @property
    def weight_points(self) -> tuple[QuantPoint, ...]:
        return tuple(p for p in self.points if p.kind == "weight")

    @property
    def activation_points(self) -> tuple[QuantPoint, ...]:
        return tuple(p for p in self.points if p.kind == "activation")

    def group_bits(self, group: tuple[str, ...]) -> tuple[int, ...]:
        return self._group_bits[group]

    def uniform(self, bits: int) -> Assignment:
        """Every quantizer at ``bits`` (snapped to what each may use)."""
        return self.repair(
            Assignment(
                weights={p.qname: bits for p in self.weight_points},
                activations={p.qname: bits for p in self.activation_points},
            )
        )

    def maximal(self) -> Assignment:
        return self.repair(self._fill(lambda p: p.bits[-1]))

    def minimal(self) -> Assignment:
        return self.repair(self._fill(lambda p: p.bits[0]))

    def _fill(self, pick) -> Assignment:  # noqa: ANN001
        return Assignment(
            weights={p.qname: pick(p) for p in self.weight_points},
            activations={p.qname: pick(p) for p in self.activation_points},
        )

    # -- check / repair ----------------------------------------------------------------------
    def check(self, assignment: Assignment) -> None:
        """Raise :class:`HardwareConstraintError` on the first illegal or missing quantizer."""
        bits = assignment.bits
        for name in bits:
            self.point(name)
        for p in self.points:
            if p.qname not in bits:
                raise HardwareConstraintError(
                    f"{p.qname} has no bits in the assignment; allowed {list(p.bits)}"
                )
            if bits[p.qname] not in p.bits:
                raise HardwareConstraintError(
                    f"{p.qname} = {bits[p.qname]} bits is not allowed by preset "
                    f"'{self.hardware.name}' for {'/'.join(p.hw_types)} {p.kind}s "
                    f"({p.mode}); allowed {list(p.bits)}: pick one of those or use --hw trial"
                )
        if self.assignment_mode == "strict":
            for g in self.groups:
                values = {bits[q] for q in g}
                if len(values) > 1:
                    raise HardwareConstraintError(
                        f"strict mode: quantizers {list(g)} must share one bitwidth, got "
                        f"{[bits[q] for q in g]}; allowed common values {list(self.group_bits(g))}"
                    )

    def is_legal(self, assignment: Assignment) -> bool:
        try:
            self.check(assignment)
        except HardwareConstraintError:
            return False
        return True

    def repair(self, assignment: Assignment) -> Assignment:
        """Snap every quantizer to its nearest legal bits (missing ones take their maximum)."""
        given = assignment.bits
        for name in given:
            self.point(name)
        out: dict[str, int] = {}
        for p in self.points:
            out[p.qname] = snap(given[p.qname], p.bits) if p.qname in given else p.bits[-1]
        if self.assignment_mode == "strict":
            for g in self.groups:
                value = snap(max(out[q] for q in g), self.group_bits(g))
                out.update({q: value for q in g})
        return assignment.replace(
            weights={k: v for k, v in out.items() if self._by_name[k].kind == "weight"},
            activations={k: v for k, v in out.items() if self._by_name[k].kind == "activation"},
        )


def _as_bits(bits: Iterable[int] | None) -> tuple[int, ...] | None:
    if bits is None:
        return None
    out = tuple(sorted({int(b) for b in bits}))
    if not out:
        raise ConfigError("bits must list at least one value, e.g. [4, 8]", key="bits")
    bad = [b for b in out if not 2 <= b <= 16]
    if bad:
        raise ConfigError(f"bits {bad} are out of range; use values in 2..16", key="bits")
    return out
