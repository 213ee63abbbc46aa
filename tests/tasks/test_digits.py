from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from searchq.tasks.digits import digits_data, digits_loaders, digits_stats


def raw_pixels(x: torch.Tensor) -> np.ndarray:
    """Undo the normalisation: back to the 0..16 integers sklearn ships."""
    mean, std = digits_stats()
    return ((x.double().numpy() * std + mean) * 16).round().astype(np.int64)


def test_shapes_and_split_sizes():
    x_train, y_train, x_val, y_val = digits_data()
    assert x_train.shape == (1437, 1, 8, 8) and x_val.shape == (360, 1, 8, 8)
    assert y_train.shape == (1437,) and y_val.shape == (360,)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64


def test_split_is_stratified_and_a_partition_of_sklearn_digits():
    bunch = load_digits()
    total = np.bincount(bunch.target, minlength=10)
    _, y_train, x_val, y_val = digits_data()
    train_counts = np.bincount(y_train.numpy(), minlength=10)
    val_counts = np.bincount(y_val.numpy(), minlength=10)
    assert (train_counts + val_counts == total).all()
    # stratified: each class keeps ~20 % in val (rounding moves at most one sample)
    assert (np.abs(val_counts - 0.2 * total) <= 1).all()

    # the images are exactly sklearn's images, each used once
    x_train = digits_data().x_train
    ours = np.concatenate([raw_pixels(x_train), raw_pixels(x_val)]).reshape(1797, 64)
    labels = np.concatenate([y_train.numpy(), y_val.numpy()])
    theirs = bunch.images.reshape(1797, 64).astype(np.int64)
    key = lambda a, y: sorted(map(tuple, np.column_stack([a, y])))  # noqa: E731
    assert key(ours, labels) == key(theirs, bunch.target)


def test_normalisation_uses_train_statistics():
    x_train, _, x_val, _ = digits_data()
    assert abs(float(x_train.double().mean())) < 1e-6
    assert abs(float(x_train.double().std(correction=0)) - 1) < 1e-6
    mean, std = digits_stats()
    raw_train = raw_pixels(x_train) / 16.0
    assert np.isclose(raw_train.mean(), mean) and np.isclose(raw_train.std(), std)
    # val reuses the train stats, so it is NOT exactly centred itself
    expected_val = (raw_pixels(x_val) / 16.0 - mean) / std
    np.testing.assert_allclose(x_val.numpy(), expected_val, atol=1e-6)
    assert abs(float(x_val.double().mean())) > 1e-4


def test_cached_data_cannot_be_corrupted_by_callers():
    first = digits_data()
    first.x_train.zero_()
    assert torch.count_nonzero(digits_data().x_train) > 0


def test_loaders_batches_seeded_shuffle_and_fixed_val():
    train_a, val_a = digits_loaders(seed=0)
    train_b, _ = digits_loaders(seed=0)
    train_c, val_c = digits_loaders(seed=1)
    assert len(train_a) == 23 and len(val_a) == 2  # ceil(1437 / 64), ceil(360 / 256)
    xa, ya = next(iter(train_a))
    xb, _ = next(iter(train_b))
    xc, _ = next(iter(train_c))
    assert xa.shape == (64, 1, 8, 8) and ya.shape == (64,)
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)
    # the val set does not depend on the seed and is not shuffled
    x_val, y_val = digits_data()[2:]
    for val in (val_a, val_c):
        xs, ys = zip(*val, strict=True)
        assert torch.equal(torch.cat(xs), x_val) and torch.equal(torch.cat(ys), y_val)
    assert [len(y) for _, y in val_a] == [256, 104]


def test_loaders_leave_global_rng_alone():
    state = torch.get_rng_state()
    train, val = digits_loaders(seed=0)
    list(train), list(val)
    assert torch.equal(torch.get_rng_state(), state)
