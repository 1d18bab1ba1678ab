"""Uniform random acquisition, the baseline every heuristic must beat."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from lightning_bal.functional import sample_without_replacement
from lightning_bal.heuristics.base import Heuristic, Selection, check_scores
from lightning_bal.heuristics.registry import register_heuristic

__all__ = ["Random"]


@register_heuristic
class Random(Heuristic):
    """Select uniformly at random without replacement; needs no predictions.

    ``score`` returns zeros (one per item) and ``select_from_scores`` ignores the score values. Seed it with the
    ``generator`` passed to ``select``/``select_from_scores``.

    Example:
        >>> import torch
        >>> selection = Random().select_from_scores(torch.zeros(4), 2, torch.Generator().manual_seed(0))
        >>> selection.probabilities
        tensor([0.2500, 0.3333], dtype=torch.float64)
    """

    name: ClassVar[str] = "random"
    cost = "no MC pass: O(N) to draw"
    needs_predictions: ClassVar[bool] = False
    stochastic: ClassVar[bool] = True

    def score(self, log_probs: Any) -> Tensor:
        """Zeros ``[N]`` for any tensor with N items on dim 0."""
        if not isinstance(log_probs, Tensor) or log_probs.ndim < 1:
            raise ValueError(
                f"Expected argument `log_probs` to be a tensor with N items on dim 0, but got {log_probs!r}."
            )
        return torch.zeros(log_probs.shape[0], device=log_probs.device)

    def select_from_scores(
        self, scores: Tensor, query_size: int, generator: torch.Generator | None = None
    ) -> Selection:
        """Draw ``query_size`` of the ``len(scores)`` items uniformly; probabilities are ``1 / (N - i)``."""
        check_scores(scores, query_size)
        indices, probabilities = sample_without_replacement(
            torch.zeros(scores.numel(), dtype=torch.float64, device=scores.device), query_size, generator
        )
        return Selection(indices, scores[indices], probabilities)
