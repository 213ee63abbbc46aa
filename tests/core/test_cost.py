from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from searchq.core.assignment import Assignment
from searchq.core.cost import CostModel, LatencyTable, bit_complexity_ratio, size_ratio
from searchq.core.graph import ModelGraph
from searchq.errors import ConfigError


@pytest.fixture(scope="module")
def graph():
    # 3 layers: conv 1->2 (3x3, 4x4 out), conv 2->2 (1x1), linear 32->3
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 1), nn.Flatten(), nn.Linear(32, 3)
    )
    return ModelGraph.build(model, torch.randn(1, 1, 4, 4))


def test_three_layer_bit_complexity_by_hand(graph):
    macs = [o.macs for o in graph.ops]
    assert macs == [2 * 16 * 9, 2 * 16 * 2, 32 * 3]  # 288, 64, 96
    a = Assignment(
        weights={"0.weight": 4, "2.weight": 8, "4.weight": 2},
        activations={"0.input": 8, "2.input": 4, "4.input": 4},
    )
    # max(w, a): 8, 8, 4  ->  (288+64+96)*8 / (288*8 + 64*8 + 96*4)
    want = (448 * 8) / (288 * 8 + 64 * 8 + 96 * 4)
    assert bit_complexity_ratio(graph, a) == pytest.approx(want)
    assert [o.weight_numel for o in graph.ops] == [18, 4, 96]
    assert size_ratio(graph, a) == pytest.approx((18 * 4 + 4 * 8 + 96 * 2) / (118 * 32))


def test_uniform_references(graph):
    def uniform(b):
        return Assignment(
            weights={o.weight_qname: b for o in graph.ops},
            activations={o.input_group: b for o in graph.ops},
        )

    assert bit_complexity_ratio(graph, uniform(8)) == pytest.approx(1.0)
    assert bit_complexity_ratio(graph, uniform(4)) == pytest.approx(2.0)
    assert size_ratio(graph, uniform(8)) == pytest.approx(0.25)


@settings(max_examples=100, deadline=None)
@given(
    bits=st.lists(st.integers(2, 16), min_size=6, max_size=6),
    idx=st.integers(0, 5),
    up=st.integers(1, 6),
)
def test_cost_is_monotone_in_bits(graph, bits, idx, up):
    names = [o.weight_qname for o in graph.ops] + [o.input_group for o in graph.ops]

    def make(bs):
        d = dict(zip(names, bs, strict=True))
        return Assignment(
            weights={k: v for k, v in d.items() if k.endswith("weight")},
            activations={k: v for k, v in d.items() if k.endswith("input")},
        )

    raised = list(bits)
    raised[idx] = min(16, raised[idx] + up)
    lo, hi = make(bits), make(raised)
    assert bit_complexity_ratio(graph, hi) <= bit_complexity_ratio(graph, lo) + 1e-12
    assert size_ratio(graph, hi) >= size_ratio(graph, lo) - 1e-12


def test_latency_table(graph, tmp_path):
    table = {
        "conv2d": {"8": {"8": 1.0, "4": 0.7}, "4": {"4": 0.5, "8": 0.8}},
        "4": {"8": {"8": 2.0}},
    }
    p = tmp_path / "lat.json"
    p.write_text(json.dumps(table))
    lt = LatencyTable.load(p)
    a = Assignment(
        weights={"0.weight": 4, "2.weight": 8, "4.weight": 8},
        activations={"0.input": 4, "2.input": 8, "4.input": 8},
    )
    assert lt.latency(graph, a) == pytest.approx(0.5 + 1.0 + 2.0)
    with pytest.raises(ConfigError, match="lacks w_bits 2"):
        lt.latency(graph, a.replace(weights={**a.weights, "0.weight": 2}))
    assert CostModel(graph, lt).summary(a)["latency_ms"] == pytest.approx(3.5)
    p.write_text("{not json")
    with pytest.raises(
        ConfigError, match="lat.json:1:2: latency_table: latency table file is not valid JSON"
    ):
        LatencyTable.load(p)
