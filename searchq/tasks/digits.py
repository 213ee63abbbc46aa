"""scikit-learn's bundled digits as tensors and DataLoaders (offline, no download).

1,797 8x8 grey images with values 0..16, 10 classes. The 80/20 split is stratified with a FIXED
``random_state`` that does not depend on any task seed, so accuracies from different seeds and
runs are measured on the same 360 validation images and stay comparable.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

__all__ = [
    "DIGITS_SPLIT_SEED",
    "DigitsSplit",
    "digits_data",
    "digits_loaders",
    "digits_stats",
]

DIGITS_SPLIT_SEED = 0
"""``random_state`` of the train/val split; part of every cached recipe."""

_VAL_FRACTION = 0.2
_MAX_PIXEL = 16.0


class DigitsSplit(NamedTuple):
    """``x_*``: float32 (N, 1, 8, 8), normalised with the train split's mean/std; ``y_*``: int64."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor


@functools.lru_cache(maxsize=1)
def _load() -> tuple[DigitsSplit, float, float]:
    # Imported here: scikit-learn takes ~1 s to import and most users of searchq.tasks never
    # touch the digits data.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.float64) / _MAX_PIXEL
    y = np.asarray(bunch.target, dtype=np.int64)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=_VAL_FRACTION, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    # Statistics from the train split only, so nothing about the validation images leaks in.
    mean = float(x_tr.mean())
    std = float(x_tr.std())

    def to_tensor(a: np.ndarray) -> Tensor:
        a = ((a - mean) / std).astype(np.float32)[:, None, :, :]
        return torch.from_numpy(np.ascontiguousarray(a))

    split = DigitsSplit(
        to_tensor(x_tr), torch.from_numpy(y_tr), to_tensor(x_va), torch.from_numpy(y_va)
    )
    return split, mean, std


def digits_data() -> DigitsSplit:
    """Return ``(x_train, y_train, x_val, y_val)``: 1,437 train and 360 val samples.

    The arrays are built once per process; each call returns fresh copies, so callers may modify
    them in place without affecting anyone else.
    """
    split, _, _ = _load()
    return DigitsSplit(*(t.clone() for t in split))


def digits_stats() -> tuple[float, float]:
    """``(mean, std)`` of the train split's pixels after scaling to [0, 1] (used to normalise)."""
    _, mean, std = _load()
    return mean, std


def digits_loaders(
    *, seed: int = 0, train_batch_size: int = 64, val_batch_size: int = 256
) -> tuple[DataLoader, DataLoader]:
    """Return ``(train_loader, val_loader)`` over :func:`digits_data`.

    The train loader shuffles with its own ``torch.Generator`` seeded from ``seed`` (the global RNG
    is never used), so two loaders built with the same seed yield the same batches.
    """
    x_train, y_train, x_val, y_val = digits_data()
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        TensorDataset(x_train, y_train),
        batch_size=train_batch_size,
        shuffle=True,
        generator=generator,
        num_workers=0,
    )
    # The val loader never shuffles, but every DataLoader iterator draws a base seed from its
    # generator, and without one that draw comes from (and advances) the global RNG.
    val_loader = DataLoader(
        TensorDataset(x_val, y_val),
        batch_size=val_batch_size,
        shuffle=False,
        generator=torch.Generator().manual_seed(seed),
        num_workers=0,
    )
    return train_loader, val_loader
