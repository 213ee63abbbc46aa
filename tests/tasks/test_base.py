from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from searchq.errors import TaskError
from searchq.tasks import Task
from searchq.tasks.base import TopOneAccuracy
from searchq.tasks.metrics import accuracy


def data(n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


def make_task(**kwargs):
    kwargs.setdefault("model", nn.Linear(4, 3))
    kwargs.setdefault("train_loader", DataLoader(data(), batch_size=8))
    kwargs.setdefault("val_loader", DataLoader(data(seed=1), batch_size=8))
    return Task(**kwargs)


def test_defaults_are_filled_in():
    task = make_task()
    assert isinstance(task.criterion, nn.CrossEntropyLoss)
    assert isinstance(task.evaluator, TopOneAccuracy)
    assert task.name == "custom"
    # example input = inputs of the first training batch
    assert torch.equal(task.example_input, data().tensors[0][:8])
    # evaluator = top-1 % on the val loader
    metrics = task.evaluator(task.model)
    assert list(metrics) == ["accuracy"]
    assert metrics["accuracy"] == accuracy(task.model, task.val_loader)


def test_evaluator_matches_a_hand_count():
    task = make_task()
    x, y = data(seed=1).tensors
    with torch.no_grad():
        expected = 100.0 * float((task.model(x).argmax(1) == y).float().mean())
    assert task.evaluator(task.model)["accuracy"] == pytest.approx(expected)


def test_given_values_are_kept():
    criterion, evaluator, example = nn.MSELoss(), (lambda m: {"loss": 0.0}), torch.ones(1, 4)
    task = make_task(criterion=criterion, evaluator=evaluator, example_input=example, name="t")
    assert task.criterion is criterion and task.evaluator is evaluator
    assert task.example_input is example and task.name == "t"


class DictData(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        return {"input": torch.full((2,), float(i)), "y": i % 2}


def test_example_input_from_dict_batches():
    task = make_task(model=nn.Linear(2, 2), train_loader=DataLoader(DictData(), batch_size=4))
    assert torch.equal(task.example_input, torch.arange(4.0)[:, None].expand(4, 2))


def test_taking_the_example_does_not_change_the_shuffle_order():
    def shuffled():
        return DataLoader(
            data(), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(5)
        )

    task = make_task(train_loader=shuffled())
    x_task, _ = next(iter(task.train_loader))
    x_ref, _ = next(iter(shuffled()))
    assert torch.equal(x_task, x_ref) and torch.equal(task.example_input, x_ref)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": nn.Linear}, "Task.model is a type"),
        ({"model": {"weight": torch.ones(1)}}, "Task.model is a dict"),
        ({"train_loader": [(torch.ones(1), torch.ones(1))]}, "Task.train_loader is a list"),
        ({"val_loader": data()}, "Task.val_loader is a TensorDataset"),
        ({"criterion": "ce"}, "Task.criterion is a str"),
        ({"evaluator": 3}, "Task.evaluator is a int"),
        ({"example_input": [1.0, 2.0]}, "Task.example_input is a list"),
        ({"name": ""}, "Task.name"),
    ],
)
def test_bad_fields_are_one_line_task_errors(kwargs, match):
    with pytest.raises(TaskError, match=match) as info:
        make_task(**kwargs)
    assert "\n" not in str(info.value)


def test_unusable_first_batch_is_a_task_error():
    only_inputs = DataLoader(torch.randn(8, 4), batch_size=4)  # batches are bare tensors
    with pytest.raises(TaskError, match="batch of type Tensor"):
        make_task(train_loader=only_inputs)
    empty = DataLoader(TensorDataset(torch.empty(0, 4), torch.empty(0)), batch_size=4)
    with pytest.raises(TaskError, match="yields no batches"):
        make_task(train_loader=empty)
    # an explicit example input means the loader is not inspected at all
    task = make_task(train_loader=only_inputs, example_input=torch.ones(1, 4))
    assert task.example_input.shape == (1, 4)
