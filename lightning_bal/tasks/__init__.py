"""Tasks: what a label is, how K samples of an output are combined and joined, how a split is evaluated."""

from __future__ import annotations

from typing import Any

from lightning_bal.tasks.base import Classification, PerPosition, Regression, Task

__all__ = ["Classification", "PerPosition", "Regression", "Task", "resolve_task"]


def resolve_task(task: Any) -> Task:
    """``task`` as a :class:`Task`: a ``Task`` as it is, ``"classification"``, ``"regression"`` or ``None``."""
    if isinstance(task, Task):
        return task
    named = {None: Task, "classification": Classification, "regression": Regression}
    if isinstance(task, str | None) and task in named:
        return named[task]()
    raise ValueError(
        f"Expected argument `task` to be 'classification', 'regression' or None, or a `Task`, but got {task!r}."
    )
