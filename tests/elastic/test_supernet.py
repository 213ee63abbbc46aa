"""Activated supernet == extracted subnet (outputs, MACs, parameters) for every dimension."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from searchq.core.bn import adapt_batchnorm
from searchq.core.graph import ModelGraph
from searchq.elastic.supernet import Supernet
from searchq.tasks.models import mbv2_tiny, resnet20


def _model(fn):
    torch.manual_seed(0)
    m = fn().eval()
    for mod in m.modules():  # non-trivial BN statistics so slicing mistakes show
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    return m


@pytest.mark.parametrize("fn,dims", [
    (resnet20, ("width",)), (resnet20, ("depth",)), (mbv2_tiny, ("kernel",)),
    (mbv2_tiny, ("width", "depth", "kernel")), (resnet20, ("width", "depth")),
])  # fmt: skip
def test_activated_equals_extracted(fn, dims):
    model = _model(fn)
    x = torch.randn(4, 1, 8, 8)
    sn = Supernet(model, x, dims=dims)
    rng = np.random.default_rng(0)
    for cfg in [sn.minimal(), sn.sample(rng), sn.sample(rng), sn.maximal()]:
        sn.activate(cfg)
        with torch.no_grad():
            want = model(x)
        sub = sn.extract(cfg).eval()
        with torch.no_grad():
            got = sub(x)
        assert torch.allclose(want, got, atol=1e-5)
        graph = ModelGraph.build(sub, x)
        assert sn.macs(cfg) == graph.total_macs
        assert sn.params(cfg) == sum(op.params for op in graph.ops)
        assert sum(p.numel() for p in sub.parameters()) <= sum(
            p.numel() for p in model.parameters()
        )


def test_maximal_subnet_and_reorganisation_keep_the_function():
    model = _model(resnet20)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        ref = model(x)
    sn = Supernet(model, x)
    sn.reorganize("L2")
    with torch.no_grad():
        assert torch.allclose(model(x), ref, atol=1e-5)
    # after reordering, each group's producers have descending filter norms
    w = model.layer3[1].conv1.weight
    norms = w.reshape(w.shape[0], -1).norm(dim=1)
    assert torch.all(norms[:-1] >= norms[1:] - 1e-6)


def test_kernel_transforms_start_as_identity():
    model = _model(mbv2_tiny)
    sn = Supernet(model, torch.randn(2, 1, 8, 8), dims=("kernel",))
    conv = model.features[2].conv[3]
    transforms = conv.searchq_kernel_transforms
    assert set(transforms) == {"7to5", "5to3"}
    assert torch.equal(transforms["7to5"], torch.eye(25)) and torch.equal(
        transforms["5to3"], torch.eye(9)
    )
    # at identity, the 3x3 kernel is exactly the centre crop
    sn.activate({"kernel": {"features.2.conv.3": 3}})
    from searchq.elastic.ops import active_kernel_weight

    assert torch.equal(active_kernel_weight(conv, conv.weight), conv.weight[..., 2:5, 2:5])


def test_bn_adaptation_is_independent_of_the_previous_subnet():
    model = _model(resnet20)
    x = torch.randn(64, 1, 8, 8)
    sn = Supernet(model, x[:2])
    small, big = sn.minimal(), sn.maximal()
    sn.activate(big)
    adapt_batchnorm(model, [x], 64)
    sn.activate(small)
    adapt_batchnorm(model, [x], 64)
    a = model(x).detach()
    sn.activate(big)  # a different history before the same subnet
    adapt_batchnorm(model, [x], 64)
    adapt_batchnorm(model, [x * 3], 64)
    sn.activate(small)
    adapt_batchnorm(model, [x], 64)
    assert torch.allclose(model(x).detach(), a, atol=1e-6)
