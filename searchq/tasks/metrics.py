"""Top-1 accuracy of a classifier over a DataLoader.

Self-contained on purpose (imports only torch and ``searchq.errors``): it is meant to move to
``searchq/core/evaluate.py`` unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from searchq.errors import TaskError

__all__ = ["INPUT_KEYS", "TARGET_KEYS", "accuracy", "split_batch"]

INPUT_KEYS = ("input", "x")
"""Keys under which a dict batch may hold its inputs (first match wins)."""
TARGET_KEYS = ("target", "y", "label")
"""Keys under which a dict batch may hold its class labels (first match wins)."""


def split_batch(batch: Any) -> tuple[Tensor, Tensor | None]:
    """Return ``(inputs, targets)`` of a batch: ``(x, y, ...)`` / ``[x, y, ...]`` or a dict.

    ``targets`` is ``None`` when the batch carries none (a 1-tuple, or a dict without a target
    key); callers that need targets check for it.
    """
    inputs: Any
    targets: Any = None
    if isinstance(batch, (tuple, list)) and len(batch) > 0:
        inputs = batch[0]
        targets = batch[1] if len(batch) > 1 else None
    elif isinstance(batch, Mapping):
        in_key = next((k for k in INPUT_KEYS if k in batch), None)
        if in_key is None:
            raise TaskError(
                f"dict batch has keys {sorted(map(str, batch))} but no input key; allowed input "
                f"keys are {list(INPUT_KEYS)}: rename the input entry, e.g. batch['input']"
            )
        inputs = batch[in_key]
        targets = next((batch[k] for k in TARGET_KEYS if k in batch), None)
    else:
        raise TaskError(
            f"a batch of type {type(batch).__name__} is not supported; a DataLoader must yield "
            f"(inputs, targets) tuples/lists or dicts with an {'/'.join(INPUT_KEYS)} key: wrap "
            "your data in a TensorDataset or return such items from your Dataset"
        )
    if not isinstance(inputs, Tensor):
        raise TaskError(
            f"batch inputs are a {type(inputs).__name__}, expected a torch.Tensor: make the "
            "Dataset return tensors (or pass a collate_fn that stacks them)"
        )
    if targets is not None and not isinstance(targets, Tensor):
        raise TaskError(
            f"batch targets are a {type(targets).__name__}, expected a torch.Tensor of class "
            "indices: make the Dataset return tensors"
        )
    return inputs, targets


def _device_of(model: nn.Module) -> torch.device:
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


@torch.no_grad()
def accuracy(model: nn.Module, loader: Iterable[Any], *, max_batches: int | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``loader`` in PERCENT (0..100).

    ``accuracy = 100 * #{argmax(model(x)) == y} / #samples`` over the first ``max_batches`` batches
    (all when ``None``). Targets are class indices, or one-hot / probability rows (argmax taken).
    The model runs in eval mode; every submodule's train/eval flag is restored afterwards, so a
    model with e.g. frozen BN layers comes back exactly as it was.
    """
    if max_batches is not None and (
        isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1
    ):
        raise TaskError(
            f"max_batches={max_batches!r} is invalid; allowed: a positive int or None (all "
            "batches): pass e.g. max_batches=4"
        )
    modes = [(module, module.training) for module in model.modules()]
    device = _device_of(model)
    correct = 0
    total = 0
    model.eval()
    try:
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            inputs, targets = split_batch(batch)
            if targets is None:
                raise TaskError(
                    "a batch has no targets, so accuracy cannot be computed; yield (inputs, "
                    "targets) or a dict with a target/y/label key, or give the Task an evaluator"
                )
            logits = model(inputs.to(device))
            if not isinstance(logits, Tensor) or logits.dim() != 2:
                shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
                raise TaskError(
                    f"model output is {shape}, expected logits of shape (batch, classes) for "
                    "top-1 accuracy: return a logits tensor or give the Task its own evaluator"
                )
            targets = targets.to(device)
            if targets.dim() == 2:
                targets = targets.argmax(dim=1)
            correct += int((logits.argmax(dim=1) == targets).sum())
            total += int(targets.numel())
    finally:
        for module, training in modes:
            module.training = training
    if total == 0:
        raise TaskError(
            "the evaluation loader yielded no samples, so accuracy is undefined: check that the "
            "validation DataLoader's dataset is not empty"
        )
    return 100.0 * correct / total
