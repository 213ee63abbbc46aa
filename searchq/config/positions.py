"""Where each key of a comment-JSON document sits in the ORIGINAL text.

jstyleson deletes comments and trailing commas before handing the text to ``json``, so every
position ``json`` reports (and every position we could compute on the cleaned text) is shifted.
:func:`dispose_mask` re-runs jstyleson 0.0.2's own state machine but only *marks* what it would
delete; from the mask we get both a position-preserving copy (deleted characters blanked with
spaces, newlines kept) and a map from cleaned-text offsets back to original offsets.
"""

from __future__ import annotations

import bisect
import json.decoder
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from searchq.config._common import KeyPath, format_path, parse_path
from searchq.errors import ConfigError

__all__ = ["SourceMap", "blank_comments", "build_source_map", "dispose_mask"]

# json's own string scanner (C-accelerated); not in typeshed, hence the getattr.
_scanstring: Callable[[str, int], tuple[str, int]] = getattr(json.decoder, "scanstring")  # noqa: B009


def dispose_mask(text: str) -> list[bool]:
    """For each character of ``text``: True if ``jstyleson.dispose`` keeps it.

    A faithful port of jstyleson 0.0.2 (quirks included: a ``*`` inside a block comment followed
    later by any ``/`` ends the comment; an escape outside strings skips one character), so the
    kept characters joined are exactly what jstyleson would parse.
    """
    keep = [True] * len(text)
    escaped, normal = False, True
    line_comment = block_comment = quoted = False
    step_in = step_out = False  # just saw '/' (maybe a comment starts) / '*' inside a block comment
    start = 0
    for index, char in enumerate(text):
        if escaped:
            escaped = False
            continue
        if step_in and char not in "/*":
            step_in = False
            normal = True
            continue
        if char == '"':
            if normal:
                quoted, normal = True, False
            elif quoted:
                quoted, normal = False, True
        elif char == "\\":
            escaped = normal or quoted
        elif char == "/":
            if step_in:
                step_in, line_comment, normal, start = False, True, False, index - 1
            elif step_out:
                step_out, block_comment, normal = False, False, True
                keep[start : index + 1] = [False] * (index + 1 - start)
            elif normal:
                step_in, normal = True, False
        elif char == "*":
            if step_in:
                step_in, block_comment, normal, start = False, True, False, index - 1
            elif block_comment:
                step_out = True
        elif char == "\n":
            if line_comment:
                line_comment, normal = False, True
                keep[start : index + 1] = [False] * (index + 1 - start)
        elif char in "]}" and normal:
            _drop_trailing_comma(text, keep, index)
    return keep


def _drop_trailing_comma(text: str, keep: list[bool], before: int) -> None:
    # Same backwards walk as jstyleson (negative indices wrap around exactly as its list does).
    i = before - 1
    while not keep[i] or text[i].isspace():
        i -= 1
    if text[i] == ",":
        keep[i] = False


def blank_comments(text: str, keep: Sequence[bool] | None = None) -> str:
    """``text`` with everything jstyleson would delete replaced by spaces (newlines kept)."""
    mask = dispose_mask(text) if keep is None else keep
    return "".join(c if k or c == "\n" else " " for c, k in zip(text, mask, strict=True))


@dataclass(frozen=True)
class SourceMap:
    """Offsets of every key (or list element) of a document, by JSON path.

    ``locate(path)`` gives 1-based ``(line, column)`` of the key, or of the nearest ancestor that
    was located (so errors deep inside a value still point somewhere useful).
    """

    file: str | None
    offsets: Mapping[KeyPath, int] = field(default_factory=lambda: MappingProxyType({}))
    line_starts: tuple[int, ...] = (0,)

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def locate(self, path: KeyPath | str) -> tuple[int, int] | None:
        key = parse_path(path) if isinstance(path, str) else tuple(path)
        while True:
            if key in self.offsets:
                return self.position(self.offsets[key])
            if not key:
                return None
            key = key[:-1]

    def error(
        self, path: KeyPath | str, message: str, cls: type[ConfigError] = ConfigError
    ) -> ConfigError:
        """A ConfigError of class ``cls`` located at ``path`` in this file."""
        key = path if isinstance(path, str) else format_path(path)
        where = self.locate(path)
        line, column = where if where is not None else (None, None)
        return cls(message, key=key or None, file=self.file, line=line, column=column)


def line_starts_of(text: str) -> tuple[int, ...]:
    starts = [0]
    starts.extend(i + 1 for i, c in enumerate(text) if c == "\n")
    return tuple(starts)


def build_source_map(blanked: str, *, file: str | None = None) -> SourceMap:
    """Scan comment-free JSON text and record the offset of every key / element."""
    return SourceMap(file, MappingProxyType(_scan(blanked)), line_starts_of(blanked))


_WS = " \t\n\r"
_SCALAR_END = ",]}:" + _WS


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _scan(text: str) -> dict[KeyPath, int]:
    # Iterative (no recursion limit) and forgiving: on anything unexpected it stops and returns what
    # it has, because it only serves locations; whether the text is valid JSON is json's business.
    offsets: dict[KeyPath, int] = {}
    try:
        _scan_into(text, offsets)
    except (IndexError, ValueError):
        pass
    return offsets


def _read_key(
    text: str, pos: int, path: KeyPath, offsets: dict[KeyPath, int]
) -> tuple[KeyPath, int]:
    if text[pos] != '"':
        raise ValueError("key expected")
    key, end = _scanstring(text, pos + 1)
    child = (*path, key)
    offsets[child] = pos
    end = _skip(text, end)
    if text[end] != ":":
        raise ValueError("colon expected")
    return child, _skip(text, end + 1)


def _scan_into(text: str, offsets: dict[KeyPath, int]) -> None:
    stack: list[tuple[str, KeyPath, list[int]]] = []
    pos = _skip(text, 0)
    path: KeyPath = ()
    offsets[path] = pos
    while True:
        char = text[pos]
        if char == "{":
            pos = _skip(text, pos + 1)
            if text[pos] != "}":
                stack.append(("{", path, [0]))
                path, pos = _read_key(text, pos, path, offsets)
                continue
            pos += 1
        elif char == "[":
            pos = _skip(text, pos + 1)
            if text[pos] != "]":
                stack.append(("[", path, [0]))
                path = (*path, 0)
                offsets[path] = pos
                continue
            pos += 1
        elif char == '"':
            _, pos = _scanstring(text, pos + 1)
        else:
            start = pos
            while pos < len(text) and text[pos] not in _SCALAR_END:
                pos += 1
            if pos == start:
                raise ValueError("value expected")
        # A value ended: close containers until one continues with a comma.
        while True:
            if not stack:
                return
            kind, parent, count = stack[-1]
            pos = _skip(text, pos)
            if text[pos] == ",":
                pos = _skip(text, pos + 1)
                if kind == "{":
                    path, pos = _read_key(text, pos, parent, offsets)
                else:
                    count[0] += 1
                    path = (*parent, count[0])
                    offsets[path] = pos
                break
            if text[pos] != ("}" if kind == "{" else "]"):
                raise ValueError("unexpected character")
            pos += 1
            stack.pop()
