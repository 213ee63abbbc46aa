"""Read NNCF-style JSON (``//`` and ``/* */`` comments, trailing commas) with exact error locations.

The decode itself is jstyleson's, so searchq accepts exactly the files NNCF accepts. Two faults of
jstyleson 0.0.2 are worked around here:

* a ``//`` comment on the last line without a final newline is never closed, so the comment text
  reaches ``json`` -> we append ``"\\n"`` before decoding;
* deleted comments take their newlines with them (and so do trailing commas' neighbours), so the
  line/column ``json`` reports are wrong -> we translate the offset through the deletion mask of
  :func:`~searchq.config.positions.dispose_mask` back to the original text.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jstyleson  # type: ignore[import-untyped]

from searchq.config.positions import (
    SourceMap,
    blank_comments,
    build_source_map,
    dispose_mask,
    line_starts_of,
)
from searchq.errors import ConfigError

__all__ = ["parse_json_with_comments", "read_config_text"]

_SYNTAX_HINTS = (
    (re.compile(r"Expecting property name"), "expected a quoted key or '}'"),
    (re.compile(r"Expecting ',' delimiter"), "expected ',' or a closing bracket after a value"),
    (re.compile(r"Expecting ':' delimiter"), "expected ':' after a key"),
    (
        re.compile(r"Expecting value"),
        "expected a value (object, array, string, number, true/false/null)",
    ),
    (re.compile(r"Unterminated string"), "a string is not closed with '\"'"),
    (
        re.compile(r"Invalid control character"),
        "raw control character (e.g. newline) inside a string",
    ),
    (re.compile(r"Invalid \\escape|Invalid \\u"), "invalid backslash escape in a string"),
    (re.compile(r"Extra data"), "unexpected text after the end of the JSON document"),
)
_FIX = "fix the syntax there (NNCF configs are JSON plus // and /* */ comments and trailing commas)"


def read_config_text(path: str | os.PathLike[str]) -> str:
    """Read a config file as UTF-8 text; every failure is a one-line ConfigError naming the file."""
    name = os.fspath(path)
    file = Path(name)
    if not file.exists():
        raise ConfigError(
            "file not found; check the path (relative paths start from the working directory)",
            file=name,
        )
    if file.is_dir():
        raise ConfigError(
            "is a directory, not a config file; pass the path of a .json file", file=name
        )
    try:
        data = file.read_bytes()
    except OSError as err:
        raise ConfigError(
            f"cannot read file ({err.strerror}); check its permissions", file=name
        ) from None
    try:
        # utf-8-sig: a byte-order mark written by some editors is not a JSON error.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise ConfigError(
            f"byte 0x{data[err.start]:02x} is not valid UTF-8; save the file as UTF-8",
            file=name,
            line=line,
            column=column,
        ) from None


def parse_json_with_comments(text: str, *, file: str | None = None) -> tuple[object, SourceMap]:
    """Decode comment-JSON like NNCF does and return the value with a :class:`SourceMap`.

    Raises a one-line :class:`ConfigError` with ``file:line:column`` of the ORIGINAL text for empty
    input, syntax errors, trailing garbage, numbers Python cannot hold and too-deep nesting.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    padded = text if text.endswith("\n") else text + "\n"
    keep = dispose_mask(padded)
    blanked = blank_comments(padded, keep)
    if not blanked.strip():
        what = "is empty" if not text.strip() else "contains only comments"
        raise ConfigError(
            f'{what}; a config must be a JSON object such as {{"compression": {{...}}}}', file=file
        )
    try:
        value = jstyleson.loads(padded)
    except json.JSONDecodeError as err:
        raise _syntax_error(err, text, keep, file) from None
    except RecursionError:
        raise ConfigError("nested too deeply to decode; flatten the structure", file=file) from None
    except ValueError:  # integers longer than Python's int-string limit (4300 digits)
        raise ConfigError(
            "a number has too many digits for Python to read; shorten it", file=file
        ) from None
    return value, build_source_map(blanked, file=file)


def _syntax_error(
    err: json.JSONDecodeError, text: str, keep: list[bool], file: str | None
) -> ConfigError:
    kept = [i for i, k in enumerate(keep) if k]
    # err.pos indexes the cleaned text jstyleson produced; map it back to the original text
    # (clamped to it: the newline we appended does not exist in the file).
    offset = kept[err.pos] if err.pos < len(kept) else len(keep)
    offset = min(offset, len(text))
    starts = line_starts_of(text)
    probe = SourceMap(file, line_starts=starts)
    line, column = probe.position(offset)
    hint = next((h for pattern, h in _SYNTAX_HINTS if pattern.search(err.msg)), err.msg)
    return ConfigError(f"invalid JSON: {hint}; {_FIX}", file=file, line=line, column=column)
