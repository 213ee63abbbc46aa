"""``Task``: the model to compress plus the data and metric that judge a compressed version."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from searchq.errors import TaskError
from searchq.tasks.metrics import accuracy, split_batch

__all__ = ["Task", "TopOneAccuracy"]


class TopOneAccuracy:
    """Default evaluator: ``{"accuracy": top-1 accuracy in percent}`` over a fixed loader."""

    def __init__(self, loader: DataLoader, *, max_batches: int | None = None) -> None:
        self.loader = loader
        self.max_batches = max_batches

    def __call__(self, model: nn.Module) -> dict[str, float]:
        return {"accuracy": accuracy(model, self.loader, max_batches=self.max_batches)}

    def __repr__(self) -> str:
        return f"TopOneAccuracy(max_batches={self.max_batches})"


@dataclass
class Task:
    """A trained model with its data: what every search starts from.

    Only ``model``, ``train_loader`` and ``val_loader`` are required; ``__post_init__`` fills in
    the rest, so after construction no field is ``None``:

    - ``criterion``: ``nn.CrossEntropyLoss()`` — used by searches that need gradients (HAWQ
      traces, supernet training, BN adaptation).
    - ``evaluator``: ``model -> {"accuracy": top-1 % on val_loader}``; a custom one must return a
      dict whose FIRST entry is the metric to maximise.
    - ``example_input``: the inputs of the first batch of ``train_loader`` (for graph analysis).
      A batch is ``(x, y, ...)`` / ``[x, y, ...]`` or a dict with an ``"input"`` or ``"x"`` key.
      When the loader shuffles with its own ``generator``, that generator's state is restored,
      so taking the example does not change the batches training will see.
    """

    model: nn.Module
    train_loader: DataLoader
    val_loader: DataLoader
    criterion: Callable[[Tensor, Tensor], Tensor] | None = None
    evaluator: Callable[[nn.Module], Mapping[str, float]] | None = None
    example_input: Tensor | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        if not isinstance(self.model, nn.Module):
            raise TaskError(
                f"Task.model is a {type(self.model).__name__}, expected a torch.nn.Module: pass "
                "the model object itself (not its class or state_dict)"
            )
        for field_name in ("train_loader", "val_loader"):
            loader = getattr(self, field_name)
            if not isinstance(loader, DataLoader):
                raise TaskError(
                    f"Task.{field_name} is a {type(loader).__name__}, expected a "
                    "torch.utils.data.DataLoader: wrap the data as DataLoader(dataset, "
                    "batch_size=...)"
                )
        for field_name in ("criterion", "evaluator"):
            value = getattr(self, field_name)
            if value is not None and not callable(value):
                raise TaskError(
                    f"Task.{field_name} is a {type(value).__name__}, expected a callable or None "
                    "(for the default): pass a function or an nn.Module"
                )
        if self.example_input is not None and not isinstance(self.example_input, Tensor):
            raise TaskError(
                f"Task.example_input is a {type(self.example_input).__name__}, expected a "
                "torch.Tensor or None (first training batch): pass a tensor batch of inputs"
            )
        if not isinstance(self.name, str) or not self.name:
            raise TaskError(
                f"Task.name={self.name!r} is invalid; allowed: a non-empty string: pass e.g. "
                "name='my_task'"
            )
        if self.criterion is None:
            self.criterion = nn.CrossEntropyLoss()
        if self.evaluator is None:
            self.evaluator = TopOneAccuracy(self.val_loader)
        if self.example_input is None:
            self.example_input = _first_inputs(self.train_loader)


def _first_inputs(loader: DataLoader) -> Tensor:
    generator = loader.generator if isinstance(loader.generator, torch.Generator) else None
    state = generator.get_state() if generator is not None else None
    try:
        batch = next(iter(loader))
    except StopIteration:
        raise TaskError(
            "Task.train_loader yields no batches, so there is no example input: check that its "
            "dataset is not empty (or pass example_input=...)"
        ) from None
    finally:
        if generator is not None and state is not None:
            generator.set_state(state)
    inputs, _ = split_batch(batch)
    return inputs
