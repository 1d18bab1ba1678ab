"""The task: what a label is, how K samples of an output are combined, how batches join, how a split is evaluated.

Every place that used to assume ``[B, K, C, ...]`` tensors and scalar labels (the ledger, the MC engine, the
posteriors, the step evaluations) asks a :class:`Task` instead, so that a task with other outputs (object
detection: a variable number of boxes per image) is one subclass in its own module. ``docs/tasks.md`` lists the
methods and a plan for detection.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["Task", "cat_items", "merge", "stack_samples"]


def merge(parts: list[Any], join: Callable[[list[Tensor]], Tensor]) -> Any:
    """``join`` the tensors found at the same place of each of ``parts`` (tensors, or tuples/lists/dicts of them).

    Anything else is taken from the first part (a constant such as a flag the model returns).

    Example:
        >>> merge([{"m": torch.zeros(2), "n": 3}, {"m": torch.ones(1), "n": 3}], torch.cat)
        {'m': tensor([0., 0., 1.]), 'n': 3}
    """
    first = parts[0]
    if isinstance(first, Tensor):
        return join(parts)
    if isinstance(first, Mapping):
        return {key: merge([part[key] for part in parts], join) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(merge(list(group), join) for group in zip(*parts, strict=True))
    return first


def stack_samples(samples: list[Any]) -> Any:
    """K per-sample outputs ``[B, ...]`` (tensors, or tuples/dicts of them) stacked into ``[B, K, ...]``.

    Example:
        >>> stack_samples([(torch.zeros(4, 3), torch.zeros(4))] * 5)[0].shape
        torch.Size([4, 5, 3])
    """
    return merge(samples, lambda tensors: torch.stack(tensors, dim=1))


def cat_items(parts: list[Any]) -> Any:
    """Per-batch outputs ``[B_i, ...]`` (tensors, or tuples/dicts of them) joined along the items.

    Example:
        >>> cat_items([torch.zeros(2, 3), torch.zeros(1, 3)]).shape
        torch.Size([3, 3])
    """
    return merge(parts, torch.cat)


class Task:
    """A kind of supervised task, as the library sees it; this base is the untyped task (``task=None``).

    Subclass it for a new task and give an instance as ``ActiveDataModule(task=...)``; the MC engine, the ledger
    and the step evaluations then call its methods. The defaults suit any model whose outputs are tensors ``[B, ...]``
    (or tuples/dicts of them) and whose labels are numbers.

    Attributes:
        name: what the datamodule's state records as its task (``None`` for the untyped task).
        batched_samples: whether K samples may run as one forward of ``K * B`` rows whose tensors split into
            ``[K, B, ...]``. A task whose model returns a list with one entry per item sets it ``False``: the engine
            then runs one forward per sample and hands the K outputs to :meth:`stack_samples`.

    Example:
        >>> task = Task()
        >>> task.check_label(3), task.check_label(0.5)
        (3, 0.5)
        >>> task.stack_samples([torch.zeros(2, 4)] * 3).shape
        torch.Size([2, 3, 4])
        >>> task.check_label(float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `labels` to hold finite numbers, but got nan.
    """

    name: ClassVar[str | None] = None
    batched_samples: ClassVar[bool] = True

    def check_label(self, value: Any, num_classes: int | None = None) -> int | float:
        """One annotator label (or a stored one) in its canonical form; an error naming ``labels`` if invalid.

        The untyped task takes finite numbers and keeps integers as classes.

        Args:
            value: the label.
            num_classes: the number of classes, when known (the classification task checks labels against it).
        """
        number = _finite_number(value)
        integral = isinstance(number, numbers.Integral) or float(number).is_integer()
        return int(float(number)) if integral else float(number)

    def stack_samples(self, samples: list[Any]) -> Any:
        """The K outputs of one batch, one per MC sample, combined into what heuristics read (``[B, K, ...]``)."""
        return stack_samples(samples)

    def cat_items(self, parts: list[Any]) -> Any:
        """Outputs of consecutive runs of items (as :meth:`stack_samples` made them) joined into one."""
        return cat_items(parts)

    def metric(self, num_classes: int | None = None) -> Metric:
        """The torchmetrics metric a split of this task is evaluated with; the untyped task has none.

        Raises:
            NotImplementedError: for a task without a metric.
        """
        raise NotImplementedError(f"Expected a task with a metric, but `{type(self).__name__}` defines none.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _finite_number(value: Any) -> numbers.Real:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Expected argument `labels` to hold numbers, but got {value!r} of type {type(value).__name__}."
        )
    if not math.isfinite(float(value)):
        raise ValueError(f"Expected argument `labels` to hold finite numbers, but got {value!r}.")
    return value
