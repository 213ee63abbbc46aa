"""Small file helpers: atomic writes so an interrupted run never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "load_checkpoint_file",
    "read_json",
    "read_json_file",
    "save_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def write_text_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(path: str | Path, obj: Any) -> None:
    """``torch.save`` to a temporary file, then rename: a kill never leaves half a checkpoint."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint_file(path: str | Path, *, version: int, fix: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a checkpoint dict whose ``schema_version`` is
    ``version``; an unreadable file or another version is one CheckpointError ending in ``fix``."""
    import torch

    from searchq.errors import CheckpointError

    p = Path(path)
    try:
        payload = torch.load(p, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many kinds for a corrupt file
        raise CheckpointError(
            f"{p}: cannot read the checkpoint ({type(exc).__name__}: {exc}); it is corrupt: {fix}"
        ) from None
    found = payload.get("schema_version") if isinstance(payload, dict) else None
    if found != version:
        raise CheckpointError(f"{p}: checkpoint schema_version {found!r} is not {version}; {fix}")
    return payload


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_default) + "\n")


def _default(o: Any) -> Any:
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "items"):
        return dict(o.items())
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_json_file(path: str | Path, *, what: str, key: str | None = None) -> Any:
    """Read a JSON file a user pointed at; every failure is one located ConfigError."""
    from searchq.errors import ConfigError

    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found; check the path", key=key, file=str(p)) from None
    except IsADirectoryError:
        raise ConfigError(f"is a directory, not a {what} file", key=key, file=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} file: {exc}", key=key, file=str(p)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} file is not valid JSON ({exc.msg})",
            key=key,
            file=str(p),
            line=exc.lineno,
            column=exc.colno,
        ) from None
