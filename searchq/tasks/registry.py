"""Task registry (timm-style) and loading of user tasks given as ``module:function``.

``get_task`` accepts a registered name (``"digits"``), ``"package.module:function"`` or
``"path/to/file.py:function"``. A user function is called without arguments, or with ``seed=``
when its signature accepts it, and must return a :class:`~searchq.tasks.Task`.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

from searchq.errors import TaskError
from searchq.tasks.base import Task

__all__ = ["TaskFactory", "get_task", "list_tasks", "register_task"]


class TaskFactory(Protocol):
    """What ``@register_task`` decorates: ``fn(*, seed=0, train=True) -> Task``."""

    def __call__(self, *, seed: int = 0, train: bool = True) -> Task: ...


F = TypeVar("F", bound=Callable[..., Task])

_REGISTRY: dict[str, tuple[Callable[..., Task], str]] = {}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def register_task(name: str, *, description: str) -> Callable[[F], F]:
    """Register ``fn(*, seed: int = 0, train: bool = True) -> Task`` under ``name``.

    ``train=False`` must return the untrained model (fast; used by tests). Re-registering the same
    function (e.g. after a module reload) is allowed; taking a name from another function is not.
    """
    if not isinstance(name, str) or not name or ":" in name or os.sep in name or "/" in name:
        raise TaskError(
            f"task name {name!r} is invalid; allowed: a non-empty string without ':' or '/' "
            "(those mark user tasks): pick e.g. 'my_task'"
        )

    def decorator(fn: F) -> F:
        previous = _REGISTRY.get(name)
        if previous is not None and _qualname(previous[0]) != _qualname(fn):
            raise TaskError(
                f"task name {name!r} is already registered by {_qualname(previous[0])}; names "
                "must be unique: register under another name"
            )
        _REGISTRY[name] = (fn, _one_line(description))
        return fn

    return decorator


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def list_tasks() -> list[tuple[str, str]]:
    """``[(name, description), ...]`` of the registered tasks, sorted by name."""
    return sorted((name, description) for name, (_, description) in _REGISTRY.items())


def get_task(name_or_spec: str, *, seed: int = 0) -> Task:
    """Build the task ``name_or_spec`` (a registered name or ``module:function``) with ``seed``.

    Built-in tasks come back trained (from the cache when possible). A user task whose ``name`` is
    left at the default ``"custom"`` is renamed to ``name_or_spec``, so results say where it came
    from.
    """
    if not isinstance(name_or_spec, str) or not name_or_spec.strip():
        raise TaskError(
            f"task {name_or_spec!r} is invalid; allowed: a registered name ({_known()}) or "
            "'package.module:function' / 'path/to/file.py:function'"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TaskError(f"seed={seed!r} is invalid; allowed: an int: pass e.g. seed=0")
    spec = name_or_spec.strip()
    if spec in _REGISTRY:
        factory = _REGISTRY[spec][0]
        task = factory(seed=seed, train=True)
        return _check_returned(task, f"built-in task {spec!r}")
    if ":" not in spec:
        raise TaskError(_unknown_message(spec))
    return _load_user_task(spec, seed=seed)


def _known() -> str:
    return ", ".join(sorted(_REGISTRY)) or "none registered"


def _unknown_message(name: str) -> str:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    if name.endswith(".py"):
        hint += f"for a file, name the function too: '{name}:make_task'; "
    return (
        f"unknown task {name!r}; known tasks: {_known()}; {hint}a user task is given as "
        "'package.module:function' or 'path/to/file.py:function'"
    )


def _is_path(module_part: str) -> bool:
    return module_part.endswith(".py") or "/" in module_part or os.sep in module_part


def _load_user_task(spec: str, *, seed: int) -> Task:
    module_part, _, fn_name = spec.rpartition(":")
    if not module_part or not fn_name.isidentifier():
        raise TaskError(
            f"task {spec!r} is not of the form 'package.module:function' or "
            "'path/to/file.py:function': give both parts, e.g. 'examples/user_task.py:make_task'"
        )
    if _is_path(module_part):
        module = _import_file(Path(module_part), spec)
    else:
        module = _import_module(module_part)
    fn = getattr(module, fn_name, None)
    if fn is None:
        names = _public_callables(module)
        close = difflib.get_close_matches(fn_name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise TaskError(
            f"module {module_part!r} has no function {fn_name!r}; {hint}its callables are: "
            f"{', '.join(names) or 'none'}: fix the name after ':'"
        )
    if not callable(fn):
        raise TaskError(
            f"{spec!r} names a {type(fn).__name__}, not a function: point after ':' at a "
            "function that returns a searchq.tasks.Task"
        )
    kwargs = {"seed": seed} if _accepts_seed(fn) else {}
    with _importable_from(_search_dir(module_part)):
        try:
            task = fn(**kwargs)
        except Exception as exc:
            raise TaskError(
                f"task function {spec!r} raised {type(exc).__name__}: {_one_line(str(exc))} "
                "(fix the function; run it directly to see the traceback)"
            ) from exc
    task = _check_returned(task, f"task function {spec!r}")
    if task.name == "custom":
        task.name = spec
    return task


def _check_returned(task: object, what: str) -> Task:
    if not isinstance(task, Task):
        raise TaskError(
            f"{what} returned a {type(task).__name__}, expected a searchq.tasks.Task: end it "
            "with `return Task(model=..., train_loader=..., val_loader=...)`"
        )
    return task


def _accepts_seed(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return True
    param = params.get("seed")
    return param is not None and param.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def _public_callables(module: ModuleType) -> list[str]:
    # Prefer what the module defines itself; listing every imported class (DataLoader, Task, ...)
    # would bury the answer.
    members = [(n, v) for n, v in vars(module).items() if not n.startswith("_") and callable(v)]
    own = [n for n, v in members if getattr(v, "__module__", None) == module.__name__]
    return sorted(own or [n for n, _ in members])


def _search_dir(module_part: str) -> str:
    return str(Path(module_part).resolve().parent) if _is_path(module_part) else os.getcwd()


@contextlib.contextmanager
def _importable_from(directory: str) -> Iterator[None]:
    """Put ``directory`` first on ``sys.path`` while a user task is imported and built.

    Mirrors ``python path/to/file.py`` (sibling modules importable) and ``python -m`` (the current
    directory importable), without leaving the process's import path changed afterwards.
    """
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)


def _import_module(name: str) -> ModuleType:
    with _importable_from(os.getcwd()):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing and (name == missing or name.startswith(missing + ".")):
                raise TaskError(
                    f"module {name!r} not found (from the current directory or sys.path): add "
                    "its folder to PYTHONPATH, pip install its package, or pass a file as "
                    "'path/to/file.py:function'"
                ) from exc
            raise TaskError(
                f"importing module {name!r} failed: ModuleNotFoundError: {_one_line(str(exc))}; "
                f"install {missing or 'the missing package'} (pip install ...)"
            ) from exc
        except Exception as exc:
            raise TaskError(
                f"importing module {name!r} raised {type(exc).__name__}: {_one_line(str(exc))} "
                "(fix the module; `python -c 'import ...'` shows the traceback)"
            ) from exc


def _import_file(path: Path, spec: str) -> ModuleType:
    if not path.is_file():
        raise TaskError(
            f"task file {str(path)!r} not found (cwd {os.getcwd()}): check the path before ':' "
            "in " + repr(spec)
        )
    resolved = path.resolve()
    # A unique name per file: two user files both called tasks.py must not replace each other.
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in resolved.stem)
    module_name = f"searchq_user_task_{stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    import_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if import_spec is None or import_spec.loader is None:
        raise TaskError(
            f"cannot import {str(path)!r} as Python source: pass a .py file as "
            "'path/to/file.py:function'"
        )
    module = importlib.util.module_from_spec(import_spec)
    # Registered before exec so dataclasses / pickling inside the file can find their module.
    sys.modules[module_name] = module
    with _importable_from(str(resolved.parent)):
        try:
            import_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise TaskError(
                f"importing task file {str(path)!r} raised {type(exc).__name__}: "
                f"{_one_line(str(exc))} (fix the file; `python {path}` shows the traceback)"
            ) from exc
    return module
