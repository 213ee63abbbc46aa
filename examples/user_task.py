"""An example user task: a small CNN on scikit-learn digits, trained inline in about a second.

Point searchq at a function that returns a :class:`searchq.tasks.Task`::

    searchq run ... --task examples/user_task.py:make_task       # a file path
    searchq run ... --task mypackage.tasks:make_task             # an importable module

searchq imports the file (its folder is importable while it loads, so sibling modules work) and
calls ``make_task()``; because this function accepts ``seed``, it is called as
``make_task(seed=<the run's --seed>)``. What a Task needs:

- ``model``: the trained ``nn.Module`` to compress (its module names become quantizer names);
- ``train_loader``: batches of ``(inputs, targets)`` (or dicts with an ``"input"`` key), used for
  calibration, Hessian traces, BN adaptation and fine-tuning;
- ``val_loader``: what candidates are scored on.

Optional: ``criterion`` (default ``nn.CrossEntropyLoss()``), ``evaluator`` (``model -> dict``, first
entry is maximised; default ``{"accuracy": top-1 %}`` on ``val_loader``), ``example_input``
(default: the first training batch's inputs) and ``name`` (default: the ``--task`` string).

Keep randomness explicit: shuffle with a seeded ``torch.Generator`` and seed initialisation
inside ``torch.random.fork_rng()``, so the task is the same every time it is loaded and the
caller's global RNG is untouched.

Run ``python examples/user_task.py`` to train it once and print its accuracy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from searchq.tasks import Task
from searchq.tasks.digits import digits_data


class SmallNet(nn.Module):
    """Two conv layers and a classifier; each op a distinct, named module."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(self.flatten(self.pool(x)))


def make_task(seed: int = 0, epochs: int = 15) -> Task:
    """Build and train :class:`SmallNet` on digits; return it as a searchq Task."""
    x_train, y_train, x_val, y_val = digits_data()
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=64, shuffle=True, generator=generator
    )
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256)

    # PyTorch's default init draws from the global RNG; seed it only inside fork_rng so the
    # caller's global RNG state is left exactly as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SmallNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        for inputs, targets in train_loader:
            optimizer.zero_grad()
            criterion(model(inputs), targets).backward()
            optimizer.step()
    model.eval()
    return Task(
        model=model,
        train_loader=train_loader,
        val_loader=val_loader,
        criterion=criterion,
        name="user_smallnet",
    )


if __name__ == "__main__":
    task = make_task()
    assert task.evaluator is not None
    print(task.name, task.evaluator(task.model))
