"""Probe-free per-layer traces against exact Hessians, the piecewise-linearity check, fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader, TensorDataset

from searchq.config.specs import HawqSpec
from searchq.errors import ConfigError
from searchq.hawq import search
from searchq.hawq.gauss_newton import exact_traces, gauss_newton_traces, nonlinear_ops


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)) + x)


def _conv_net() -> nn.Module:
    """Strided, 'same'-padded, reflect-padded, depthwise and grouped convs, eval BN, ReLU6,
    a residual add, max and average pooling and a linear layer: piecewise linear throughout."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU6(), _Block(4),
        nn.Conv2d(4, 4, 3, groups=4, padding="same", dilation=2), nn.LeakyReLU(0.1),
        nn.Conv2d(4, 6, (3, 1), groups=2, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 5),
    )  # fmt: skip
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


class _SeqNet(nn.Module):
    """Conv1d (circular padding, stride) and a Linear applied per time step (3-D input)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv1d(3, 4, 3, stride=2, padding=1, padding_mode="circular")
        self.step = nn.Linear(4, 4)
        self.head = nn.Linear(4 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x)).transpose(1, 2)  # (n, 5, 4)
        return self.head(torch.relu(self.step(h)).flatten(1))


def _layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]


def _hessian_block_traces(net, layers, x, y, crit) -> np.ndarray:
    params = {k: v.detach() for k, v in net.named_parameters()}
    names = {id(p): k for k, p in net.named_parameters()}
    out = []
    for m in layers:
        name = names[id(m.weight)]

        def loss(w, name=name):
            return crit(functional_call(net, {**params, name: w}, (x,)), y)

        w0 = params[name]
        hess = torch.autograd.functional.hessian(loss, w0).reshape(w0.numel(), w0.numel())
        out.append(float(hess.diagonal().sum()))
    return np.asarray(out)


@pytest.mark.parametrize(
    ("make", "shape", "crit"),
    [
        (_conv_net, (7, 2, 10, 10), nn.CrossEntropyLoss()),
        (_SeqNet, (7, 3, 10), nn.CrossEntropyLoss()),
        (_conv_net, (7, 2, 10, 10), nn.MSELoss()),
    ],
)
def test_equals_the_exact_hessian_block_traces(make, shape, crit):
    net = make()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    n_out = net(x).shape[1]
    y = torch.randint(0, n_out, (7,), generator=g)
    if isinstance(crit, nn.MSELoss):
        y = torch.randn(7, n_out, generator=g)
    assert nonlinear_ops(net(x)) == []
    layers = _layers(net)
    exact = _hessian_block_traces(net, layers, x, y, crit)
    mode = net.training
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]  # batches average like the whole loss
    ours, info = gauss_newton_traces(
        net, layers, [m.weight for m in layers], batches, crit, memory_floats=4096
    )
    np.testing.assert_allclose(ours, exact, rtol=1e-4, atol=1e-7)
    assert info["nonlinear_ops"] == [] and info["backward_directions"] > 0
    assert net.training == mode  # restored
    # the sampling error: each sample's own trace is the trace of its loss alone
    own = np.stack(
        [
            gauss_newton_traces(net, layers, [m.weight for m in layers], [(x[k : k + 1],
                                y[k : k + 1])], crit)[0]
            for k in range(len(x))
        ]
    )  # fmt: skip
    np.testing.assert_allclose(own.mean(0), exact, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(
        info["data_stderr"], own.std(0, ddof=1) / np.sqrt(len(x)), rtol=1e-4, atol=1e-8
    )


class _Gated(nn.Module):
    def __init__(self, gate: str) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.a, self.b, self.head = nn.Linear(6, 8), nn.Linear(6, 8), nn.Linear(8, 3)
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if self.gate == "gelu":
            h = nn.functional.gelu(h)
        elif self.gate == "product":  # two data-dependent operands
            h = h * self.b(x)
        elif self.gate == "sigmoid":  # squeeze-excitation style
            h = h * torch.sigmoid(self.b(x))
        elif self.gate == "scaled":  # scaling by a constant stays linear
            h = torch.relu(h) * 0.5 / 2.0
        elif self.gate == "hardsigmoid":  # piecewise linear on its own
            h = nn.functional.hardsigmoid(nn.functional.relu6(h))
        elif self.gate == "hardsigmoid_gate":  # MobileNetV3-style gate: a product of two
            h = h * nn.functional.hardsigmoid(self.b(x))
        return self.head(h)


@pytest.mark.parametrize(
    ("gate", "flagged"),
    [
        ("gelu", "Gelu"),
        ("product", "Mul"),
        ("sigmoid", "Sigmoid"),
        ("scaled", None),
        ("hardsigmoid", None),
        ("hardsigmoid_gate", "Mul"),
    ],
)
def test_nonlinear_ops_are_found_in_the_data_path(gate, flagged):
    ops = nonlinear_ops(_Gated(gate)(torch.randn(4, 6)))
    if flagged is None:
        assert ops == []
    else:
        assert any(o.startswith(flagged) for o in ops), ops


def test_weight_only_subgraphs_are_not_data():
    """A parametrization's ops (here a mask times the weight) act on weights only."""

    class Mask(nn.Module):
        def forward(self, w: torch.Tensor) -> torch.Tensor:
            return w * (w.abs() > 0.05)

    net = _conv_net()
    parametrize.register_parametrization(net[0], "weight", Mask())
    assert nonlinear_ops(net(torch.randn(2, 2, 10, 10))) == []


