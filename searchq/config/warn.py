"""The warning class for config keys searchq reads but does not act on, issued once per key."""

from __future__ import annotations

import os
import sys
import threading
import warnings

__all__ = ["SearchqWarning", "warn_once"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class SearchqWarning(UserWarning):
    """A config value searchq accepts but ignores (or interprets differently from NNCF)."""


_LOCK = threading.Lock()
_WARNED: set[str] = set()


def _caller_stacklevel() -> int:
    # Point the warning at the first frame outside searchq.config (the user's load_config call).
    frame = sys._getframe(1)
    level = 1
    while (
        frame.f_back is not None
        and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _PACKAGE_DIR
    ):
        frame = frame.f_back
        level += 1
    return level


def warn_once(key: str, message: str) -> bool:
    """Warn ``"<key>: <message>"`` the first time ``key`` is seen in this process.

    Returns True if a warning was issued. Keys are dotted paths without list indices, so a key
    repeated in many entries (or many files) is reported only once.
    """
    with _LOCK:
        if key in _WARNED:
            return False
        _WARNED.add(key)
    warnings.warn(f"{key}: {message}", SearchqWarning, stacklevel=_caller_stacklevel())
    return True


def _reset_warned_keys() -> None:
    """Forget which keys were warned about (for tests)."""
    with _LOCK:
        _WARNED.clear()
