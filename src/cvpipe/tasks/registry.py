"""Tasks by name: the built-in ones load on first use, plug-ins register themselves.

The built-in task modules are found by name (:data:`BUILTIN`) and imported on first use,
so that the rooms below them (``cvpipe.data``, ``cvpipe.engine``, ...) can ask for a task
without importing the task modules that build on them.

Example:
    >>> from cvpipe.tasks.registry import get_task, task_names
    >>> task_names()
    ['classify', 'count', 'detect']
    >>> get_task("detect").monitor
    'val.mAP'
"""

from __future__ import annotations

import importlib

from cvpipe.registry import Registry
from cvpipe.tasks.base import Task

#: Built-in tasks: name -> module defining it (imported on first use).
BUILTIN = {
    "classify": "cvpipe.tasks.classify",
    "count": "cvpipe.tasks.count",
    "detect": "cvpipe.tasks.detect",
}

TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    """Make ``task`` known under ``task.name`` (a plug-in calls this when imported).

    Raises:
        ValueError: another task already has this name.
    """
    TASKS.add(task.name, task)
    return task


def _load_builtins() -> None:
    for name, module in BUILTIN.items():
        if name not in TASKS:
            importlib.import_module(module)


def get_task(name: str) -> Task:
    """The task registered as ``name``.

    Raises:
        UnknownNameError: no such task (the message lists the known ones).
    """
    _load_builtins()
    return TASKS.get(name)


def task_names() -> list[str]:
    """Names of every registered task, built-in ones first."""
    _load_builtins()
    return list(TASKS.names())
