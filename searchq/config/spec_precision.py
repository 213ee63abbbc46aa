"""Specs of ``compression.initializer.precision``: HAWQ, AutoQ and manual bitwidths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from searchq.config._common import (
    KeyPath,
    check_bool,
    check_choice,
    check_int,
    check_keys,
    check_number,
    format_path,
    prefixed,
    short_repr,
)
from searchq.config.warn import warn_once
from searchq.errors import ConfigError

__all__ = ["AutoqSpec", "HawqSpec", "ManualSpec", "PrecisionSpec", "precision_from_dict"]

MIN_BITS, MAX_BITS = 2, 16


def _bits_tuple(key: str, value: object) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(
            f"got {short_repr(value)}; expected a non-empty list of bitwidths, e.g. [4, 8]", key=key
        )
    bits = [check_int(key, b, low=MIN_BITS, high=MAX_BITS) for b in value]
    if len(set(bits)) != len(bits):
        raise ConfigError(
            f"{short_repr(list(value))} lists a bitwidth twice; list each once", key=key
        )
    return tuple(sorted(bits))


def _explicit(data: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(k for k in data if k != "type")


TRACE_METHODS = ("auto", "gauss_newton", "hutchinson")


@dataclass(frozen=True)
class HawqSpec:
    """HAWQ-v2 mixed precision (Dong et al. 2020): Hessian-trace-weighted quantization noise.

    ``compression_ratio`` is NNCF's bit-complexity ratio: Σ MACs·8 / Σ MACs·max(w_bits, a_bits).
    Hutchinson trace estimation runs ``num_data_points`` samples for at most ``iter_number``
    iterations and stops by ``stop``: ``"pick"`` (searchq default) when the chosen bits are stable
    under the traces' remaining uncertainty (expected Σ Ω regret below ``pick_tolerance``),
    ``"stderr"`` when every layer's standard error falls below ``stderr_fraction`` of its mean,
    ``"tolerance"`` (NNCF's rule) when the relative change of the mean trace falls below
    ``tolerance``. ``deflation_rank`` > 0 traces the top Hessian subspace exactly (Hutch++).
    ``batch_size`` sets the Hutchinson batch size independently of training (None: all
    ``num_data_points`` at once, at most 256). ``selection="exact"`` searches all assignments;
    ``"monotone"`` restricts to NNCF's non-decreasing-in-trace-order ones.
    ``activation_sensitivity`` (searchq default true) adds the activations' Ω_a(b) =
    avgTrace(H_x) · ‖x − Q_b(x)‖² (HAWQ-V2 §3.3) — the exact Gauss–Newton trace when the model has
    at most 128 outputs per sample, else Hutchinson with ``activation_probes`` probes — so the
    activation bits derived from the weights are no longer free in the objective; false
    reproduces NNCF's weights-only Σ Ω.
    ``trace_method`` (searchq only): ``"auto"`` (default) computes the weight traces exactly,
    without probes, when the network is piecewise linear after every quantized layer and has at
    most 128 outputs per sample (:mod:`searchq.hawq.gauss_newton`) and runs Hutchinson
    otherwise; ``"hutchinson"`` always estimates (NNCF's method; ``iter_number``, ``tolerance``,
    ``stop`` and the other estimator keys apply to it only); ``"gauss_newton"`` always computes
    the Gauss–Newton trace (the Hessian trace's positive-semidefinite part where the network is
    not piecewise linear).
    ``explicit_keys`` records which keys the user wrote, so later code can tell a default from a
    user choice (e.g. when the hardware preset forbids some of ``bits``).
    """

    bits: tuple[int, ...] = (2, 4, 8)
    num_data_points: int = 100
    iter_number: int = 200
    tolerance: float = 1e-4
    compression_ratio: float = 1.5
    dump_init_precision_data: bool = False
    bitwidth_assignment_mode: str = "liberal"
    traces_per_layer_path: str | None = None
    batch_size: int | None = None
    selection: str = "exact"
    stop: str = "pick"
    stderr_fraction: float = 0.05
    pick_tolerance: float = 0.02
    deflation_rank: int = 16
    activation_sensitivity: bool = True
    activation_probes: int = 4
    trace_method: str = "auto"
    explicit_keys: frozenset[str] = field(default=frozenset(), compare=False)

    KEYS = (
        "type", "bits", "num_data_points", "iter_number", "tolerance", "compression_ratio",
        "dump_init_precision_data", "bitwidth_assignment_mode", "traces_per_layer_path",
        "batch_size", "selection", "stop", "stderr_fraction", "pick_tolerance", "deflation_rank",
        "activation_sensitivity", "activation_probes", "trace_method",
    )  # fmt: skip

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "bits", _bits_tuple("bits", self.bits))
        set_(self, "num_data_points", check_int("num_data_points", self.num_data_points, low=1))
        set_(self, "iter_number", check_int("iter_number", self.iter_number, low=1))
        set_(self, "tolerance", check_number("tolerance", self.tolerance, low=0))
        set_(
            self,
            "compression_ratio",
            check_number("compression_ratio", self.compression_ratio, low=0, low_open=True),
        )
        check_bool("dump_init_precision_data", self.dump_init_precision_data)
        check_choice(
            "bitwidth_assignment_mode", self.bitwidth_assignment_mode, ("liberal", "strict")
        )
        if self.traces_per_layer_path is not None and not (
            isinstance(self.traces_per_layer_path, str) and self.traces_per_layer_path
        ):
            raise ConfigError(
                f"got {short_repr(self.traces_per_layer_path)}; expected a file path string",
                key="traces_per_layer_path",
            )
        if self.batch_size is not None:
            set_(self, "batch_size", check_int("batch_size", self.batch_size, low=1))
        check_choice("selection", self.selection, ("exact", "monotone"))
        check_choice("stop", self.stop, ("pick", "stderr", "tolerance"))
        set_(
            self,
            "pick_tolerance",
            check_number("pick_tolerance", self.pick_tolerance, low=0, high=1, low_open=True),
        )
        set_(self, "deflation_rank", check_int("deflation_rank", self.deflation_rank, low=0))
        check_bool("activation_sensitivity", self.activation_sensitivity)
        check_choice("trace_method", self.trace_method, TRACE_METHODS)
        set_(
            self,
            "activation_probes",
            check_int("activation_probes", self.activation_probes, low=1),
        )
        set_(
            self,
            "stderr_fraction",
            check_number("stderr_fraction", self.stderr_fraction, low=0, high=1, low_open=True),
        )
        set_(self, "explicit_keys", frozenset(self.explicit_keys))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: KeyPath = ()) -> HawqSpec:
        with prefixed(path):
            values = dict(check_keys(data, cls.KEYS))
            values.pop("type", None)
            if "tolerance" in values and "stop" not in values:
                warn_once(
                    format_path((*path, "tolerance")) or "tolerance",
                    'only used with "stop": "tolerance" (NNCF\'s rule); searchq\'s default stop '
                    'rule is \'pick\' — add "stop": "tolerance" to keep NNCF\'s behaviour',
                )
            return cls(**values, explicit_keys=_explicit(data))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "hawq", "bits": list(self.bits)}
        for name in self.KEYS[2:]:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True)
class AutoqSpec:
    """AutoQ (Lou et al. 2019): a DDPG agent picks bits per quantizer under a model-size budget.

    ``compression_ratio`` here is model size relative to FP32 (0.25 = uniform INT8). NNCF's default
    ``iter_number`` of 0 crashes (no episode ever sets a best policy); searchq uses 300 episodes,
    the value of every NNCF AutoQ example. The first ``warmup_iter_number`` episodes act randomly.
    ``overlap_updates`` (searchq only): the agent's gradient updates of an episode run in a
    child process (Linux; elsewhere in this process) while that episode's assignment is
    evaluated, on the replay buffer as it was before the episode — a policy lag of one episode;
    same seed → same run. It needs a core the evaluation leaves free. ``false`` runs them after
    the evaluation on the buffer including the episode, in HAQ's order.
    """

    bits: tuple[int, ...] = (2, 4, 8)
    iter_number: int = 300
    compression_ratio: float = 0.15
    eval_subset_ratio: float = 1.0
    warmup_iter_number: int = 20
    dump_init_precision_data: bool = False
    overlap_updates: bool = True
    explicit_keys: frozenset[str] = field(default=frozenset(), compare=False)

    KEYS = (
        "type", "bits", "iter_number", "compression_ratio", "eval_subset_ratio",
        "warmup_iter_number", "dump_init_precision_data", "overlap_updates",
    )  # fmt: skip

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "bits", _bits_tuple("bits", self.bits))
        set_(self, "iter_number", check_int("iter_number", self.iter_number, low=1))
        if (
            isinstance(self.compression_ratio, (int, float))
            and not isinstance(self.compression_ratio, bool)
            and self.compression_ratio > 1
        ):
            raise ConfigError(
                f"{self.compression_ratio} is out of range for autoq; expected a number in (0, 1] "
                "(model size / FP32 size, 0.25 = uniform INT8) — values > 1 are HAWQ's ratio",
                key="compression_ratio",
            )
        set_(
            self,
            "compression_ratio",
            check_number("compression_ratio", self.compression_ratio, low=0, high=1, low_open=True),
        )
        set_(
            self,
            "eval_subset_ratio",
            check_number("eval_subset_ratio", self.eval_subset_ratio, low=0, high=1, low_open=True),
        )
        set_(
            self,
            "warmup_iter_number",
            check_int("warmup_iter_number", self.warmup_iter_number, low=0),
        )
        check_bool("dump_init_precision_data", self.dump_init_precision_data)
        check_bool("overlap_updates", self.overlap_updates)
        set_(self, "explicit_keys", frozenset(self.explicit_keys))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: KeyPath = ()) -> AutoqSpec:
        with prefixed(path):
            values = dict(check_keys(data, cls.KEYS))
            values.pop("type", None)
            return cls(**values, explicit_keys=_explicit(data))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "autoq", "bits": list(self.bits)}
        out.update({name: getattr(self, name) for name in self.KEYS[2:]})
        return out


@dataclass(frozen=True)
class ManualSpec:
    """Bitwidths given per quantizer, as NNCF's ``bitwidth_per_scope`` pairs ``[bits, scope]``.

    Scopes use NNCF's quantizer ids (``ResNet/NNCFConv2d[conv1]/conv2d_0|WEIGHT``,
    ``/nncf_model_input_0|OUTPUT``); :func:`searchq.config.nncf_scope_to_module` maps them to
    modules.
    """

    bitwidth_per_scope: tuple[tuple[int, str], ...] = ()

    KEYS = ("type", "bitwidth_per_scope")

    def __post_init__(self) -> None:
        if not isinstance(self.bitwidth_per_scope, (list, tuple)):
            raise ConfigError(
                f"got {short_repr(self.bitwidth_per_scope)}; expected a list of [bits, scope]",
                key="bitwidth_per_scope",
            )
        pairs: list[tuple[int, str]] = []
        seen: dict[str, int] = {}
        for index, pair in enumerate(self.bitwidth_per_scope):
            key = f"bitwidth_per_scope[{index}]"
            if not (
                isinstance(pair, (list, tuple))
                and len(pair) == 2
                and isinstance(pair[1], str)
                and pair[1]
            ):
                raise ConfigError(
                    f"got {short_repr(pair)}; expected a [bits, scope] pair like "
                    '[8, "ResNet/NNCFConv2d[conv1]/conv2d_0|WEIGHT"]',
                    key=key,
                )
            bits = check_int(f"{key}[0]", pair[0], low=MIN_BITS, high=MAX_BITS)
            if seen.get(pair[1], bits) != bits:
                raise ConfigError(
                    f"scope {short_repr(pair[1])} is given {seen[pair[1]]} and {bits} bits; "
                    "keep one entry",
                    key=key,
                )
            seen[pair[1]] = bits
            pairs.append((bits, pair[1]))
        object.__setattr__(self, "bitwidth_per_scope", tuple(pairs))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: KeyPath = ()) -> ManualSpec:
        with prefixed(path):
            values = check_keys(data, cls.KEYS)
            return cls(tuple(values.get("bitwidth_per_scope", ())))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "manual",
            "bitwidth_per_scope": [[b, s] for b, s in self.bitwidth_per_scope],
        }


PrecisionSpec = HawqSpec | AutoqSpec | ManualSpec
_BY_TYPE: dict[str, type[HawqSpec] | type[AutoqSpec] | type[ManualSpec]] = {
    "hawq": HawqSpec,
    "autoq": AutoqSpec,
    "manual": ManualSpec,
}
_ALL_KEYS = tuple(dict.fromkeys(HawqSpec.KEYS + AutoqSpec.KEYS + ManualSpec.KEYS))


def precision_from_dict(data: Mapping[str, Any], *, path: KeyPath = ()) -> PrecisionSpec:
    """Build the precision spec named by ``type``.

    Like NNCF, a section without ``type`` but with ``bitwidth_per_scope`` is manual (NNCF's manual
    example files are written that way). Without either, searchq asks for ``type`` instead of
    NNCF's silent fallback to an empty manual assignment. Keys that another type uses are
    ignored with a warning (NNCF's single precision schema accepts them for every type).
    """
    with prefixed(path):
        values = check_keys(data, _ALL_KEYS)
        kind = values.get("type")
        if kind is None:
            if "bitwidth_per_scope" not in values:
                raise ConfigError(
                    "missing key 'type'; add \"type\": one of 'hawq', 'autoq', 'manual' "
                    "(or give 'bitwidth_per_scope' for a manual assignment)"
                )
            kind = "manual"
        spec_cls = _BY_TYPE[check_choice("type", kind, tuple(_BY_TYPE))]
    used = {k: v for k, v in values.items() if k in spec_cls.KEYS}
    for key in values.keys() - used.keys():
        warn_once(
            format_path((*[p for p in path if isinstance(p, str)], key)),
            f"not used by precision type {kind!r}; ignored",
        )
    return spec_cls.from_dict(used, path=path)


def bits_of(spec: PrecisionSpec | None) -> Sequence[int]:
    """Candidate bitwidths of a precision spec (those named in a manual assignment for manual)."""
    if spec is None:
        return ()
    if isinstance(spec, ManualSpec):
        return tuple(sorted({b for b, _ in spec.bitwidth_per_scope}))
    return spec.bits
