from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from searchq.core.assignment import Assignment
from searchq.core.graph import ModelGraph
from searchq.core.hardware import list_presets, load_hardware
from searchq.core.space import QuantSpace, snap
from searchq.errors import ConfigError, HardwareConstraintError


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.c2 = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.c2(torch.relu(self.dw(torch.relu(self.c1(x))))).mean((2, 3)))


@pytest.fixture(scope="module")
def graph():
    return ModelGraph.build(Net(), torch.randn(2, 1, 6, 6))


def test_presets_follow_nncf(graph):
    assert list_presets() == ["cpu", "gpu", "npu", "trial"]
    npu = load_hardware("NPU")
    assert npu.allowed_bits("conv", "weights") == (2, 4, 8, 16)
    assert npu.allowed_bits("conv", "activations") == (4, 8, 16)
    assert npu.allowed_bits("depthwise_conv", "weights") == (2, 4, 8, 16)
    assert npu.allowed_bits("depthwise_conv", "activations") == (8, 16)
    assert npu.allowed_bits("conv", "activations", mode="asymmetric") == (8, 16)  # q4 is symmetric
    for name in ("cpu", "gpu", "any", "cpu_spr"):
        hw = load_hardware(name)
        assert hw.allowed_bits("linear", "weights") == (8, 16)
    assert load_hardware("vpu").name == "npu"
    assert load_hardware("trial").allowed_bits("conv", "weights") == tuple(range(2, 17))


def test_space_intersects_user_bits_with_preset(graph):
    s = QuantSpace(graph, "npu", weight_bits=[2, 4, 8], activation_bits=[2, 4, 8])
    assert s.point("dw.weight").bits == (2, 4, 8)
    assert s.point("dw.input").bits == (8,)  # depthwise inputs: 8/16 only
    assert s.point("c1.input").bits == (4, 8)
    assert s.point("c1.weight").narrow_range[8] is True  # NNCF q8_w_sym is narrow range


def test_bits_no_quantizer_may_use_are_an_error(graph):
    with pytest.raises(HardwareConstraintError, match=r"bits \[3\] are forbidden by preset 'npu'"):
        QuantSpace(graph, "npu", weight_bits=[3, 8])
    with pytest.raises(HardwareConstraintError, match="allows \\[8, 16\\]"):
        QuantSpace(graph, "cpu", weight_bits=[4])


def test_check_names_the_quantizer_and_allowed_set(graph):
    s = QuantSpace(graph, "npu")
    bad = s.maximal().replace(activations={**s.maximal().activations, "dw.input": 4})
    with pytest.raises(HardwareConstraintError, match=r"dw.input = 4 bits .* allowed \[8, 16\]"):
        s.check(bad)
    with pytest.raises(HardwareConstraintError, match="did you mean 'c2.weight'"):
        s.check(Assignment(weights={"c2.weigth": 8}))


def test_strict_mode_ties_adjacent_quantizers(graph):
    s = QuantSpace(
        graph, "npu", weight_bits=[2, 4, 8], activation_bits=[2, 4, 8], assignment_mode="strict"
    )
    assert ("dw.input", "dw.weight") in s.groups
    assert s.group_bits(("dw.input", "dw.weight")) == (8,)
    a = s.repair(Assignment(weights={"c1.weight": 2}))
    assert a.weights["c1.weight"] == a.activations["c1.input"]
    with pytest.raises(HardwareConstraintError, match="share one bitwidth"):
        s.check(
            a.replace(
                weights={**a.weights, "c1.weight": 8}, activations={**a.activations, "c1.input": 4}
            )
        )
    with pytest.raises(ConfigError, match="bitwidth_assignment_mode"):
        QuantSpace(graph, "npu", assignment_mode="loose")


@settings(max_examples=80, deadline=None)
@given(
    hw=st.sampled_from(["cpu", "npu", "trial"]),
    mode=st.sampled_from(["liberal", "strict"]),
    values=st.dictionaries(
        st.sampled_from(
            [
                "c1.weight",
                "dw.weight",
                "c2.weight",
                "fc.weight",
                "c1.input",
                "dw.input",
                "c2.input",
                "fc.input",
            ]
        ),
        st.integers(1, 32),
    ),
)
def test_repair_is_feasible_and_idempotent(graph, hw, mode, values):
    s = QuantSpace(graph, hw, assignment_mode=mode)
    raw = Assignment(
        weights={k: v for k, v in values.items() if k.endswith("weight")},
        activations={k: v for k, v in values.items() if k.endswith("input")},
    )
    fixed = s.repair(raw)
    s.check(fixed)
    assert s.repair(fixed) == fixed


@given(v=st.integers(-5, 40), allowed=st.lists(st.integers(2, 16), min_size=1, unique=True))
def test_snap_is_nearest_and_prefers_more_bits(v, allowed):
    got = snap(v, allowed)
    assert got in allowed
    assert all(
        abs(got - v) < abs(b - v) or (abs(got - v) == abs(b - v) and got >= b) for b in allowed
    )


def test_uniform_minimal_maximal(graph):
    s = QuantSpace(graph, "npu")
    assert set(s.uniform(4).weights.values()) == {4}
    assert s.uniform(4).activations["dw.input"] == 8  # snapped to what the depthwise input allows
    assert set(s.minimal().weights.values()) == {2}
    assert set(s.maximal().bits.values()) == {16}


def test_skip_ops_and_weights_only(graph):
    s = QuantSpace(graph, "trial", skip_ops=["fc"], quantize_activations=False)
    assert [p.qname for p in s.points] == ["c1.weight", "dw.weight", "c2.weight"]
