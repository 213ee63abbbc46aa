"""Choice lists follow NNCF's rules; bad configs are one-line errors."""

from __future__ import annotations

import pytest
import torch

from searchq.core.graph import ModelGraph
from searchq.elastic.space import ElasticSpace, SubnetConfig, kernel_choices, width_choices
from searchq.errors import ConfigError
from searchq.tasks.models import mbv2_tiny, resnet20


def test_width_lists_follow_nncf():
    # NNCF's multiplier rule: floor(max * m), down to a multiple of 8, at least min_width
    assert width_choices(64, multipliers=[1, 0.80, 0.60], min_width=32) == [64, 48, 32]
    assert width_choices(64, multipliers=[0.75, 0.5], min_width=8) == [64, 48, 32]
    assert width_choices(16, multipliers=[1, 0.75, 0.5], min_width=8) == [16, 8]
    # NNCF's step rule: max, max - step, ... >= min_width, at most max_num_widths values
    assert width_choices(256, multipliers=None, width_step=32, min_width=32) == [
        256,
        224,
        192,
        160,
        128,
        96,
        64,
        32,
    ]
    assert width_choices(256, multipliers=None, width_step=32, min_width=32, max_num_widths=3) == [
        256,
        224,
        192,
    ]
    # NNCF's defaults leave a 32-channel layer rigid
    assert width_choices(32, multipliers=None, width_step=32, min_width=32) == [32]
    with pytest.raises(ConfigError, match="width.min_width"):
        width_choices(16, min_width=0)
    with pytest.raises(ConfigError, match=r"multipliers \[1.5\]"):
        width_choices(16, multipliers=[1.5])


def test_kernel_lists_follow_nncf():
    assert kernel_choices(7) == [7, 5, 3]
    assert kernel_choices(7, max_num_kernels=2) == [7, 5]
    assert kernel_choices(3) == [3]
    with pytest.raises(ConfigError, match="even"):
        kernel_choices(4)


def test_resnet_space_and_depth_indicator():
    graph = ModelGraph.build(resnet20(), torch.randn(2, 1, 8, 8))
    space = ElasticSpace.build(graph)
    assert space.kernels == {}  # 3x3 convs have no smaller odd kernel
    assert list(space.blocks) == [
        "layer1.0",
        "layer1.1",
        "layer1.2",
        "layer2.1",
        "layer2.2",
        "layer3.1",
        "layer3.2",
    ]
    # depth_indicator 1: only the last block of each stage may be skipped
    assert [b.name for b in space.skippable(1)] == ["layer1.2", "layer2.2", "layer3.2"]
    assert space.minimal(depth_indicator=2).depth == [
        "layer1.1",
        "layer1.2",
        "layer2.1",
        "layer2.2",
        "layer3.1",
        "layer3.2",
    ]
    assert space.widths["layer3.0.conv1"].choices == (64, 48, 32)


def test_skipped_blocks_by_name_and_errors():
    graph = ModelGraph.build(resnet20(), torch.randn(2, 1, 8, 8))
    space = ElasticSpace.build(graph, skipped_blocks=["layer2.2", "layer3.2"])
    assert list(space.blocks) == ["layer2.2", "layer3.2"]
    with pytest.raises(ConfigError, match="did you mean 'layer2.2'"):
        ElasticSpace.build(graph, skipped_blocks=["layer2.3"])
    with pytest.raises(ConfigError, match="width 12 of 'conv1' is not one of"):
        space.validate(SubnetConfig(width={"conv1": 12}))
    with pytest.raises(ConfigError, match="cannot be skipped"):
        space.validate(SubnetConfig(depth=["layer1.0"]))
    with pytest.raises(ConfigError, match="unknown keys"):
        SubnetConfig.from_dict({"widht": {}})


def test_mbv2_kernels_and_json_round_trip():
    graph = ModelGraph.build(mbv2_tiny(), torch.randn(2, 1, 8, 8))
    space = ElasticSpace.build(graph, max_num_kernels=2)
    assert all(len(v) == 2 for v in space.kernels.values())
    assert any(v == (7, 5) for v in space.kernels.values())
    cfg = space.minimal()
    assert SubnetConfig.from_dict(cfg.to_dict()).key() == cfg.key()
