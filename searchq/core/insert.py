"""Insert fake quantizers into a model, change their bits in place, and remove them.

Weight quantizers are ``torch.nn.utils.parametrize`` parametrizations of ``<op>.weight``;
input-activation quantizers run in a forward pre-hook of every consumer op (ops reading the same
tensor share one quantizer object). Removing restores the float model exactly: the original
``Parameter`` objects come back, so optimizers and state dicts are untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from searchq.core._modes import eval_mode, untouched_rng
from searchq.core._param import add_weight_transform, original_weight, remove_weight_transform
from searchq.core.assignment import Assignment
from searchq.core.quant import FakeQuantizer
from searchq.core.ranges import RangeObserver, make_observer
from searchq.core.space import QuantSpace
from searchq.errors import HardwareConstraintError, TaskError

__all__ = ["QuantizedModel", "iterate_inputs"]

# Each consumer op holds its input quantizer as a submodule (ops reading one tensor hold the same
# object): .to(), state_dict() and deepcopy then see it, and containers such as nn.Sequential
# are not disturbed.
_ACT_ATTR = "searchq_input_quantizer"


class _WeightParametrization(nn.Module):
    def __init__(self, quantizer: FakeQuantizer) -> None:
        super().__init__()
        self.quantizer = quantizer

    def forward(self, w: Tensor) -> Tensor:
        return self.quantizer(w)


class QuantizedModel:
    """A handle on a model with searchq's fake quantizers inserted (the model is modified).

    ``assignment`` (default: every quantizer at its largest allowed bits) sets the initial bits.
    Use :meth:`init_ranges` before evaluating, :meth:`set_bits` to try another assignment
    without copying the model, and :meth:`remove` to get the float model back.
    """

    def __init__(
        self,
        model: nn.Module,
        space: QuantSpace,
        assignment: Assignment | None = None,
    ) -> None:
        if any(hasattr(m, _ACT_ATTR) for m in model.modules()):
            raise HardwareConstraintError(
                f"{type(model).__name__} already has searchq quantizers; call remove() on the "
                "previous QuantizedModel first"
            )
        self.model = model
        self.space = space
        assignment = space.repair(assignment) if assignment is not None else space.maximal()
        space.check(assignment)
        modules = dict(model.named_modules())
        self.weight_quantizers: dict[str, FakeQuantizer] = {}
        self.activation_quantizers: dict[str, FakeQuantizer] = {}
        self._hooks: list[Any] = []
        self._transforms: list[tuple[nn.Module, nn.Module]] = []
        bits = assignment.bits
        for p in space.weight_points:
            mod = modules[p.ops[0]]
            q = FakeQuantizer(p.spec(bits[p.qname]), num_channels=mod.weight.shape[0])
            q.to(mod.weight.device)
            transform = _WeightParametrization(q)
            add_weight_transform(mod, transform)
            self._transforms.append((mod, transform))
            self.weight_quantizers[p.qname] = q
        device = next((t.device for t in model.parameters()), torch.device("cpu"))
        for p in space.activation_points:
            channels = self.space.graph.op(p.ops[0]).in_channels if p.per_channel else 1
            q = FakeQuantizer(p.spec(bits[p.qname]), num_channels=channels).to(device)
            self.activation_quantizers[p.qname] = q
            for op in p.ops:
                modules[op].add_module(_ACT_ATTR, q)
                self._hooks.append((modules[op], modules[op].register_forward_pre_hook(_pre_hook)))
        self.assignment = assignment
        self._removed = False

    # -- bits ----------------------------------------------------------------------------------
    def set_bits(self, assignment: Assignment) -> None:
        """Switch every quantizer to ``assignment``'s bits (checked against the space)."""
        self.space.check(assignment)
        quantizers = self.quantizers
        for name, b in assignment.bits.items():
            q = quantizers[name]
            q.set_bits(b)
            q.narrow_range = self.space.point(name).narrow_range.get(b, False)
        self.assignment = assignment

    @property
    def quantizers(self) -> dict[str, FakeQuantizer]:
        return {**self.weight_quantizers, **self.activation_quantizers}

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """Run the float model temporarily (quantizers pass values through)."""
        flags = {n: q.enabled for n, q in self.quantizers.items()}
        for q in self.quantizers.values():
            q.enabled = False
        try:
            yield
        finally:
            for n, q in self.quantizers.items():
                q.enabled = flags[n]

    def enable(self, weights: bool = True, activations: bool = True) -> None:
        for q in self.weight_quantizers.values():
            q.enabled = weights
        for q in self.activation_quantizers.values():
            q.enabled = activations

    # -- range initialisation ------------------------------------------------------------------
    @torch.no_grad()
    def init_ranges(
        self,
        batches: Iterable[Any] = (),
        *,
        init_type: str = "mixed_min_max",
        num_samples: int = 256,
        params: Mapping[str, float] | None = None,
        overrides: Mapping[str, tuple[str, Mapping[str, float] | None]] | None = None,
    ) -> None:
        """Initialise ranges (NNCF's ``initializer.range``; default type ``mixed_min_max``).

        Weight ranges come from the weights; activation ranges from up to ``num_samples``
        samples of ``batches`` (model inputs or ``(input, target)`` pairs), collected with every
        quantizer disabled so each sees float inputs. ``num_samples=0`` skips activations.
        ``overrides`` maps quantizer names to their own ``(init_type, params)``.
        """
        overrides = dict(overrides or {})

        def kind(name: str) -> tuple[str, Mapping[str, float] | None]:
            return overrides.get(name, (init_type, params))

        modules = dict(self.model.named_modules())
        for name, q in self.weight_quantizers.items():
            w = original_weight(modules[self.space.point(name).ops[0]])
            obs = make_observer(
                *kind(name),
                ch_axis=0 if q.per_channel else None,
                symmetric=q.mode == "symmetric",
                weights=True,
            )
            obs.update(w)
            q.init_range(*obs.range())
        if not self.activation_quantizers or num_samples <= 0:
            return
        observers: dict[str, RangeObserver] = {
            n: make_observer(
                *kind(n),
                ch_axis=1 if q.per_channel else None,
                symmetric=q.mode == "symmetric",
            )
            for n, q in self.activation_quantizers.items()
        }
        collecting: dict[int, str] = {id(q): n for n, q in self.activation_quantizers.items()}
        seen = 0
        with (
            self.disabled(),
            _collect(self, observers, collecting),
            eval_mode(self.model),
            untouched_rng(batches),
        ):
            for x in iterate_inputs(batches):
                if seen >= num_samples:
                    break
                take = min(num_samples - seen, x.shape[0])
                self.model(x[:take])
                seen += take
        for n, q in self.activation_quantizers.items():
            if observers[n].count:
                q.init_range(*observers[n].range())

    # -- removal -------------------------------------------------------------------------------
    def remove(self) -> nn.Module:
        """Strip every quantizer and hook; returns the float model (same Parameter objects)."""
        if self._removed:
            return self.model
        for mod, handle in self._hooks:
            handle.remove()
            if hasattr(mod, _ACT_ATTR):
                delattr(mod, _ACT_ATTR)
        for mod, transform in self._transforms:
            remove_weight_transform(mod, transform)
        self._removed = True
        return self.model


