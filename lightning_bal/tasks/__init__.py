"""Tasks: what a label is, how K samples of an output are combined and joined, how a split is evaluated."""

from __future__ import annotations

from typing import Any

from lightning_bal.tasks.base import Task
from lightning_bal.tasks.classification import Classification, PerPosition
from lightning_bal.tasks.regression import Regression

__all__ = ["Classification", "PerPosition", "Regression", "Task", "resolve_task"]

_NAMED = {None: Task, "classification": Classification, "regression": Regression}


def resolve_task(task: Any) -> Task:
    """A :class:`Task` from ``task``: a ``Task`` as it is, ``"classification"``, ``"regression"`` or ``None``.

    Example:
        >>> resolve_task("regression"), resolve_task(None)
        (Regression(), Task())
        >>> resolve_task("segmentation")
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `task` to be 'classification', 'regression' or None, or a `Task`, but got ...
    """
    if isinstance(task, Task):
        return task
    if isinstance(task, str | None) and task in _NAMED:
        return _NAMED[task]()
    raise ValueError(
        f"Expected argument `task` to be 'classification', 'regression' or None, or a `Task`, but got {task!r}."
    )
