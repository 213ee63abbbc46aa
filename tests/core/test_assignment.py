from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from searchq.core.assignment import Assignment
from searchq.errors import CheckpointError, ConfigError

names = st.from_regex(r"[a-z][a-z0-9_.]{0,12}", fullmatch=True)
assignments = st.builds(
    Assignment,
    weights=st.dictionaries(names.map(lambda n: n + ".weight"), st.integers(2, 16), max_size=6),
    activations=st.dictionaries(names.map(lambda n: n + ".input"), st.integers(2, 16), max_size=6),
    subnet=st.none()
    | st.fixed_dictionaries(
        {
            "width": st.dictionaries(names, st.integers(1, 64), max_size=3),
            "depth": st.lists(st.integers(0, 5), max_size=4),
        }
    ),
    sparsity=st.none() | st.dictionaries(names, st.floats(0, 0.99), max_size=3),
)


@given(assignments)
def test_json_round_trip_is_identity(a):
    text = json.dumps(a.to_dict())
    b = Assignment.from_dict(json.loads(text))
    assert b == a and hash(b) == hash(a) and b.to_dict() == a.to_dict()


def test_file_round_trip_and_result_json(tmp_path):
    a = Assignment(weights={"fc.weight": 4}, activations={"fc.input": 8})
    a.to_json(tmp_path / "a.json")
    assert Assignment.from_json(tmp_path / "a.json") == a
    (tmp_path / "r.json").write_text(json.dumps({"assignment": a.to_dict(), "metrics": {}}))
    assert Assignment.from_json(tmp_path / "r.json") == a
    (tmp_path / "plain.json").write_text('{"fc.weight": 4, "fc.input": 8}')
    assert Assignment.from_json(tmp_path / "plain.json") == a


def test_schema_version_and_bad_input(tmp_path):
    with pytest.raises(CheckpointError, match="schema_version 99"):
        Assignment.from_dict({"schema_version": 99, "weights": {}})
    with pytest.raises(ConfigError, match="integer number of bits"):
        Assignment(weights={"a.weight": "8"})
    with pytest.raises(ConfigError, match="neither"):
        Assignment.from_dict({"conv1": 8})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="bad.json:1:2"):
        Assignment.from_json(tmp_path / "bad.json")


def test_frozen_and_hashable():
    a = Assignment(weights={"x.weight": 8})
    with pytest.raises(TypeError):
        a.weights["x.weight"] = 4  # type: ignore[index]
    assert {a: 1}[Assignment(weights={"x.weight": 8})] == 1
