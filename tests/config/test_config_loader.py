"""Comment-JSON decoding: jstyleson parity, its two faults, and exact error locations."""

from __future__ import annotations

import json
from pathlib import Path

import jstyleson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchq.config import load_config, parse_json_with_comments
from searchq.config.loader import read_config_text
from searchq.config.positions import blank_comments, build_source_map, dispose_mask
from searchq.errors import ConfigError


def _kept(text: str) -> str:
    return "".join(c for c, k in zip(text, dispose_mask(text), strict=True) if k)


# -- parity with jstyleson -----------------------------------------------------------------------

JSONISH = st.text(alphabet='{}[],:"/\\*\n ab1', max_size=24)


@settings(max_examples=400, deadline=None)
@given(JSONISH)
def test_dispose_mask_keeps_exactly_what_jstyleson_keeps(text: str) -> None:
    assert _kept(text) == jstyleson.dispose(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, // c\n "b": [1, 2,],}',
        '/* x */{"a": "//not a comment"}',
        '{"a": "x\\" // y"}',
        "[1, /* a * b / c */ 2]",  # jstyleson ends the comment at '* b /'
        "[,]",
    ],
)
def test_dispose_mask_on_known_quirks(text: str) -> None:
    assert _kept(text) == jstyleson.dispose(text)


def test_blanking_preserves_length_and_newlines() -> None:
    text = '{\n  // one\n  "a": 1, /* two\n  lines */ "b": [1,],\n}'
    blanked = blank_comments(text)
    assert len(blanked) == len(text)
    assert [i for i, c in enumerate(text) if c == "\n"] == [
        i for i, c in enumerate(blanked) if c == "\n"
    ]
    assert json.loads(blanked) == jstyleson.loads(text) == {"a": 1, "b": [1]}


# -- jstyleson fault (a): // comment on the last line without a final newline --------------------


def test_jstyleson_alone_fails_on_trailing_line_comment() -> None:
    with pytest.raises(json.JSONDecodeError):
        jstyleson.loads('{"a": 1}\n// the end')


def test_trailing_line_comment_without_newline_loads(write) -> None:
    path = write('{"compression": {"algorithm": "quantization"}}\n// the end, no newline')
    assert load_config(path).quantization is not None


# -- jstyleson fault (b): line numbers after removed comments -----------------------------------


def test_error_line_after_line_comments(write) -> None:
    text = '{\n  // first\n  // second\n  "a": 1\n  "b": 2\n}\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(text))
    # json on jstyleson's output would say line 3; the missing comma is before "b" on line 5.
    assert (info.value.line, info.value.column) == (5, 3)


def test_error_line_after_multiline_block_comment(write) -> None:
    text = '{\n  /* a\n     block\n     comment */\n  "a": [1, 2,, 3]\n}'
    with pytest.raises(ConfigError) as info:
        load_config(write(text))
    line5 = text.splitlines()[4]
    assert (info.value.line, info.value.column) == (5, line5.index(",,") + 2)  # the 2nd comma
    assert "\n" not in str(info.value)


def test_trailing_garbage_is_located(write) -> None:
    path = write('{"a": 1}\n\n  oops')
    with pytest.raises(ConfigError, match="after the end of the JSON document") as info:
        load_config(path)
    assert (info.value.file, info.value.line, info.value.column) == (str(path), 3, 3)


# -- file-level failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "is empty"), ("  \n\t", "is empty"), ("// only\n/* comments */", "only comments")],
)
def test_empty_documents(write, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(write(text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found") as info:
        load_config(tmp_path / "nope.json")
    assert info.value.file == str(tmp_path / "nope.json")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_non_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{\n  "model": "caf\xe9"\n}')
    with pytest.raises(ConfigError, match="not valid UTF-8") as info:
        load_config(path)
    assert (info.value.line, info.value.column) == (2, 16)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"log_dir": "runs"}')
    assert read_config_text(path) == '{"log_dir": "runs"}'
    assert load_config(path).log_dir == "runs"


def test_huge_integer_and_deep_nesting_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="too many digits"):
        parse_json_with_comments('{"a": ' + "9" * 5000 + "}")
    with pytest.raises(ConfigError, match="nested too deeply"):
        parse_json_with_comments("[" * 100_000 + "]" * 100_000)


# -- source map ---------------------------------------------------------------------------------


def test_source_map_locates_keys_and_list_items() -> None:
    text = (
        '{\n  // c\n  "compression": [\n    {"algorithm": "quantization",\n'
        '     "x": [7, {"y": 1}]}\n  ]\n}'
    )
    value, source = parse_json_with_comments(text, file="f.json")
    assert value == {"compression": [{"algorithm": "quantization", "x": [7, {"y": 1}]}]}
    assert source.locate(("compression",)) == (3, 3)
    assert source.locate(("compression", 0)) == (4, 5)
    assert source.locate(("compression", 0, "algorithm")) == (4, 6)
    assert source.locate(("compression", 0, "x", 1, "y")) == (5, 16)
    # unknown paths fall back to the nearest located ancestor (here the element {"y": 1})
    assert source.locate(("compression", 0, "x", 1, "zzz", 3)) == (5, 15)
    assert source.locate("compression[0].x[1].y") == (5, 16)


def test_source_map_of_broken_text_is_partial_not_an_exception() -> None:
    source = build_source_map('{"a": 1, "b": [1, 2')
    assert source.locate(("a",)) == (1, 2)
    assert source.locate(("b", 0)) is not None
