from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from searchq.config.warn import _reset_warned_keys


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    # warn_once is per process; every test starts as if it were the first load.
    _reset_warned_keys()
    yield
    _reset_warned_keys()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``text`` to ``tmp_path/name`` byte-for-byte (no newline added) and return the path."""

    def _write(text: str, name: str = "config.json") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8"))
        return path

    return _write
