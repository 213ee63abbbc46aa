from __future__ import annotations

import torch
from torch import nn

from searchq.core.bn import adapt_batchnorm


def test_cumulative_statistics_equal_full_data_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 1, bias=False), nn.BatchNorm2d(3)).eval()
    data = [torch.randn(8, 1, 4, 4) * 2 + 1 for _ in range(4)]
    used = adapt_batchnorm(model, data, num_samples=32)
    assert used == 32
    feats = model[0](torch.cat(data))
    assert torch.allclose(model[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    # cumulative average of per-batch unbiased variances
    var = torch.stack([model[0](d).var((0, 2, 3), unbiased=True) for d in data]).mean(0)
    assert torch.allclose(model[1].running_var, var, atol=1e-4)
    assert not model.training and model[1].momentum == 0.1


def test_independent_of_previous_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    data = [(torch.randn(16, 4), torch.zeros(16)) for _ in range(2)]
    adapt_batchnorm(model, data, 32)
    first = model[1].running_mean.clone()
    model[1].running_mean.fill_(100.0)
    adapt_batchnorm(model, data, 32)
    assert torch.equal(model[1].running_mean, first)
    assert model.training  # flags restored


def test_zero_samples_leaves_model_unchanged():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    model[1].running_mean.fill_(3.0)
    assert adapt_batchnorm(model, [torch.randn(4, 4)], 0) == 0
    assert model[1].running_mean[0] == 3.0
