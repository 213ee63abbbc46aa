"""searchq.hawq.search(model, data, criterion, ...) on a plain model and loader."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from searchq.errors import InfeasibleBudgetError
from searchq.hawq import search


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, 6, 6, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 1).long()
    return DataLoader(TensorDataset(x, y), batch_size=32)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3),
    )  # fmt: skip


def test_plain_model_and_loader(tmp_path):
    result = search(
        _model(),
        _data(),
        nn.CrossEntropyLoss(),
        ratio=1.5,
        bits=(2, 4, 8),
        hw="trial",
        out=tmp_path / "run",
        progress=False,
    )
    assert result.budget == {
        "kind": "bit_complexity_ratio",
        "target": 1.5,
        "achieved": result.budget["achieved"],
    }
    assert result.budget["achieved"] >= 1.5
    assert set(result.assignment.weights.values()) <= {2, 4, 8}
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["assignment"]["weights"] == dict(result.assignment.weights)
    assert (tmp_path / "run" / "traces.json").exists()


def test_size_budget_weights_only_and_latency(tmp_path):
    r = search(
        _model(), _data(), size_ratio=0.1, weights_only=True, out=tmp_path / "a", progress=False
    )
    assert r.budget["kind"] == "size_ratio" and r.budget["achieved"] <= 0.1
    assert not r.assignment.activations
    table = {
        k: {str(w): {str(a): w * a / 64 for a in (2, 4, 8)} for w in (2, 4, 8)}
        for k in ("conv2d", "linear")
    }
    (tmp_path / "lat.json").write_text(json.dumps(table))
    r = search(
        _model(),
        _data(),
        latency_ms=3.0,
        latency_table=tmp_path / "lat.json",
        out=tmp_path / "b",
        progress=False,
    )
    assert r.budget["kind"] == "latency_ms" and r.budget["achieved"] <= 3.0


def test_impossible_ratio(tmp_path):
    with pytest.raises(InfeasibleBudgetError, match="achievable range is 1.00–4.00"):
        search(_model(), _data(), ratio=5.0, out=tmp_path / "c", progress=False)
