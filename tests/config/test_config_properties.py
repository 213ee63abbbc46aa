"""Property: any text or nested dict -> a SearchqConfig or a one-line ConfigError, nothing else."""

from __future__ import annotations

import copy
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from searchq.config import SearchqConfig, SearchqWarning, load_config
from searchq.errors import ConfigError

CORPUS = sorted(
    (Path(__file__).resolve().parents[2] / "tests" / "data" / "nncf-configs").glob("*/*.json")
)
SEEDS = [json.loads(p.read_text()) for p in CORPUS]

# Keys NNCF configs use, so random dicts reach the validators below the root.
KEYS = [
    "input_info", "sample_size", "target_device", "hw_config_type", "compression", "algorithm",
    "quantization", "magnitude_sparsity", "filter_pruning", "initializer", "range", "precision",
    "type", "bits", "hawq", "autoq", "manual", "bitwidth_per_scope", "weights", "activations",
    "mode", "ignored_scopes", "target_scopes", "params", "schedule", "multistep_steps",
    "multistep_sparsity_levels", "bootstrapNAS", "training", "search", "elasticity", "width",
    "log_dir", "model", "compression_ratio", "num_init_samples", "batchnorm_adaptation",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        KEYS + ["symmetric", "min_max", "NPU", "{re}.*", "ResNet/NNCFConv2d[c]/conv2d_0|WEIGHT"]
    ),
    st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), children, max_size=5
        ),
    ),
    max_leaves=25,
)
documents = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6)


def _load(source: Any) -> SearchqConfig | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SearchqWarning)
        try:
            config = load_config(source)
        except ConfigError as err:
            assert "\n" not in str(err)
            assert err.message
            return None
    assert isinstance(config, SearchqConfig)
    return config


def _assert_round_trip(config: SearchqConfig) -> None:
    # Compared as JSON text: a NaN kept in the user's own root keys is never == itself.
    again = _load(json.loads(json.dumps(config.to_dict())))
    assert again is not None
    assert json.dumps(again.to_dict(), sort_keys=True) == json.dumps(
        config.to_dict(), sort_keys=True
    )


@settings(max_examples=150, deadline=None)
@given(documents)
def test_any_nested_dict_loads_or_raises_config_error(doc: dict) -> None:
    config = _load(doc)
    if config is not None:
        _assert_round_trip(config)


def _mutate(doc: Any, path: list[Any], value: Any, action: str) -> Any:
    doc = copy.deepcopy(doc)
    node = doc
    for part in path[:-1]:
        node = node[part]
    last = path[-1]
    if action == "delete" and isinstance(node, dict):
        del node[last]
    elif action == "rename" and isinstance(node, dict):
        node[str(last) + "x"] = node.pop(last)
    else:
        node[last] = value
    return doc


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(doc, dict):
        items = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return out
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


@st.composite
def mutated_corpus_configs(draw: st.DrawFn) -> dict:
    doc = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        doc = _mutate(
            doc, list(path), draw(json_values), draw(st.sampled_from(["set", "delete", "rename"]))
        )
    return doc


@settings(max_examples=150, deadline=None)
@given(mutated_corpus_configs())
def test_mutated_real_configs_load_or_raise_config_error(doc: dict) -> None:
    config = _load(doc)
    if config is not None:
        _assert_round_trip(config)


text_like = st.one_of(
    st.text(max_size=40),
    st.text(alphabet='{}[],:"/\\*\n tfn0123456789.-eE', max_size=40),
    documents.map(lambda d: json.dumps(d)).flatmap(
        lambda s: st.integers(0, len(s)).map(lambda i: s[:i] + " // note\n" + s[i:])
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_like)
def test_any_text_file_loads_or_raises_located_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.json"
        path.write_text(text, encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SearchqWarning)
            try:
                config = load_config(path)
            except ConfigError as err:
                assert err.file == str(path)
                assert "\n" not in str(err)
                if err.line is not None:
                    assert 1 <= err.line <= text.count("\n") + 1
                return
        assert isinstance(config, SearchqConfig)
