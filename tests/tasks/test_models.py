from __future__ import annotations

import operator
from collections import Counter

import pytest
import torch
from torch import fx, nn

from searchq.errors import TaskError
from searchq.tasks.models import (
    BasicBlock,
    InvertedResidual,
    MobileNetV2Tiny,
    ResNet,
    TinyCNN,
    init_weights,
    mbv2_tiny,
    resnet20,
    tiny_cnn,
)

BUILDERS = {"resnet20": resnet20, "tiny_cnn": tiny_cnn, "mbv2_tiny": mbv2_tiny}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv(c_in: int, c_out: int, k: int, groups: int = 1) -> int:
    return c_out * (c_in // groups) * k * k  # no bias: every conv is followed by a BN


def bn(c: int) -> int:
    return 2 * c  # weight + bias (running stats are buffers)


def test_resnet20_param_count_by_hand():
    stem = conv(1, 16, 3) + bn(16)  # 144 + 32 = 176
    block16 = 2 * conv(16, 16, 3) + 2 * bn(16)  # 2*2304 + 64 = 4672
    layer1 = 3 * block16  # 14016
    down2 = conv(16, 32, 3) + conv(32, 32, 3) + 2 * bn(32) + conv(16, 32, 1) + bn(32)  # 14528
    block32 = 2 * conv(32, 32, 3) + 2 * bn(32)  # 18560
    layer2 = down2 + 2 * block32  # 51648
    down3 = conv(32, 64, 3) + conv(64, 64, 3) + 2 * bn(64) + conv(32, 64, 1) + bn(64)  # 57728
    block64 = 2 * conv(64, 64, 3) + 2 * bn(64)  # 73984
    layer3 = down3 + 2 * block64  # 205696
    fc = 64 * 10 + 10  # 650
    expected = stem + layer1 + layer2 + layer3 + fc
    assert expected == 272_186
    assert n_params(resnet20()) == expected


def test_tiny_cnn_and_mbv2_param_counts_by_hand():
    tiny = conv(1, 8, 3) + bn(8) + conv(8, 16, 3) + bn(16) + conv(16, 16, 3) + bn(16) + 16 * 10 + 10
    assert n_params(tiny_cnn()) == tiny == 3778

    def ir(c_in: int, c_out: int, k: int, t: int = 3) -> int:
        h = c_in * t
        return (
            conv(c_in, h, 1)
            + bn(h)
            + conv(h, h, k, groups=h)
            + bn(h)
            + conv(h, c_out, 1)
            + bn(c_out)
        )

    mbv2 = (
        conv(1, 16, 3)
        + bn(16)
        + ir(16, 16, 5)
        + ir(16, 24, 5)
        + ir(24, 24, 7)
        + ir(24, 32, 5)
        + ir(32, 32, 7)
        + 32 * 10
        + 10
    )
    assert n_params(mbv2_tiny()) == mbv2 == 31_626


def test_resnet20_module_names_and_classes():
    model = resnet20()
    modules = dict(model.named_modules())
    assert type(model) is ResNet
    expected_types = {
        "conv1": nn.Conv2d,
        "bn1": nn.BatchNorm2d,
        "relu": nn.ReLU,
        "layer1.0": BasicBlock,
        "layer1.0.conv1": nn.Conv2d,
        "layer1.0.bn1": nn.BatchNorm2d,
        "layer1.0.relu1": nn.ReLU,
        "layer1.0.conv2": nn.Conv2d,
        "layer1.0.bn2": nn.BatchNorm2d,
        "layer1.0.relu2": nn.ReLU,
        "layer2.0.downsample.0": nn.Conv2d,
        "layer2.0.downsample.1": nn.BatchNorm2d,
        "layer3.0.downsample.0": nn.Conv2d,
        "layer3.2.conv2": nn.Conv2d,
        "fc": nn.Linear,
    }
    for name, cls in expected_types.items():
        assert type(modules[name]) is cls, name
    # option B shortcut only where the shape changes
    downsamples = sorted(n for n in modules if n.endswith("downsample"))
    assert downsamples == ["layer2.0.downsample", "layer3.0.downsample"]
    ds = modules["layer2.0.downsample.0"]
    assert isinstance(ds, nn.Conv2d) and ds.kernel_size == (1, 1) and ds.stride == (2, 2)
    convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 18 + 2  # stem + 9 blocks x 2 + 2 shortcuts -> "20" = 19 convs + fc


def test_resnet20_width_and_classes_are_configurable():
    model = resnet20(num_classes=7, in_channels=3, width=(8, 16, 32))
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 7)
    assert model.layer3[0].conv1.out_channels == 32
    with pytest.raises(TaskError, match="3 stages"):
        resnet20(width=(16, 32))


