"""Tasks: what a label is, how K samples of an output are combined and joined, how a split is evaluated.

The ledger, the MC engine, the posteriors and the step evaluations ask a :class:`Task` (docs/tasks.md#adding-a-task).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torchmetrics import MeanSquaredError, Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex, MultilabelF1Score

__all__ = ["Classification", "MultiLabel", "NAMED_TASKS", "PerPosition", "Regression", "Task", "resolve_task"]


def merge(parts: list[Any], join: Callable[[list[Tensor]], Tensor]) -> Any:
    """``join`` the tensors at the same place of each of ``parts`` (tensors, or tuples/lists/dicts of them).

    Anything else is taken from the first part (a constant such as a flag the model returns).

    Examples:
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


def check_num_classes(num_classes: Any) -> int:
    """``num_classes`` if it is an integer >= 2, else an error naming it."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"Expected argument `num_classes` to be an integer >= 2, but got {num_classes!r}.")
    return num_classes


class Task:
    """A kind of supervised task; this base is the untyped one (``task=None``): tensor outputs, labels are numbers.

    Subclass it for a new task and give an instance as ``ActiveDataModule(task=...)``; what each member decides is
    in docs/tasks.md#adding-a-task.

    Examples:
        >>> Task().check_label(3.0), Task().stack_samples([torch.zeros(2, 4)] * 3).shape
        (3, torch.Size([2, 3, 4]))
    """

    name: ClassVar[str | None] = None
    batched_samples: ClassVar[bool] = True

    def check_label(self, value: Any, num_classes: int | None = None) -> Any:
        """One annotator label (or a saved one) in canonical form: finite numbers, integers kept as classes.

        A subclass may take other labels (a multi-hot vector, a class map), so the result is typed by each task.
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

    def options(self) -> dict[str, Any]:
        """What the task was built with beyond its name, as :func:`resolve_task` rebuilds it from a saved state."""
        return {}

    def metric(self, num_classes: int | None = None) -> Metric:
        """The torchmetrics metric a split is evaluated with; the untyped task has none (``NotImplementedError``)."""
        raise NotImplementedError(f"Expected a task with a metric, but `{type(self).__name__}` defines none.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Classification(Task):
    """Logits ``[B, C]``; a label is an integer class in ``[0, num_classes)``; evaluated by accuracy.

    Examples:
        >>> Classification().check_label(2.0, num_classes=3)
        2
    """

    name: ClassVar[str | None] = "classification"

    def check_label(self, value: Any, num_classes: int | None = None) -> int:
        """An integer class in ``[0, num_classes)`` (``[0, inf)`` when the number of classes is not known)."""
        label = super().check_label(value)
        if not isinstance(label, int):
            raise ValueError(f"Expected argument `labels` to hold integer classes, but got {value!r}.")
        if not 0 <= label < (num_classes or 2**63 - 1):
            span = f"[0, {num_classes})" if num_classes else "[0, inf)"
            raise ValueError(f"Expected argument `labels` to hold classes in {span}, but got {value!r}.")
        return label

    def metric(self, num_classes: int | None = None) -> Metric:
        """The fraction of items whose most probable class is right."""
        return MulticlassAccuracy(check_num_classes(num_classes), average="micro")


class PerPosition(Task):
    """Logits ``[B, C, ...]`` and class maps ``[...]`` as targets (from the dataset); evaluated by mean IoU.

    Args:
        ignore_index: the target value of positions that do not count (void pixels, padding), if any.

    Examples:
        >>> iou = PerPosition(ignore_index=-100).metric(num_classes=3)
        >>> iou.update(torch.tensor([[0, 1, 2]]), torch.tensor([[0, 1, -100]]))
        >>> float(iou.compute())
        1.0
    """

    name: ClassVar[str | None] = "per_position"

    def __init__(self, ignore_index: int | None = None) -> None:
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise TypeError(f"Expected argument `ignore_index` to be an integer or None, but got {ignore_index!r}.")
        self.ignore_index = ignore_index

    def check_label(self, value: Any, num_classes: int | None = None) -> Tensor:
        """An annotator's class map (mask, token labels) as a ``LongTensor``.

        A class map is an integer tensor of classes in ``[0, num_classes)`` or ``ignore_index``. A single number is
        refused: the labelled view puts the label in the place of the item's target, where one class for a whole mask
        would fail only in training, with the label already kept.
        """
        if not isinstance(value, Tensor):
            raise ValueError(
                f"Expected argument `labels` to hold class maps (a mask or token labels, as an integer tensor) for a"
                f" per-position run, but got {value!r}: one class cannot label every position of an item."
            )
        if value.dim() == 0 or not value.numel() or value.is_floating_point() or value.is_complex():
            raise ValueError(
                f"Expected argument `labels` to hold class maps (non-empty integer tensors), but got a tensor of shape"
                f" {tuple(value.shape)} and dtype {value.dtype}."
            )
        labels = value.detach().to("cpu", torch.long)
        valid = labels >= 0 if num_classes is None else (labels >= 0) & (labels < num_classes)
        if self.ignore_index is not None:
            valid |= labels == self.ignore_index
        if not bool(valid.all()):
            span = f"[0, {num_classes})" if num_classes else "[0, inf)"
            raise ValueError(
                f"Expected argument `labels` to hold class maps with classes in {span} or `ignore_index`"
                f" ({self.ignore_index!r}), but got {sorted(set(labels[~valid].unique().tolist()))[:5]}."
            )
        return labels.clone()

    def options(self) -> dict[str, Any]:
        """``ignore_index`` when set: a saved class map holding it is valid only for a task that knows it."""
        return {} if self.ignore_index is None else {"ignore_index": self.ignore_index}

    def metric(self, num_classes: int | None = None) -> MulticlassJaccardIndex:
        """Mean IoU over the classes present; synchronised by hand (the pixel accuracy reads the same matrix)."""
        return MulticlassJaccardIndex(
            check_num_classes(num_classes), ignore_index=self.ignore_index, validate_args=False, sync_on_compute=False
        )

    def __repr__(self) -> str:
        return f"PerPosition(ignore_index={self.ignore_index!r})"


class Regression(Task):
    """One output, or a mean and a log-variance (a tuple or dict); a label is a finite float; evaluated by RMSE."""

    name: ClassVar[str | None] = "regression"

    def check_label(self, value: Any, num_classes: int | None = None) -> float:
        """A finite number, as a float."""
        return float(super().check_label(value))

    def metric(self, num_classes: int | None = None) -> Metric:
        """Root mean squared error in float64: the figure sums a whole split, whose float32 rounding would show."""
        return MeanSquaredError(squared=False).set_dtype(torch.float64)


class MultiLabel(Task):
    """Logits ``[B, C]``, one yes/no per class; a label is a multi-hot ``LongTensor[C]``; evaluated by macro F1.

    Examples:
        >>> MultiLabel().check_label([1, 0, 1], num_classes=3)
        tensor([1, 0, 1])
    """

    name: ClassVar[str | None] = "multilabel"

    def check_label(self, value: Any, num_classes: int | None = None) -> Tensor:
        """A vector of 0s and 1s, one per class (``num_classes`` long when known), as a ``LongTensor``."""
        try:
            labels = torch.as_tensor(value.detach().cpu() if isinstance(value, Tensor) else value)
        except (TypeError, ValueError, RuntimeError):
            labels = None
        if (
            labels is None
            or labels.dim() != 1
            or labels.is_complex()
            or not bool(((labels == 0) | (labels == 1)).all())
        ):
            raise ValueError(
                f"Expected argument `labels` to hold multi-hot vectors (0 or 1 per class), but got {value!r:.80}."
            )
        if labels.numel() != (num_classes or labels.numel()) or not labels.numel():
            raise ValueError(
                f"Expected argument `labels` to hold multi-hot vectors of {num_classes or 'at least 1'} classes"
                f" (`num_classes`), but got one of {labels.numel()}."
            )
        return labels.to(torch.long)

    def metric(self, num_classes: int | None = None) -> Metric:
        """The F1 score of each class (a logit above 0 says yes), averaged over the classes."""
        return MultilabelF1Score(check_num_classes(num_classes), average="macro")


#: Tasks of their own modules, by name, added as those modules are imported (``lightning_bal.data`` imports
#: ``lightning_bal.tasks.detection``, which adds ``"detection"``).
NAMED_TASKS: dict[str, type[Task]] = {}


def resolve_task(task: Any, options: Any = None) -> Task:
    """``task`` as a :class:`Task`: a ``Task`` as it is, a name or ``None``, built with ``options`` (a name's).

    The names: ``"classification"``, ``"multilabel"``, ``"per_position"``, ``"regression"`` and those in
    :data:`NAMED_TASKS` (``"detection"``): each task's ``name``, so the name a state saves resolves back to its task,
    and ``options`` are what its :meth:`Task.options` returned.

    Examples:
        >>> resolve_task("per_position", {"ignore_index": 255})
        PerPosition(ignore_index=255)
    """
    if isinstance(task, Task):
        return task
    named: dict[str | None, type[Task]] = {
        None: Task,
        "classification": Classification,
        "multilabel": MultiLabel,
        "per_position": PerPosition,
        "regression": Regression,
    }
    named.update(NAMED_TASKS)
    if isinstance(task, str | None) and task in named:
        if options is not None and not (isinstance(options, dict) and all(isinstance(key, str) for key in options)):
            raise TypeError(f"Expected argument `options` to be a dict of the task's arguments, but got {options!r}.")
        try:
            return named[task](**(options or {}))
        except TypeError as err:
            raise TypeError(
                f"Expected argument `options` to be arguments of task {task!r}, but got {options!r}: {err}"
            ) from err
    others = "".join(f", {name!r}" for name in sorted(NAMED_TASKS))
    raise ValueError(
        f"Expected argument `task` to be 'multilabel', 'classification', 'regression', 'per_position'{others} or None,"
        f" or a `Task`, but got {task!r}."
    )
