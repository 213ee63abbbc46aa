from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from searchq.errors import TaskError
from searchq.tasks.metrics import accuracy, split_batch


class Oracle(nn.Module):
    """Predicts the class written in the input (x[:, 0]); records how it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(1)  # a submodule whose mode we can check
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return nn.functional.one_hot(x[:, 0].long(), 10).float()


def loader(preds, targets, batch_size=4):
    x = torch.tensor(preds, dtype=torch.float32)[:, None]
    return DataLoader(TensorDataset(x, torch.tensor(targets)), batch_size=batch_size)


PREDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
TARGETS = [0, 1, 2, 3, 4, 5, 6, 0, 0, 0]  # 7 of 10 right


def test_accuracy_is_percent_of_correct_predictions():
    assert accuracy(Oracle(), loader(PREDS, TARGETS)) == pytest.approx(70.0)


def test_max_batches_limits_the_samples():
    # first batch = samples 0..3, all correct; two batches = 0..7, 7 of 8 right
    assert accuracy(Oracle(), loader(PREDS, TARGETS), max_batches=1) == 100.0
    assert accuracy(Oracle(), loader(PREDS, TARGETS), max_batches=2) == pytest.approx(87.5)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(TaskError, match="max_batches"):
            accuracy(Oracle(), loader(PREDS, TARGETS), max_batches=bad)


def test_eval_mode_no_grad_and_modes_restored():
    model = Oracle()
    model.train()
    model.bn.eval()  # mixed modes must come back exactly
    accuracy(model, loader(PREDS, TARGETS))
    assert model.calls and all(c == (False, False) for c in model.calls)
    assert model.training and not model.bn.training
    model.eval()
    accuracy(model, loader(PREDS, TARGETS))
    assert not model.training


def test_dict_batches_and_one_hot_targets():
    x = torch.tensor(PREDS, dtype=torch.float32)[:, None]
    one_hot = nn.functional.one_hot(torch.tensor(TARGETS), 10).float()
    batches = [{"x": x[:5], "label": one_hot[:5]}, {"input": x[5:], "target": one_hot[5:]}]
    assert accuracy(Oracle(), batches) == pytest.approx(70.0)


def test_split_batch_forms_and_errors():
    x, y = torch.zeros(2, 3), torch.zeros(2)
    assert split_batch((x, y))[0] is x and split_batch([x, y])[1] is y
    assert split_batch((x,))[1] is None
    assert split_batch({"input": x})[0] is x
    cases = [x, {"image": x}, ("a", y), (x, "b")]
    for bad in cases:
        with pytest.raises(TaskError) as info:
            split_batch(bad)
        assert "\n" not in str(info.value)


def test_empty_loader_or_missing_targets_are_errors():
    with pytest.raises(TaskError, match="no samples"):
        accuracy(Oracle(), [])
    with pytest.raises(TaskError, match="no targets"):
        accuracy(Oracle(), [(torch.zeros(2, 1),)])


def test_non_logits_output_is_an_error():
    with pytest.raises(TaskError, match="logits"):
        accuracy(nn.Flatten(0), loader(PREDS, TARGETS))
