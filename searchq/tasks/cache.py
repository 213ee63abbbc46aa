"""On-disk cache of trained built-in models, keyed by a hash of their training recipe.

A file is ``<cache_dir>/<task>-<sha256(recipe)[:12]>.pt`` holding
``{"schema_version": 1, "recipe": recipe, "state_dict": ..., "val_accuracy": ...}``. Anything
that changes the weights (model, data, seed, hyper-parameters, ``RECIPE_VERSION``) is in the
recipe, so a stale file is never found rather than detected. A file that is there but unusable
(truncated, corrupt, other schema) costs one warning and a retrain, never a failure: the cache is
an optimisation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "SCHEMA_VERSION",
    "CacheWarning",
    "cache_dir",
    "cache_path",
    "load_or_train",
    "recipe_hash",
]

SCHEMA_VERSION = 1

_log = logging.getLogger(__name__)


class CacheWarning(UserWarning):
    """A cache file could not be read or written; searchq carries on without it."""


def cache_dir() -> Path:
    """``$SEARCHQ_CACHE``, else ``$XDG_CACHE_HOME/searchq``, else ``~/.cache/searchq``."""
    explicit = os.environ.get("SEARCHQ_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "searchq"
    return Path.home() / ".cache" / "searchq"


def _canonical(recipe: Mapping[str, Any]) -> str:
    try:
        return json.dumps(recipe, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"recipe must be plain JSON data (internal error): {exc}") from exc


def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of the recipe as canonical JSON (sorted keys)."""
    return hashlib.sha256(_canonical(recipe).encode()).hexdigest()[:12]


def cache_path(task: str, recipe: Mapping[str, Any]) -> Path:
    """Where the weights of ``task`` trained with ``recipe`` live (the file may not exist)."""
    return cache_dir() / f"{task}-{recipe_hash(recipe)}.pt"


def _warn(message: str) -> None:
    warnings.warn(" ".join(message.split()), CacheWarning, stacklevel=3)


def _read(path: Path, recipe: Mapping[str, Any]) -> dict[str, Any] | None:
    """The entry at ``path`` if it is valid for ``recipe``; ``None`` (after one warning) if not."""
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated / corrupt / not a torch file: all mean "retrain"
        _warn(
            f"searchq: cached weights {path} are unreadable ({type(exc).__name__}: {exc}); "
            "retraining and overwriting them"
        )
        return None
    problem = None
    if not isinstance(entry, dict) or entry.get("schema_version") != SCHEMA_VERSION:
        version = entry.get("schema_version") if isinstance(entry, dict) else None
        problem = f"schema_version {version!r}, expected {SCHEMA_VERSION}"
    elif entry.get("recipe") != json.loads(_canonical(recipe)):
        problem = "a different training recipe (hash collision or edited file)"
    elif not isinstance(entry.get("state_dict"), dict) or not isinstance(
        entry.get("val_accuracy"), (int, float)
    ):
        problem = "no state_dict / val_accuracy"
    if problem is not None:
        _warn(f"searchq: cached weights {path} have {problem}; retraining and overwriting them")
        return None
    return entry


def _write(path: Path, entry: dict[str, Any]) -> None:
    """Write atomically (temp file in the same folder + ``os.replace``); warn if impossible."""
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp", delete=False
        ) as tmp:
            tmp_name = tmp.name
            torch.save(entry, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        _warn(
            f"searchq: could not write cached weights to {path} ({exc}); set SEARCHQ_CACHE to "
            "a writable folder to avoid retraining next time"
        )


def load_or_train(
    task: str,
    recipe: Mapping[str, Any],
    model: nn.Module,
    train_fn: Callable[[nn.Module], float],
) -> float:
    """Fill ``model`` with cached weights for ``(task, recipe)``, or train and cache them.

    ``train_fn(model)`` trains in place and returns the validation accuracy (percent). Returns
    that accuracy, from the cache on a hit.
    """
    path = cache_path(task, recipe)
    entry = _read(path, recipe)
    if entry is not None:
        # load_state_dict copies the matching tensors before it reports a mismatch; keep the
        # fresh initialisation so a retrain starts exactly where an uncached one would.
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        try:
            model.load_state_dict(entry["state_dict"])
        except (RuntimeError, KeyError, TypeError) as exc:
            # The architecture changed without a RECIPE_VERSION bump; the file is useless.
            model.load_state_dict(initial)
            _warn(
                f"searchq: cached weights {path} do not fit the model ({type(exc).__name__}); "
                "retraining and overwriting them"
            )
        else:
            _log.info(
                "loaded %s weights from %s (val accuracy %.2f%%)", task, path, entry["val_accuracy"]
            )
            return float(entry["val_accuracy"])
    val_accuracy = float(train_fn(model))
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    _write(
        path,
        {
            "schema_version": SCHEMA_VERSION,
            "recipe": json.loads(_canonical(recipe)),
            "state_dict": state_dict,
            "val_accuracy": val_accuracy,
        },
    )
    return val_accuracy
