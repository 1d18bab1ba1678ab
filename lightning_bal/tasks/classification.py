"""Classification, and per-position classification (segmentation, sequence labelling)."""

from __future__ import annotations

from typing import Any, ClassVar

from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from lightning_bal.tasks.base import Task

__all__ = ["Classification", "PerPosition", "check_num_classes"]


class Classification(Task):
    """Logits ``[B, C]``; a label is an integer class in ``[0, num_classes)``; evaluated by accuracy.

    Example:
        >>> Classification().check_label(3, num_classes=3)
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `labels` to hold classes in [0, 3), but got 3.
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

    Example:
        >>> import torch
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

    def metric(self, num_classes: int | None = None) -> MulticlassJaccardIndex:
        """Mean IoU over the classes present; synchronised by hand (the pixel accuracy reads the same matrix)."""
        return MulticlassJaccardIndex(
            check_num_classes(num_classes), ignore_index=self.ignore_index, validate_args=False, sync_on_compute=False
        )

    def __repr__(self) -> str:
        return f"PerPosition(ignore_index={self.ignore_index!r})"


def check_num_classes(num_classes: Any) -> int:
    """``num_classes`` if it is an integer >= 2, else an error naming it."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"Expected argument `num_classes` to be an integer >= 2, but got {num_classes!r}.")
    return num_classes
