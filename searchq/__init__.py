"""searchq: mixed-precision and elastic-subnet search for trained PyTorch models.

Heavy modules (torch, the algorithms) load on first use so ``import searchq`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Assignment": "searchq.core.assignment",
    "HardwareSpec": "searchq.core.hardware",
    "ModelGraph": "searchq.core.graph",
    "QuantSpace": "searchq.core.space",
    "QuantizedModel": "searchq.core.insert",
    "CostModel": "searchq.core.cost",
    "Task": "searchq.tasks.base",
    "get_task": "searchq.tasks.registry",
    "load_config": "searchq.config",
    "load_hardware": "searchq.core.hardware",
    "Result": "searchq.runner",
    "manual": "searchq.manual",
}
_SUBMODULES = {
    "config",
    "core",
    "tasks",
    "errors",
    "manual",
    "runner",
    "report",
    "hawq",
    "autoq",
    "elastic",
    "nsga",
}

__all__ = [
    "Assignment",
    "CostModel",
    "HardwareSpec",
    "ModelGraph",
    "QuantSpace",
    "QuantizedModel",
    "Result",
    "Task",
    "__version__",
    "get_task",
    "load_config",
    "load_hardware",
    "manual",
]

if TYPE_CHECKING:
    from searchq.config import load_config
    from searchq.core.assignment import Assignment
    from searchq.core.cost import CostModel
    from searchq.core.graph import ModelGraph
    from searchq.core.hardware import HardwareSpec, load_hardware
    from searchq.core.insert import QuantizedModel
    from searchq.core.space import QuantSpace
    from searchq.runner import Result
    from searchq.tasks.base import Task
    from searchq.tasks.registry import get_task


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == "manual" else getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"searchq.{name}")
    raise AttributeError(f"module 'searchq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
