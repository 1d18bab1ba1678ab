"""Regression: labels are finite numbers; one output, or a mean and a log-variance (heteroscedastic heads)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torchmetrics import MeanSquaredError, Metric

from lightning_bal.tasks.base import Task

__all__ = ["Regression"]


class Regression(Task):
    """Real-valued outputs ``[B, ...]``, or a tuple/dict of them (a mean and a log-variance); labels are floats.

    The K samples of each output are stacked as ``[B, K, ...]`` (the default); the evaluation is the RMSE.

    Example:
        >>> Regression().check_label(3)
        3.0
        >>> Regression().stack_samples([{"mean": torch.zeros(2), "log_var": torch.zeros(2)}] * 4)["mean"].shape
        torch.Size([2, 4])
    """

    name: ClassVar[str | None] = "regression"

    def check_label(self, value: Any, num_classes: int | None = None) -> float:
        """A finite number, as a float."""
        return float(super().check_label(value))

    def metric(self, num_classes: int | None = None) -> Metric:
        """Root mean squared error, in float64: the figure sums a whole split, whose float32 rounding would show."""
        return MeanSquaredError(squared=False).set_dtype(torch.float64)
