from __future__ import annotations

import pytest
import torch
from torch import nn

from searchq.core.graph import ModelGraph
from searchq.errors import UnsupportedModelError
from searchq.tasks.models import mbv2_tiny, resnet20


class Mixed(nn.Module):
    """A conv, a depthwise conv and a linear with hand-countable MACs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)  # 8x8 -> 4x4
        self.dw = nn.Conv2d(8, 8, kernel_size=5, padding=2, groups=8, bias=False)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.dw(self.conv(x)), 1))


def test_macs_and_params_by_hand():
    g = ModelGraph.build(Mixed(), torch.randn(2, 3, 8, 8))
    conv, dw, fc = g.ops
    assert conv.macs == (8 * 4 * 4) * (3 * 3 * 3)  # out elements x (C_in/groups) x k*k
    assert dw.kind == "depthwise_conv2d" and dw.macs == (8 * 4 * 4) * (1 * 5 * 5)
    assert fc.macs == 128 * 10
    assert (conv.params, dw.params, fc.params) == (8 * 27 + 8, 8 * 25, 1280 + 10)
    assert conv.in_shape == (3, 8, 8) and conv.out_shape == (8, 4, 4)
    assert g.total_macs == conv.macs + dw.macs + fc.macs


def test_linear_macs_count_tokens():
    model = nn.Sequential(nn.Linear(16, 4))
    g = ModelGraph.build(model, torch.randn(2, 7, 16))
    assert g.ops[0].macs == 7 * 16 * 4


def test_conv1d_is_analysed():
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Conv1d(4, 4, 3, groups=4))
    g = ModelGraph.build(model, torch.randn(1, 2, 10))
    assert [o.kind for o in g.ops] == ["conv1d", "depthwise_conv1d"]
    assert g.ops[0].macs == 4 * 8 * 2 * 3


def test_resnet20_groups_blocks_and_channel_groups():
    g = ModelGraph.build(resnet20(), torch.randn(2, 1, 8, 8))
    assert len(g.ops) == 22  # stem + 18 block convs + 2 downsample convs + fc
    shared = {a.qname: set(a.consumers) for a in g.activation_groups if len(a.consumers) > 1}
    # the first block of stages 2 and 3 reads one tensor with conv1 and the downsample conv
    assert sorted(map(sorted, shared.values())) == [
        ["layer2.0.conv1", "layer2.0.downsample.0"],
        ["layer3.0.conv1", "layer3.0.downsample.0"],
    ]
    assert [b.name for b in g.blocks] == [
        "layer1.0",
        "layer1.1",
        "layer1.2",
        "layer2.1",
        "layer2.2",
        "layer3.1",
        "layer3.2",
    ]
    assert {b.stage for b in g.blocks} == {"layer1", "layer2", "layer3"}
    # residual adds tie each stage's block outputs (and the stem for stage 1)
    by_producer = {p: cg for cg in g.channel_groups for p in cg.producers}
    stage1 = by_producer["conv1"]
    assert set(stage1.producers) == {"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"}
    assert "bn1" in stage1.norms and not stage1.rigid
    stage3 = by_producer["layer3.0.conv2"]
    assert "layer3.0.downsample.0" in stage3.producers and "fc" in stage3.consumers
    inner = by_producer["layer2.1.conv1"]
    assert inner.producers == ("layer2.1.conv1",) and inner.consumers == ("layer2.1.conv2",)
    assert by_producer["fc"].rigid  # model output


def test_depthwise_ties_expand_and_project_channels():
    g = ModelGraph.build(mbv2_tiny(), torch.randn(2, 1, 8, 8))
    dws = [o for o in g.ops if o.is_depthwise]
    assert dws and all(o.kernel_size[0] in (5, 7) for o in dws)
    for cg in g.channel_groups:
        if cg.depthwise:
            assert len(cg.producers) == 1  # the expand conv feeding the depthwise conv
    assert g.blocks  # stride-1 same-width inverted residuals


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3)
        self.b = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow defeats torch.fx
            y = self.a(x)
        else:
            y = self.a(x)
        z = self.b(x)
        return self.fc((y + z).mean((2, 3)))


def test_hook_fallback_when_fx_fails():
    g = ModelGraph.build(Untraceable(), torch.randn(2, 1, 6, 6))
    assert g.method == "hooks"
    assert [o.name for o in g.ops] == ["a", "b", "fc"]
    assert g.activation_groups[0].consumers == ("a", "b")  # same input tensor
    assert any("torch.fx could not trace" in n for n in g.notes)
    assert g.blocks == () and g.channel_groups == ()


def test_notes_name_layers_it_cannot_analyse():
    class WithLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.LSTM(4, 4, batch_first=True)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.rnn(x)[0])

    g = ModelGraph.build(WithLSTM(), torch.randn(2, 3, 4))
    assert [o.name for o in g.ops] == ["fc"]
    assert any("rnn (LSTM) is not analysed" in n for n in g.notes)


def test_no_quantizable_layer_is_an_error():
    with pytest.raises(UnsupportedModelError, match="no quantizable layer"):
        ModelGraph.build(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), torch.randn(2, 3))


def test_build_keeps_batchnorm_statistics_and_modes():
    model = resnet20().train()
    before = model.bn1.running_mean.clone()
    ModelGraph.build(model, torch.randn(4, 1, 8, 8) * 5)
    assert torch.equal(model.bn1.running_mean, before)
    assert model.training


def test_shared_module_called_twice():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.fc(x)))

    g = ModelGraph.build(Twice(), torch.randn(2, 4))
    assert g.ops[0].calls == 2 and g.ops[0].macs == 2 * 16