def test_forced_gauss_newton_on_a_smooth_net_is_the_gauss_newton_trace():
    net = _Gated("gelu").eval()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(5, 6, generator=g), torch.randint(0, 3, (5,), generator=g)
    crit = nn.CrossEntropyLoss()
    layers = [net.a, net.head]
    with pytest.raises(ValueError, match="not piecewise linear"):
        gauss_newton_traces(net, layers, [m.weight for m in layers], [(x, y)], crit)
    ours, info = gauss_newton_traces(
        net, layers, [m.weight for m in layers], [(x, y)], crit, require_piecewise_linear=False
    )
    assert info["nonlinear_ops"]
    params = {k: v.detach() for k, v in net.named_parameters()}
    logits = net(x).detach()
    p = logits.softmax(1)
    h_out = (torch.diag_embed(p) - p[:, :, None] * p[:, None, :]) / len(x)  # mean reduction
    for value, name in zip(ours, ("a.weight", "head.weight"), strict=True):
        jac = jacrev(lambda w, name=name: functional_call(net, {**params, name: w}, (x,)))(
            params[name]
        ).reshape(len(x), 3, -1)  # (n, outputs, weights)
        ggn = torch.einsum("nip,nij,njq->pq", jac, h_out, jac)
        assert value == pytest.approx(float(ggn.diagonal().sum()), rel=1e-4)
    # the exact Hessian differs here: the GELU's curvature is missing from the Gauss-Newton part
    full = _hessian_block_traces(net, [net.a], x, y, crit)[0]
    assert abs(full - ours[0]) > 1e-4 * abs(full)


def test_layers_that_do_not_qualify_raise_with_the_reason():
    net = _conv_net()
    x, y = torch.randn(3, 2, 10, 10), torch.randint(0, 5, (3,))
    crit = nn.CrossEntropyLoss()
    layers = _layers(net)
    with pytest.raises(ValueError, match="outputs per sample"):
        exact_traces(net, [("l", m, m.weight) for m in layers], [(x, y)], crit, max_outputs=4)
    twice = nn.Sequential(net[0], nn.ReLU(), nn.Conv2d(4, 4, 1), nn.ReLU())
    twice.append(twice[2])  # the same conv runs twice
    twice.extend([nn.Flatten(), nn.LazyLinear(3)])
    twice(x)
    with pytest.raises(ValueError, match="ran 2 times"):
        gauss_newton_traces(twice, [twice[2]], [twice[2].weight], [(x, y)], crit)
    with pytest.raises(ValueError, match="layer types"):
        bn = net[1]
        gauss_newton_traces(net, [bn], [bn.weight], [(x, y)], crit)
    nll = nn.Sequential(*net, nn.LogSoftmax(1))
    with pytest.raises(ValueError, match="linear in the model's outputs"):
        gauss_newton_traces(
            nll, [net[0]], [net[0].weight], [(x, y)], nn.NLLLoss(), require_piecewise_linear=False
        )


def _loader(shape: tuple[int, ...], classes: int = 3) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, *shape, generator=g)
    y = torch.randint(0, classes, (64,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=32)


def _mlp(act: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), act, nn.Linear(12, 3))


def test_search_uses_exact_traces_by_default_and_hutchinson_otherwise(tmp_path):
    kwargs = dict(ratio=1.5, bits=(2, 4, 8), progress=False)
    crit = nn.CrossEntropyLoss()
    relu = search(_mlp(nn.ReLU()), _loader((1, 4, 4)), crit, out=tmp_path / "relu", **kwargs)
    traces = relu.extra["traces"]
    assert traces["method"] == "exact" and traces["hvps"] == 0
    assert all(v["stderr"] == 0 < v["data_stderr"] for v in traces["per_layer"].values())
    assert -1e-12 <= traces["data_pick_regret"] < 1  # how much the pick depends on the samples
    gelu = search(_mlp(nn.GELU()), _loader((1, 4, 4)), crit, out=tmp_path / "gelu", **kwargs)
    assert gelu.extra["traces"]["method"] == "hutchinson"
    assert "not piecewise linear" in gelu.extra["traces"]["note"]
    hutch = search(
        _mlp(nn.ReLU()),
        _loader((1, 4, 4)),
        crit,
        out=tmp_path / "hutch",
        spec=HawqSpec(trace_method="hutchinson"),
        **kwargs,
    )
    assert hutch.extra["traces"]["method"] == "hutchinson" and hutch.extra["traces"]["hvps"] > 0
    # the exact traces are what Hutchinson estimates
    for name, v in traces["per_layer"].items():
        h = hutch.extra["traces"]["per_layer"][name]
        assert abs(h["mean"] - v["mean"]) < 4 * h["stderr"] + 1e-9


def test_forced_gauss_newton_that_cannot_run_is_a_config_error(tmp_path):
    net = _mlp(nn.ReLU())
    net.append(nn.LogSoftmax(1))
    with pytest.raises(ConfigError, match="trace_method.*linear in the model's outputs"):
        search(
            net,
            _loader((1, 4, 4)),
            nn.NLLLoss(),
            ratio=1.5,
            out=tmp_path / "r",
            progress=False,
            spec=HawqSpec(trace_method="gauss_newton"),
        )
