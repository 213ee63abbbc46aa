"""The controller a training loop drives (NNCF 2.x's ``CompressionAlgorithmController``).

``controller.scheduler.epoch_step()`` at the start of every epoch and ``.step()`` before every
optimizer step move three things, all functions of (epoch, step) only — so a resumed run, which
restores the counters, continues exactly:

* the sparsity level of ``magnitude_sparsity`` (:mod:`searchq.core.schedules`; masks recomputed
  from the current weights at every level update, frozen from ``sparsity_freeze_epoch`` on);
* staged quantization (``quantization.params``): activation / weight quantizers are enabled from
  ``activations_quant_start_epoch`` / ``weights_quant_start_epoch`` (NNCF's default 1 when
  ``params`` is given, else 0: quantized from the start);
* with an optimizer registered (:meth:`CompressionController.register_optimizer`), NNCF's
  staged-training rules: ``lr = base_lr·((finish − e) / duration)^2.1`` for
  ``lr_poly_drop_start_epoch ≤ e < finish`` (e counts fractional epochs), weight decay 0 after
  ``disable_wd_start_epoch``.

``controller.loss()`` is zero (magnitude sparsity and quantization have no loss term).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from searchq.config.warn import SearchqWarning
from searchq.core.assignment import Assignment
from searchq.core.cost import CostModel
from searchq.core.graph import ModelGraph
from searchq.core.insert import QuantizedModel
from searchq.core.schedules import AdaptiveSchedule, SparsitySchedule
from searchq.core.sparsity import MagnitudeSparsifier
from searchq.errors import CheckpointError

__all__ = ["SCHEMA_VERSION", "CompressionController", "CompressionScheduler", "Statistics"]

SCHEMA_VERSION = 1
POLY_DROP_POWER = 2.1  # NNCF's staged-quantization example


@dataclass
class StagedParams:
    """``quantization.params``; None where the key is absent (nothing to do)."""

    activations_start: int = 0
    weights_start: int = 0
    lr_poly_drop_start: int | None = None
    lr_poly_drop_duration: int = 30
    disable_wd_start: int | None = None
    base_lr: float | None = None
    base_wd: float | None = None
    batch_multiplier: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> StagedParams:
        staged = bool(params)
        default_start = 1 if staged else 0
        return cls(
            activations_start=int(params.get("activations_quant_start_epoch", default_start)),
            weights_start=int(params.get("weights_quant_start_epoch", default_start)),
            lr_poly_drop_start=params.get("lr_poly_drop_start_epoch"),
            lr_poly_drop_duration=int(params.get("lr_poly_drop_duration_epochs", 30)),
            disable_wd_start=params.get("disable_wd_start_epoch"),
            base_lr=params.get("base_lr"),
            base_wd=params.get("base_wd"),
            batch_multiplier=int(params.get("batch_multiplier", 1)),
        )

    @property
    def drives_optimizer(self) -> bool:
        return self.lr_poly_drop_start is not None or self.disable_wd_start is not None


class CompressionScheduler:
    """``epoch_step()`` / ``step()`` counters for every algorithm of a controller."""

    def __init__(self, controller: CompressionController) -> None:
        self._ctrl = controller
        self.current_epoch = -1
        self.current_step = -1  # optimizer steps since the start of training
        self._step_in_epoch = 0
        self._steps_per_epoch: int | None = None

    # NNCF's signature: an explicit epoch / step number overrides the counter
    def epoch_step(self, next_epoch: int | None = None) -> None:
        if self.current_epoch == 0 and self._steps_per_epoch is None and self._step_in_epoch:
            self._steps_per_epoch = self._step_in_epoch
        self.current_epoch = self.current_epoch + 1 if next_epoch is None else int(next_epoch)
        self._step_in_epoch = 0
        sched = self._ctrl.sparsity_schedule
        if sched is not None:
            if isinstance(sched, AdaptiveSchedule):
                current = self._ctrl.sparsifier.sparsity() if self._ctrl.sparsifier else None
                sched.epoch_step(current)
            else:
                sched.epoch_step()
            sched.epoch = self.current_epoch
        self._ctrl._apply(epoch_start=True)

    def step(self, next_step: int | None = None) -> None:
        self.current_step = self.current_step + 1 if next_step is None else int(next_step)
        self._step_in_epoch += 1
        sched = self._ctrl.sparsity_schedule
        if sched is not None:
            sched.step()
        self._ctrl._apply(epoch_start=False)

    @property
    def epoch_fraction(self) -> float:
        """Fractional epochs since the start of training (for the LR drop)."""
        e = max(self.current_epoch, 0)
        if self._steps_per_epoch:
            return e + min(self._step_in_epoch / self._steps_per_epoch, 1.0)
        return float(e)

    def state_dict(self) -> dict[str, Any]:
        sched = self._ctrl.sparsity_schedule
        return {
            "current_epoch": self.current_epoch,
            "current_step": self.current_step,
            "step_in_epoch": self._step_in_epoch,
            "steps_per_epoch": self._steps_per_epoch,
            "sparsity": sched.state_dict() if sched is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.current_epoch = int(state["current_epoch"])
        self.current_step = int(state["current_step"])
        self._step_in_epoch = int(state["step_in_epoch"])
        self._steps_per_epoch = state["steps_per_epoch"]
        sched = self._ctrl.sparsity_schedule
        if sched is not None and state.get("sparsity") is not None:
            sched.load_state_dict(dict(state["sparsity"]))


@dataclass
class Statistics:
    """What :meth:`CompressionController.statistics` returns: rows per layer and totals."""

    layers: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "totals": self.totals}

    def to_str(self) -> str:
        head = (
            f"{'layer':34s} {'kind':16s} {'params':>8s} {'w bits':>6s} {'a bits':>6s} "
            f"{'sparsity':>8s}"
        )
        lines = [head, "-" * len(head)]
        for r in self.layers:
            sp = "-" if r["sparsity"] is None else f"{100 * r['sparsity']:.1f}%"
            wb = "-" if r["w_bits"] is None else str(r["w_bits"])
            ab = "-" if r["a_bits"] is None else str(r["a_bits"])
            lines.append(
                f"{r['name'][:34]:34s} {r['kind'][:16]:16s} {r['params']:8d} {wb:>6s} {ab:>6s} "
                f"{sp:>8s}"
            )
        lines.append("")
        for key, value in self.totals.items():
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            lines.append(f"{key:28s} {shown}")
        return "\n".join(lines)

    __str__ = to_str


class CompressionController:
    """Handle on a model compressed by :func:`~searchq.compress.create_compressed_model`."""

    def __init__(
        self,
        model: nn.Module,
        graph: ModelGraph,
        *,
        config_state: dict[str, Any],
        example_input: Tensor,
        qmodel: QuantizedModel | None = None,
        staged: StagedParams | None = None,
        sparsifier: MagnitudeSparsifier | None = None,
        sparsity_schedule: SparsitySchedule | None = None,
        init_results: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.graph = graph
        self.qmodel = qmodel
        self.staged = staged or StagedParams()
        self.sparsifier = sparsifier
        self.sparsity_schedule = sparsity_schedule
        self.example_input = example_input
        self.init_results = dict(init_results or {})
        self._config_state = config_state
        self._optimizer: torch.optim.Optimizer | None = None
        self._warned_optimizer = False
        self.scheduler = CompressionScheduler(self)
        self._apply(epoch_start=True)

    # -- training-loop API --------------------------------------------------------------------
    @property
    def batch_multiplier(self) -> int:
        """Gradient accumulation factor (``quantization.params.batch_multiplier``)."""
        return self.staged.batch_multiplier

    def loss(self) -> Tensor:
        """The compression loss term: zero for quantization and magnitude sparsity."""
        p = next(self.model.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)

    def register_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Let the scheduler apply ``lr_poly_drop_*`` / ``disable_wd_start_epoch``."""
        self._optimizer = optimizer
        self._apply(epoch_start=True)

    def make_optimizer(self, params: Any = None) -> torch.optim.Adam:
        """NNCF's staged-quantization optimizer: Adam with ``base_lr`` (1e-3) / ``base_wd``
        (1e-5), registered with this controller."""
        lr = self.staged.base_lr if self.staged.base_lr is not None else 1e-3
        wd = self.staged.base_wd if self.staged.base_wd is not None else 1e-5
        opt = torch.optim.Adam(
            params if params is not None else self.model.parameters(), lr=lr, weight_decay=wd
        )
        self.register_optimizer(opt)
        return opt

    def _apply(self, *, epoch_start: bool) -> None:
        epoch = self.scheduler.current_epoch if hasattr(self, "scheduler") else -1
        if self.sparsifier is not None and self.sparsity_schedule is not None:
            sched = self.sparsity_schedule
            if not self.sparsifier.frozen and (epoch_start or sched.update_per_optimizer_step):
                self.sparsifier.set_level(sched.level)
            if sched.frozen:
                self.sparsifier.freeze()
        if self.qmodel is not None and epoch_start:  # stages change at epoch boundaries only
            e = max(epoch, 0)
            self.qmodel.enable(
                weights=e >= self.staged.weights_start,
                activations=e >= self.staged.activations_start,
            )
        self._apply_optimizer()

    def _apply_optimizer(self) -> None:
        st = self.staged
        if not st.drives_optimizer:
            return
        if self._optimizer is None:
            if not self._warned_optimizer and self.scheduler.current_epoch >= 0:
                warnings.warn(
                    "quantization.params sets lr_poly_drop_start_epoch / disable_wd_start_epoch, "
                    "which act on the optimizer: call controller.register_optimizer(optimizer) "
                    "(or controller.make_optimizer()) so the scheduler can apply them",
                    SearchqWarning,
                    stacklevel=3,
                )
                self._warned_optimizer = True
            return
        e = self.scheduler.epoch_fraction
        if st.lr_poly_drop_start is not None:
            base = st.base_lr if st.base_lr is not None else 1e-3
            start, finish = st.lr_poly_drop_start, st.lr_poly_drop_start + st.lr_poly_drop_duration
            if start <= e < finish:
                lr = base * ((finish - e) / st.lr_poly_drop_duration) ** POLY_DROP_POWER
                for group in self._optimizer.param_groups:
                    group["lr"] = lr
        if st.disable_wd_start is not None and e > st.disable_wd_start:
            for group in self._optimizer.param_groups:
                group["weight_decay"] = 0.0

    # -- statistics -----------------------------------------------------------------------------
    def statistics(self, quickly_collected_only: bool = False) -> Statistics:
        """Bits and sparsity per layer; model-size, bit-complexity and sparsity totals."""
        assignment = self.qmodel.assignment if self.qmodel is not None else Assignment({}, {})
        enabled_w = self.qmodel is not None and any(
            q.enabled for q in self.qmodel.weight_quantizers.values()
        )
        enabled_a = self.qmodel is not None and any(
            q.enabled for q in self.qmodel.activation_quantizers.values()
        )
        sparsity = self.sparsifier.layer_sparsity() if self.sparsifier is not None else {}
        rows, fp_bits, kept_bits = [], 0.0, 0.0
        for op in self.graph.ops:
            w_bits = assignment.weights.get(op.weight_qname) if enabled_w else None
            a_bits = assignment.activations.get(op.input_group) if enabled_a else None
            sp = sparsity.get(op.name)
            rows.append(
                {
                    "name": op.name,
                    "kind": op.kind,
                    "macs": int(op.macs),
                    "params": int(op.params),
                    "w_bits": w_bits,
                    "a_bits": a_bits,
                    "sparsity": sp,
                }
            )
            fp_bits += 32.0 * op.params
            kept_bits += (w_bits or 32) * op.params * (1.0 - (sp or 0.0))

        totals: dict[str, Any] = {"epoch": self.scheduler.current_epoch}
        if self.qmodel is not None:
            totals["weights_quantized"] = enabled_w
            totals["activations_quantized"] = enabled_a
            # NNCF's meaning: bit-ops of uniform 8 bits / bit-ops of the assignment (quantizers
            # that are not enabled yet count as 8 bits, the reference)
            totals["bit_complexity_ratio"] = CostModel(self.graph).bit_complexity_ratio(assignment)
        if self.sparsifier is not None:
            totals["sparsity_level_target"] = self.sparsifier.level
            totals["sparsity_level"] = self.sparsifier.sparsity()
            totals["masks_frozen"] = self.sparsifier.frozen
        totals["size_ratio"] = kept_bits / fp_bits if fp_bits else 1.0
        return Statistics(rows, totals)

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Compression state for a checkpoint: plain types only, so a checkpoint holding it
        loads with ``weights_only=True``. Weights, ranges and masks live in
        ``model.state_dict()``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "config": copy.deepcopy(self._config_state),
            "quantization": (
                {
                    "assignment": self.qmodel.assignment.to_dict(),
                    "quantizers": sorted(self.qmodel.quantizers),
                }
                if self.qmodel is not None
                else None
            ),
            "sparsity": (
                {"modules": sorted(self.sparsifier.masks)} if self.sparsifier is not None else None
            ),
            "scheduler": self.scheduler.state_dict(),
            "init_results": copy.deepcopy(self.init_results),
        }

    get_compression_state = state_dict  # NNCF 2.x name

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the schedules of ``state`` (saved with the same config)."""
        check_state(state, self._config_state)
        self.scheduler.load_state_dict(state["scheduler"])
        if self.sparsifier is not None:
            self.sparsifier.frozen = False
        self._apply(epoch_start=True)

    # -- output ----------------------------------------------------------------------------------
    def strip(self, do_copy: bool = True) -> nn.Module:
        """The model with weight transforms folded: masked, fake-quantized weights stored as
        plain values (activation quantizers stay: they are part of the compressed model)."""
        model = copy.deepcopy(self.model) if do_copy else self.model
        with torch.no_grad():
            for mod in model.modules():
                if not parametrize.is_parametrized(mod):
                    continue
                for name, chain in mod.parametrizations.items():  # type: ignore[union-attr,operator]
                    value = getattr(mod, name).detach().clone()
                    chain.original.copy_(value)
                    # edit the chain rather than remove it: a deep copy shares the parametrized
                    # class with the original, and removal would break the original
                    for i in reversed(range(len(chain))):
                        del chain[i]
                    chain.append(nn.Identity())
        return model

    strip_model = strip

    def export_model(
        self,
        save_path: str | Path,
        *,
        example_input: Tensor | None = None,
        opset: int | None = None,
    ) -> Path:
        """ONNX with QuantizeLinear / DequantizeLinear pairs (``pip install 'searchq[onnx]'``)."""
        from searchq.compress.onnx_export import export_onnx

        x = example_input if example_input is not None else self.example_input
        return export_onnx(self.model, x, save_path, opset=opset)


def diff_config(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two decoded configs."""
    if isinstance(saved, Mapping) and isinstance(now, Mapping):
        out: list[str] = []
        for key in sorted(set(saved) | set(now), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in saved or key not in now:
                out.append(path)
            else:
                out.extend(diff_config(saved[key], now[key], path))
        return out
    if isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now):
        return [
            k
            for i, (a, b) in enumerate(zip(saved, now, strict=True))
            for k in diff_config(a, b, f"{prefix}[{i}]")
        ]
    return [] if saved == now else [prefix or "<root>"]


def check_state(state: Any, config_state: Mapping[str, Any]) -> None:
    """Raise CheckpointError unless ``state`` is a compression state of this config."""
    if not isinstance(state, Mapping) or "schema_version" not in state:
        raise CheckpointError(
            "not a searchq compression state (no schema_version); pass controller.state_dict() "
            "as saved in the checkpoint"
        )
    if state["schema_version"] != SCHEMA_VERSION:
        raise CheckpointError(
            f"compression state schema_version {state['schema_version']!r}; this searchq reads "
            f"{SCHEMA_VERSION}: resume with the searchq version that wrote it"
        )
    keys = diff_config(state.get("config"), dict(config_state))
    if keys:
        shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
        raise CheckpointError(
            f"the checkpoint was saved with a different compression config: {shown} differ; "
            "resume with the config it was saved with, or start a new run without --resume"
        )
