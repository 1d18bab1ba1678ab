"""Regression heuristics: scores of raw MC predictions rather than log-probabilities."""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import Tensor

from lightning_bal.functional import variance
from lightning_bal.heuristics.base import Heuristic

__all__ = ["Variance"]


class Variance(Heuristic):
    """Variance of the MC predictions ``[N, K, ...]``, reduced over trailing dims (default ``"mean"``).

    Example:
        >>> import torch
        >>> Variance().select(torch.tensor([[1.0, 3.0], [2.0, 2.0]]), 1)
        Selection(indices=tensor([0]), scores=tensor([1.]), probabilities=None)
    """

    name: ClassVar[str] = "variance"
    needs_mc_samples: ClassVar[bool] = True
    consumes: ClassVar[Literal["log_probs", "outputs"]] = "outputs"

    def score(self, log_probs: Tensor) -> Tensor:
        """``[N, K, ...]`` regression predictions (not log-probabilities) to ``[N]`` variances."""
        return variance(log_probs, self.reduction, self.validate_args)