def _pre_hook(module: nn.Module, inputs: tuple) -> tuple:
    """Quantize the first input with the module's own input quantizer (deepcopy-safe)."""
    q = module._modules.get(_ACT_ATTR)
    if q is None or not inputs or not isinstance(inputs[0], Tensor):
        return inputs
    return (q(inputs[0]), *inputs[1:])


@contextmanager
def _collect(
    qm: QuantizedModel, observers: Mapping[str, RangeObserver], names: Mapping[int, str]
) -> Iterator[None]:
    """Route activation-quantizer inputs to observers for the duration of the block."""
    handles = []
    for q in qm.activation_quantizers.values():

        def record(module: nn.Module, inputs: tuple, _name: str = names[id(q)]) -> None:
            observers[_name].update(inputs[0])

        handles.append(q.register_forward_pre_hook(record))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def iterate_inputs(batches: Iterable[Any]) -> Iterator[Tensor]:
    """Model inputs from a loader yielding tensors, ``(x, y)`` pairs or ``{"input": x}`` dicts."""
    for batch in batches:
        if isinstance(batch, Tensor):
            yield batch
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
            yield batch[0]
        elif isinstance(batch, Mapping):
            for key in ("input", "x", "inputs", "image"):
                if key in batch:
                    yield batch[key]
                    break
            else:
                raise TaskError(
                    f"cannot find the model input in a batch with keys {sorted(batch)[:6]}; "
                    "yield (input, target) or {'input': ...}"
                )
        else:
            raise TaskError(
                f"batches of type {type(batch).__name__} are not supported; yield tensors, "
                "(input, target) pairs or {'input': ...} dicts"
            )
