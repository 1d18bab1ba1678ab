"""The task: what a label is, how K samples of an output are combined, how runs of items join, how it is evaluated.

The ledger, the MC engine, the posteriors and the step evaluations ask a :class:`Task` instead of assuming
``[B, K, C, ...]`` tensors and scalar labels, so that a task with other outputs is one subclass in its own module.
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

__all__ = ["Task", "merge", "stack_samples"]


def merge(parts: list[Any], join: Callable[[list[Tensor]], Tensor]) -> Any:
    """``join`` the tensors at the same place of each of ``parts`` (tensors, or tuples/lists/dicts of them).

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
    """K outputs ``[B, ...]`` (tensors, or tuples/dicts of them) stacked into ``[B, K, ...]``."""
    return merge(samples, lambda tensors: torch.stack(tensors, dim=1))


class Task:
    """A kind of supervised task; this base is the untyped one (``task=None``): tensor outputs, labels are numbers.

    Subclass it for a new task and give an instance as ``ActiveDataModule(task=...)`` (see ``docs/tasks.md``).

    Attributes:
        name: what the datamodule's state records as its task.
        batched_samples: whether K samples may run as one forward of ``K * B`` rows whose tensors split into
            ``[K, B, ...]``; a task whose model returns a list per item sets it ``False``, and the engine runs one
            forward per sample.

    Example:
        >>> Task().check_label(3.0), Task().check_label(0.5)
        (3, 0.5)
        >>> Task().stack_samples([torch.zeros(2, 4)] * 3).shape
        torch.Size([2, 3, 4])
    """

    name: ClassVar[str | None] = None
    batched_samples: ClassVar[bool] = True

    def check_label(self, value: Any, num_classes: int | None = None) -> int | float:
        """One annotator label (or a saved one) in canonical form, else an error naming ``labels``.

        The untyped task takes finite numbers and keeps integers as classes; ``num_classes`` is the number of
        classes when known.
        """
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"Expected argument `labels` to hold numbers, but got {value!r} of type {type(value).__name__}."
            )
        if not math.isfinite(float(value)):
            raise ValueError(f"Expected argument `labels` to hold finite numbers, but got {value!r}.")
        return int(float(value)) if isinstance(value, numbers.Integral) or float(value).is_integer() else float(value)

    def stack_samples(self, samples: list[Any]) -> Any:
        """The K outputs of one batch, one per sample, as heuristics read them (by default ``[B, K, ...]``)."""
        return stack_samples(samples)

    def cat_items(self, parts: list[Any]) -> Any:
        """Outputs of consecutive runs of items, as :meth:`stack_samples` made them, joined into one."""
        return merge(parts, torch.cat)

    def metric(self, num_classes: int | None = None) -> Metric:
        """The torchmetrics metric a split is evaluated with; the untyped task has none (``NotImplementedError``)."""
        raise NotImplementedError(f"Expected a task with a metric, but `{type(self).__name__}` defines none.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