def test_mbv2_tiny_layout():
    model = mbv2_tiny()
    assert type(model) is MobileNetV2Tiny
    blocks = list(model.features)
    assert 3 <= len(blocks) <= 6 and all(type(b) is InvertedResidual for b in blocks)
    modules = dict(model.named_modules())
    for i in range(len(blocks)):
        expand, dw, project = (modules[f"features.{i}.conv.{j}"] for j in (0, 3, 6))
        assert isinstance(expand, nn.Conv2d) and expand.kernel_size == (1, 1)
        assert isinstance(project, nn.Conv2d) and project.kernel_size == (1, 1)
        assert isinstance(dw, nn.Conv2d) and dw.groups == dw.in_channels == dw.out_channels
        assert dw.kernel_size[0] in (5, 7) and dw.padding == (dw.kernel_size[0] // 2,) * 2
        assert isinstance(modules[f"features.{i}.conv.2"], nn.ReLU6)
        assert isinstance(modules[f"features.{i}.conv.7"], nn.BatchNorm2d)
        # residual exactly when the block keeps its shape
        keeps_shape = dw.stride == (1, 1) and expand.in_channels == project.out_channels
        assert blocks[i].use_residual == keeps_shape
    channels = [b.conv[6].out_channels for b in blocks]
    assert all(16 <= c <= 48 for c in channels)
    assert {b.conv[3].kernel_size[0] for b in blocks} == {5, 7}


def test_tiny_cnn_class():
    assert type(tiny_cnn()) is TinyCNN


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fx_trace_matches_eager_and_each_module_is_called_once(name):
    model = BUILDERS[name]().eval()
    traced = fx.symbolic_trace(model)
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(traced(x), model(x))
    calls = Counter(n.target for n in traced.graph.nodes if n.op == "call_module")
    leaf_modules = {
        n
        for n, m in model.named_modules()
        if not list(m.children()) and not isinstance(m, nn.Identity)
    }
    # every leaf (incl. each activation) is a distinct use site, called exactly once
    assert set(calls) == leaf_modules
    assert set(calls.values()) == {1}
    # no module object is registered under two names
    all_modules = list(model.named_modules(remove_duplicate=False))
    assert len({id(m) for _, m in all_modules}) == len(all_modules)


def test_resnet20_residual_adds_are_traced():
    graph = fx.symbolic_trace(resnet20()).graph
    adds = [n for n in graph.nodes if n.op == "call_function" and n.target is operator.add]
    assert len(adds) == 9  # one per BasicBlock


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_generator_init_is_deterministic_and_leaves_global_rng_alone(name):
    state = torch.get_rng_state()
    a = BUILDERS[name](generator=torch.Generator().manual_seed(3))
    b = BUILDERS[name](generator=torch.Generator().manual_seed(3))
    c = BUILDERS[name](generator=torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_init_weights_zeroes_last_bn_of_residual_branches():
    model = init_weights(resnet20(), generator=torch.Generator().manual_seed(0))
    assert torch.count_nonzero(model.layer1[0].bn2.weight) == 0
    assert torch.all(model.layer1[0].bn1.weight == 1)
    mbv2 = init_weights(mbv2_tiny(), generator=torch.Generator().manual_seed(0))
    for block in mbv2.features:
        gamma = block.conv[7].weight
        assert (torch.count_nonzero(gamma) == 0) == block.use_residual
