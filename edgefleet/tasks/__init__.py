"""The tasks EdgeFleet can run, by name (edgefleet/tasks/base.py says what a task is).

A new task is one folder here with a `Task` (or `FederatedTask`) subclass, plus one line in TASKS. Entries are
"module:Class" strings so that choosing a task imports only that task (and importing this package imports none).
"""

from __future__ import annotations

import importlib
from functools import cache

from edgefleet.errors import ConfigError

TASKS = {
    "movielens": "edgefleet.tasks.movielens.task:MovieLens",
    "textclf": "edgefleet.tasks.textclf.task:TextClassification",
}


@cache
def get_task(name: str):
    """The task registered as `name` (one instance per process: tasks hold no per-run state)."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r} (choose from {', '.join(TASKS)})")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def federated_task(name: str):
    """The task `name`, which must be deployable to a fleet."""
    from edgefleet.tasks.base import FederatedTask

    task = get_task(name)
    if not isinstance(task, FederatedTask):
        raise ConfigError(f"task {name!r} can be compressed but not yet simulated on a fleet")
    return task
