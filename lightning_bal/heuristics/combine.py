"""Weighted combination of heuristics for models with several outputs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor

from lightning_bal.functional.outputs import OutputKey, select_output
from lightning_bal.heuristics.base import Heuristic

__all__ = ["CombineHeuristics"]


class CombineHeuristics(Heuristic):
    r"""Score output ``outputs[i]`` of a multi-output model with ``heuristics[i]`` and combine the scores.

    .. math:: s = \sum_i w_i \, \sigma_i s_i \Big/ \sum_i w_i, \quad \sigma_i = +1 \text{ if heuristic } i
        \text{ is higher-is-better else } -1

    The combined score is therefore always higher-is-better. Scores are not rescaled: choose weights that put
    them on comparable scales. ``needs_mc_samples`` is True, as MC samples suit every member.

    Args:
        heuristics: Pointwise heuristics, one per model output; each transforms its output as it declares (class
            log-probabilities, or raw outputs for regression heuristics).
        weights: Non-negative finite weights, one per heuristic, not all zero (default: all 1).
        outputs: The output each heuristic scores: tuple positions or dict keys (default: positions 0, 1, ...).

    Example:
        >>> import torch
        >>> from lightning_bal.heuristics import BALD, Margin
        >>> combined = CombineHeuristics([BALD(), Margin()], weights=[1.0, 1.0])
        >>> log_probs = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> combined.score([log_probs, log_probs])
        tensor([0.0000, 0.1840])
    """

    name: ClassVar[str] = "combine"
    needs_mc_samples: ClassVar[bool] = True

    def __init__(
        self,
        heuristics: Sequence[Heuristic],
        weights: Sequence[float] | None = None,
        outputs: Sequence[OutputKey] | None = None,
    ) -> None:
        super().__init__()
        if (
            not isinstance(heuristics, Sequence)
            or not heuristics
            or not all(isinstance(h, Heuristic) and not h.batch_aware for h in heuristics)
        ):
            raise ValueError(
                "Expected argument `heuristics` to be a non-empty sequence of pointwise heuristics,"
                f" but got {heuristics!r}."
            )
        if weights is not None and not isinstance(weights, Sequence):
            raise ValueError(
                f"Expected argument `weights` to be {len(heuristics)} non-negative numbers, not all zero,"
                f" but got {weights!r}."
            )
        weights = [1.0] * len(heuristics) if weights is None else list(weights)
        numbers = all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in weights)
        if len(weights) != len(heuristics) or not numbers or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(
                f"Expected argument `weights` to be {len(heuristics)} non-negative numbers, not all zero,"
                f" but got {weights!r}."
            )
        if outputs is not None and (isinstance(outputs, (str, bytes)) or not isinstance(outputs, Sequence)):
            raise TypeError(f"Expected argument `outputs` to be a sequence of output names, but got {outputs!r}.")
        keys = list(range(len(heuristics))) if outputs is None else list(outputs)
        if any(isinstance(key, bool) or not isinstance(key, (int, str)) for key in keys):
            raise TypeError(f"Expected argument `outputs` to hold tuple positions or dict keys, but got {outputs!r}.")
        if len(keys) != len(heuristics) or len(set(keys)) != len(keys):
            raise ValueError(
                f"Expected argument `outputs` to name {len(heuristics)} distinct outputs, one per heuristic,"
                f" but got {outputs!r}."
            )
        self.heuristics = list(heuristics)
        self.weights = [w / sum(weights) for w in weights]
        self.outputs = keys

    def transform(self, outputs: Any) -> list[Any]:
        """Each member's input: its output of the model, transformed as the member declares."""
        return [h.transform(select_output(outputs, key)) for h, key in zip(self.heuristics, self.outputs, strict=True)]

    def score(self, log_probs: Sequence[Tensor]) -> Tensor:
        """One tensor per output (each ``[N, K, C, ...]``, or ``[N, K, ...]`` for regression) to ``[N]`` scores."""
        if isinstance(log_probs, Tensor) or len(log_probs) != len(self.heuristics):
            raise ValueError(
                f"Expected argument `log_probs` to be a sequence of {len(self.heuristics)} tensors (one per output),"
                f" but got {type(log_probs).__name__}."
            )
        total: Tensor | None = None
        for heuristic, weight, output in zip(self.heuristics, self.weights, log_probs, strict=True):
            term = heuristic.score(output) * (weight if heuristic.higher_is_better else -weight)
            total = term if total is None else total + term
        assert total is not None  # heuristics is non-empty (checked in __init__)
        return total

    def __repr__(self) -> str:
        return f"CombineHeuristics({self.heuristics!r}, weights={self.weights!r})"
