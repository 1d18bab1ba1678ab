"""Regression: one output, or a mean and a log-variance (a tuple or dict, each stacked as ``[B, K, ...]``)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torchmetrics import MeanSquaredError, Metric

from lightning_bal.tasks.base import Task

__all__ = ["Regression"]


class Regression(Task):
    """A label is a finite number, kept as a float; evaluated by RMSE."""

    name: ClassVar[str | None] = "regression"

    def check_label(self, value: Any, num_classes: int | None = None) -> float:
        """A finite number, as a float."""
        return float(super().check_label(value))

    def metric(self, num_classes: int | None = None) -> Metric:
        """Root mean squared error in float64: the figure sums a whole split, whose float32 rounding would show."""
        return MeanSquaredError(squared=False).set_dtype(torch.float64)
