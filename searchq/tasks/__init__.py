"""Tasks: a model to compress plus the data and metric that judge it.

``get_task("digits")`` returns the built-in ResNet-20 trained on scikit-learn digits (cached after
the first call); ``get_task("pkg.module:make_task")`` or ``get_task("path/to/file.py:make_task")``
loads a user task. ``list_tasks()`` shows what is registered.
"""

from __future__ import annotations

from searchq.tasks import builtin as _builtin  # noqa: F401  (registers the built-in tasks)
from searchq.tasks.base import Task
from searchq.tasks.registry import get_task, list_tasks, register_task

__all__ = ["Task", "get_task", "list_tasks", "register_task"]
