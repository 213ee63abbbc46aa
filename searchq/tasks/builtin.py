"""The built-in tasks: three small models trained once on scikit-learn digits and cached."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from searchq.errors import TaskError
from searchq.tasks import train as _train
from searchq.tasks.base import Task
from searchq.tasks.cache import load_or_train
from searchq.tasks.digits import DIGITS_SPLIT_SEED, digits_loaders
from searchq.tasks.metrics import accuracy
from searchq.tasks.models import mbv2_tiny, resnet20, tiny_cnn
from searchq.tasks.registry import register_task

__all__ = ["DEFAULT_RECIPES", "build_digits_task", "digits_recipe"]

_NUM_CLASSES = 10
_IN_CHANNELS = 1
_VAL_BATCH_SIZE = 256

# task name -> (model name, builder)
_MODELS: dict[str, tuple[str, Callable[..., nn.Module]]] = {
    "digits": ("resnet20", resnet20),
    "tiny_cnn": ("tiny_cnn", tiny_cnn),
    "mbv2_tiny": ("mbv2_tiny", mbv2_tiny),
}

DEFAULT_RECIPES: dict[str, _train.TrainRecipe] = {
    "digits": _train.TrainRecipe(epochs=10),
    # ~4k parameters learn slowly but an epoch takes ~50 ms, so it gets more of them.
    "tiny_cnn": _train.TrainRecipe(epochs=20),
    "mbv2_tiny": _train.TrainRecipe(epochs=10),
}


def _seeds(seed: int) -> tuple[int, int]:
    # Independent streams for weight init and shuffling, both derived from the one task seed.
    init_seed, shuffle_seed = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint64)
    return int(init_seed), int(shuffle_seed)


def digits_recipe(name: str, *, seed: int, recipe: _train.TrainRecipe) -> dict[str, Any]:
    """Everything that determines the trained weights of built-in task ``name``: the cache key."""
    model_name, _ = _MODELS[name]
    return {
        "recipe_version": _train.RECIPE_VERSION,
        "task": name,
        "model": model_name,
        "model_kwargs": {"num_classes": _NUM_CLASSES, "in_channels": _IN_CHANNELS},
        "data": {
            "name": "sklearn_digits",
            "val_fraction": 0.2,
            "split_seed": DIGITS_SPLIT_SEED,
            "scale": "x/16, then (x - train_mean) / train_std",
        },
        "seed": seed,
        "train": recipe.to_dict(),
    }


def build_digits_task(
    name: str,
    *,
    seed: int = 0,
    train: bool = True,
    recipe: _train.TrainRecipe | None = None,
    progress: bool | None = None,
) -> Task:
    """Build built-in task ``name`` (``digits``, ``tiny_cnn`` or ``mbv2_tiny``).

    ``train=True``: weights from the cache, or trained with ``recipe`` (default
    ``DEFAULT_RECIPES[name]``) and cached. ``train=False``: the seeded, untrained model. The model
    is on CPU in eval mode; the task's train loader shuffles from ``seed``.
    """
    if name not in _MODELS:
        raise TaskError(
            f"unknown built-in digits task {name!r}; allowed: {sorted(_MODELS)}: pick one of them"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TaskError(f"seed={seed!r} is invalid; allowed: an int >= 0: pass e.g. seed=0")
    recipe = recipe if recipe is not None else DEFAULT_RECIPES[name]
    init_seed, shuffle_seed = _seeds(seed)
    _, builder = _MODELS[name]
    model = builder(
        num_classes=_NUM_CLASSES,
        in_channels=_IN_CHANNELS,
        generator=torch.Generator().manual_seed(init_seed),
    )
    if train:

        def train_fn(m: nn.Module) -> float:
            train_loader, val_loader = digits_loaders(
                seed=shuffle_seed, train_batch_size=recipe.batch_size
            )
            _train.fit(m, train_loader, recipe, progress=progress, desc=f"training {name}")
            return accuracy(m, val_loader)

        load_or_train(name, digits_recipe(name, seed=seed, recipe=recipe), model, train_fn)
    model.eval()
    train_loader, val_loader = digits_loaders(
        seed=seed, train_batch_size=recipe.batch_size, val_batch_size=_VAL_BATCH_SIZE
    )
    return Task(model=model, train_loader=train_loader, val_loader=val_loader, name=name)


@register_task(
    "digits",
    description="ResNet-20 (0.27 M params) on scikit-learn digits 8x8, ~98.5% val accuracy",
)
def digits(*, seed: int = 0, train: bool = True) -> Task:
    return build_digits_task("digits", seed=seed, train=train)


@register_task("tiny_cnn", description="3-conv CNN (3.8 k params) on scikit-learn digits 8x8")
def tiny_cnn_task(*, seed: int = 0, train: bool = True) -> Task:
    return build_digits_task("tiny_cnn", seed=seed, train=train)


@register_task(
    "mbv2_tiny",
    description="5-block MobileNetV2, 5x5/7x7 depthwise (32 k params) on scikit-learn digits 8x8",
)
def mbv2_tiny_task(*, seed: int = 0, train: bool = True) -> Task:
    return build_digits_task("mbv2_tiny", seed=seed, train=train)
