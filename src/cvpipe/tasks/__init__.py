"""Tasks as plug-ins: what differs between classify, count and detect, in one place each.

See :mod:`cvpipe.tasks.base` for the contract and ``docs/architecture.md`` for where a new
task plugs in.
"""

from __future__ import annotations

from cvpipe.tasks.base import Task
from cvpipe.tasks.registry import TASKS, get_task, register_task, task_names

__all__ = ["TASKS", "Task", "get_task", "register_task", "task_names"]
