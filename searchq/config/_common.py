"""Small helpers shared by the config modules: key paths, suggestions, immutable copies, checks."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from searchq._frozen import FrozenDict, freeze, thaw  # noqa: F401  (re-exported)
from searchq.errors import ConfigError

__all__ = [
    "KeyPath",
    "FrozenDict",
    "check_bool",
    "check_choice",
    "check_int",
    "check_keys",
    "check_scopes",
    "check_number",
    "did_you_mean",
    "format_path",
    "freeze",
    "json_type_name",
    "parse_path",
    "prefixed",
    "short_repr",
    "suggest",
    "thaw",
]

#: A location inside a JSON document: object keys and list indices from the root.
KeyPath = tuple[str | int, ...]

_PATH_TOKEN = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


def format_path(path: Sequence[str | int]) -> str:
    """``("compression", 0, "initializer")`` -> ``"compression[0].initializer"``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_path(text: str) -> KeyPath:
    """Inverse of :func:`format_path` for keys without ``.``/``[``/``]`` in them."""
    parts: list[str | int] = []
    for match in _PATH_TOKEN.finditer(text):
        index, key = match.groups()
        parts.append(int(index) if index is not None else key)
    return tuple(parts)


def suggest(word: object, candidates: Iterable[str], *, prefixes: bool = True) -> str | None:
    """Closest candidate to ``word`` (case-insensitive first), or None if nothing is close.

    With ``prefixes``, a word of 3+ letters that starts exactly one candidate also counts.
    """
    if not isinstance(word, str):
        return None
    pool = list(candidates)
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered:
        return lowered[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.75)
    if close:
        return lowered[close[0]]
    # An abbreviation ("sym" for "symmetric") is too short for difflib's ratio.
    if not prefixes or len(word) < 3:
        return None
    starts = [c for low, c in lowered.items() if low.startswith(word.lower())]
    return starts[0] if len(starts) == 1 else None


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` or an empty string."""
    hit = suggest(word, candidates)
    return f" (did you mean {hit!r}?)" if hit is not None else ""


def short_repr(value: object, limit: int = 60) -> str:
    """repr() cut to one short line so that messages stay on one line."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def json_type_name(value: object) -> str:
    """The JSON name of a Python value's type (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


@contextmanager
def prefixed(path: Sequence[str | int]) -> Iterator[None]:
    """Give ConfigErrors raised inside (e.g. by ``__post_init__``) the full key path as their key.

    Spec classes only know their own field names; the caller knows where the spec sits in the
    document, so it prefixes the key on the way out. Errors already carrying a full path (from a
    nested ``from_dict``) or a file location pass through unchanged.
    """
    try:
        yield
    except ConfigError as err:
        if getattr(err, "_searchq_absolute", False) or err.file is not None:
            raise
        full = format_path((*path, *parse_path(err.key or "")))
        new = type(err)(err.message, key=full or None)
        setattr(new, "_searchq_absolute", True)  # noqa: B010 - ConfigError has no such field
        raise new from None


def check_keys(
    data: object, allowed: Sequence[str], *, ignored: Sequence[str] = ()
) -> Mapping[str, Any]:
    """``data`` as a mapping whose keys are all in ``allowed`` (or ``ignored``), else raise.

    Keys in ``ignored`` are accepted and dropped: NNCF keys searchq knows but does not act on
    (the loader warns about them).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"expected an object {{...}}, got {json_type_name(data)} {short_repr(data)}"
        )
    for key in data:
        if key not in allowed and key not in ignored:
            raise ConfigError(
                f"unknown key {short_repr(key)}{did_you_mean(key, allowed)}; allowed keys here: "
                f"{', '.join(allowed)}; rename or remove it",
                key=format_path((key,)) if isinstance(key, str) else None,
            )
    return {k: v for k, v in data.items() if k in allowed}


def check_bool(key: str, value: object) -> bool:
    """``value`` if it is a JSON boolean, else raise."""
    if not isinstance(value, bool):
        raise ConfigError(
            f"got {json_type_name(value)} {short_repr(value)}; expected true or false", key=key
        )
    return value


def check_scopes(key: str, value: object) -> tuple[str, ...]:
    """NNCF scope lists: a string or a list of non-empty strings -> tuple."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(s, str) and s for s in items):
        raise ConfigError(
            f"got {short_repr(value)}; expected a scope string or a list of non-empty strings",
            key=key,
        )
    return tuple(items)


def check_number(
    key: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as float if it is a finite number in the given range, else raise."""
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    allowed = (
        f"a number in {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
    )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"got {json_type_name(value)} {short_repr(value)}; expected {allowed}", key=key
        )
    number = float(value)
    bad = not math.isfinite(number)
    if low is not None:
        bad = bad or number < low or (low_open and number == low)
    if high is not None:
        bad = bad or number > high or (high_open and number == high)
    if bad:
        raise ConfigError(f"{short_repr(value)} is out of range; expected {allowed}", key=key)
    return number


def check_int(key: str, value: object, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as int if it is an integral number within [low, high], else raise."""
    span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"got {json_type_name(value)} {short_repr(value)}; expected an integer in {span}",
            key=key,
        )
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ConfigError(
            f"{short_repr(value)} is not a whole number; expected an integer in {span}", key=key
        )
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ConfigError(f"{number} is out of range; expected an integer in {span}", key=key)
    return number


def check_choice(key: str, value: object, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed`` (exact match), else raise with a suggestion."""
    if isinstance(value, str) and value in allowed:
        return value
    choices = ", ".join(repr(a) for a in allowed)
    hint = did_you_mean(value, allowed)
    raise ConfigError(
        f"{short_repr(value)} is not allowed{hint}; allowed values: {choices}", key=key
    )
