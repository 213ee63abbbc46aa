from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from searchq.errors import TaskError
from searchq.tasks import Task, get_task, list_tasks, register_task
from searchq.tasks import registry as registry_module

# A user task module: tiny Task, records the seed it was given.
TASK_SOURCE = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from searchq.tasks import Task

SEEDS = []

def _loader():
    data = TensorDataset(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    return DataLoader(data, batch_size=2)

def make_task(seed=0):
    SEEDS.append(seed)
    return Task(model=nn.Linear(2, 2), train_loader=_loader(), val_loader=_loader())

def no_seed():
    return Task(model=nn.Linear(2, 2), train_loader=_loader(), val_loader=_loader(), name="named")

def returns_int():
    return 3

def raises():
    raise ValueError("bad data\\nsecond line")

class Helper:
    pass

NOT_A_FUNCTION = 5
"""


def tiny_task(**kwargs) -> Task:
    loader = DataLoader(TensorDataset(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)))
    return Task(model=nn.Linear(2, 2), train_loader=loader, val_loader=loader, **kwargs)


@pytest.fixture()
def registry():
    """Register freely inside a test; the registry is restored afterwards."""
    saved = dict(registry_module._REGISTRY)
    yield registry_module._REGISTRY
    registry_module._REGISTRY.clear()
    registry_module._REGISTRY.update(saved)


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    """An importable module (unique name) holding TASK_SOURCE; returns its name."""
    name = f"user_tasks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TASK_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def one_line_error(spec: str, **kwargs) -> str:
    with pytest.raises(TaskError) as info:
        get_task(spec, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_builtin_tasks_are_listed_with_descriptions():
    tasks = dict(list_tasks())
    assert {"digits", "tiny_cnn", "mbv2_tiny"} <= set(tasks)
    assert all(isinstance(d, str) and d for d in tasks.values())
    assert [n for n, _ in list_tasks()] == sorted(tasks)


def test_register_and_get_passes_seed_and_train(registry):
    seen = []

    @register_task("fake_task", description="a fake\n task")
    def fake(*, seed: int = 0, train: bool = True) -> Task:
        seen.append((seed, train))
        return tiny_task(name="fake_task")

    assert ("fake_task", "a fake task") in list_tasks()
    task = get_task("fake_task", seed=7)
    assert isinstance(task, Task) and task.name == "fake_task"
    assert seen == [(7, True)]


def test_registration_errors(registry):
    @register_task("dup_task", description="first")
    def first(*, seed: int = 0, train: bool = True) -> Task:
        return tiny_task()

    register_task("dup_task", description="again")(first)  # same function: a reload, fine
    with pytest.raises(TaskError, match="already registered"):

        @register_task("dup_task", description="second")
        def second(*, seed: int = 0, train: bool = True) -> Task:
            return tiny_task()

    for bad in ("", "pkg.mod:fn", "a/b"):
        with pytest.raises(TaskError, match="task name"):
            register_task(bad, description="x")


def test_factory_returning_non_task(registry):
    @register_task("broken_task", description="x")
    def broken(*, seed: int = 0, train: bool = True):
        return None

    assert "returned a NoneType" in one_line_error("broken_task")


def test_unknown_name_lists_known_and_suggests():
    message = one_line_error("digit")
    assert "unknown task 'digit'" in message
    assert "digits, mbv2_tiny, tiny_cnn" in message
    assert "did you mean 'digits'?" in message
    assert "package.module:function" in message
    assert ":make_task" in one_line_error("my_tasks.py")


def test_missing_module():
    message = one_line_error("no_such_pkg_3f9a.tasks:make_task")
    assert "'no_such_pkg_3f9a.tasks' not found" in message and "PYTHONPATH" in message


def test_module_with_missing_dependency_names_the_dependency(tmp_path, monkeypatch):
    (tmp_path / "needs_dep_7c1.py").write_text("import not_installed_dep_7c1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = one_line_error("needs_dep_7c1:make_task")
    assert "not_installed_dep_7c1" in message and "failed" in message


def test_module_function_form_passes_seed(user_module):
    task = get_task(f"{user_module}:make_task", seed=3)
    assert isinstance(task, Task)
    assert task.name == f"{user_module}:make_task"  # default name replaced by the spec
    assert sys.modules[user_module].SEEDS == [3]
    # a function without a seed parameter is called with no arguments; its own name is kept
    assert get_task(f"{user_module}:no_seed", seed=3).name == "named"


def test_missing_function_lists_callables(user_module):
    message = one_line_error(f"{user_module}:make_tsk")
    assert "has no function 'make_tsk'" in message
    assert "did you mean 'make_task'?" in message
    # only what the module defines, not imported names like DataLoader / Task
    assert "Helper, make_task, no_seed, raises, returns_int" in message
    assert "DataLoader" not in message


def test_non_callable_attribute(user_module):
    assert "names a int" in one_line_error(f"{user_module}:NOT_A_FUNCTION")


def test_function_returning_non_task(user_module):
    message = one_line_error(f"{user_module}:returns_int")
    assert "returned a int, expected a searchq.tasks.Task" in message


def test_function_raising_is_wrapped(user_module):
    with pytest.raises(TaskError) as info:
        get_task(f"{user_module}:raises")
    assert "raised ValueError: bad data second line" in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_file_path_form(tmp_path):
    (tmp_path / "helpers_a91.py").write_text("VALUE = 11\n")
    source = TASK_SOURCE + "\nfrom helpers_a91 import VALUE\n"  # a sibling import must work
    path = tmp_path / "my_task_file.py"
    path.write_text(source)
    path_before = list(sys.path)
    task = get_task(f"{path}:make_task", seed=5)
    assert isinstance(task, Task) and task.name == f"{path}:make_task"
    assert sys.path == path_before  # the folder was importable only while loading
    assert "did you mean 'make_task'" in one_line_error(f"{path}:maketask")


def test_file_path_form_errors(tmp_path):
    assert "not found" in one_line_error(f"{tmp_path / 'missing.py'}:make_task")
    bad = tmp_path / "syntax_error.py"
    bad.write_text("def broken(:\n")
    assert "raised SyntaxError" in one_line_error(f"{bad}:make_task")


def test_relative_file_path_and_examples_file(monkeypatch):
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    task = get_task("examples/user_task.py:make_task", seed=0)
    assert isinstance(task, Task) and task.name == "user_smallnet"
    assert task.evaluator is not None and task.evaluator(task.model)["accuracy"] > 85.0


@pytest.mark.parametrize("spec", ["mod:", ":make_task", "mod:not-an-identifier", "  "])
def test_malformed_specs(spec):
    message = one_line_error(spec)
    assert "module" in message or "task" in message


def test_bad_seed():
    assert "seed=" in one_line_error("digits", seed="0")
