from __future__ import annotations

import pytest
import torch
from torch import nn


def _trained_tiny(seed: int = 0):
    """A small conv net (540 weights in 3 layers) trained on noisy synthetic labels."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(96, 3),
        )  # fmt: skip
    x = torch.randn(96, 1, 4, 4, generator=g)
    w = torch.randn(16, 3, generator=g)
    y = (x.reshape(96, 16) @ w + 1.5 * torch.randn(96, 3, generator=g)).argmax(1)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    crit = nn.CrossEntropyLoss()
    for _ in range(200):
        opt.zero_grad()
        crit(model(x), y).backward()
        opt.step()
    model.eval()
    return model, x, y, crit


@pytest.fixture(scope="module")
def tiny():
    return _trained_tiny(0)


@pytest.fixture(scope="session")
def make_tiny():
    return _trained_tiny
