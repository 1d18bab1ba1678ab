"""Pointwise classification heuristics, thin classes over :mod:`lightning_bal.functional`."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from lightning_bal.functional import bald, entropy, least_confidence, margin, mean_std, variation_ratios
from lightning_bal.functional.outputs import Masked, split_masked
from lightning_bal.heuristics.base import Heuristic
from lightning_bal.heuristics.registry import register_heuristic

__all__ = ["BALD", "Entropy", "LeastConfidence", "Margin", "MeanSTD", "VariationRatios"]


class _Pointwise(Heuristic):
    """A heuristic whose score is the functional ``_function(values, reduction, validate_args, mask)``."""

    _function: ClassVar[Callable[..., torch.Tensor]]

    def score(self, log_probs: torch.Tensor | Masked, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``[N, K, C, ...]`` log-probabilities (``[N, K, ...]`` outputs for regression) to ``[N]`` scores."""
        values, mask = split_masked(log_probs, mask)
        return type(self)._function(values, self.reduction, self.validate_args, mask)


# Reading the MC pass's [N, K, C] log-probabilities once.
_POINTWISE = "O(N·K·C) after the MC pass"


@register_heuristic
class Entropy(_Pointwise):
    """Max-entropy acquisition: :func:`~lightning_bal.functional.entropy` of the MC-mean prediction.

    Example:
        >>> Entropy().select(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]).log(), 1).indices
        tensor([0])
    """

    name = "entropy"
    cost = _POINTWISE + " (K = 1 works)"
    _function = staticmethod(entropy)


@register_heuristic
class BALD(_Pointwise):
    """BALD, the mutual information of prediction and parameters (Houlsby et al., 2011).

    Example:
        >>> log_probs = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> BALD().select(log_probs, 1)
        Selection(indices=tensor([1]), scores=tensor([0.3681]), probabilities=None, gains=None)
    """

    name = "bald"
    cost = _POINTWISE
    needs_mc_samples = True
    _function = staticmethod(bald)


@register_heuristic
class Margin(_Pointwise):
    """Smallest margin between the two most probable classes of the MC-mean prediction (lower is better).

    Example:
        >>> Margin().select(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]).log(), 1).indices
        tensor([0])
    """

    name = "margin"
    cost = _POINTWISE + " (K = 1 works)"
    higher_is_better = False
    _function = staticmethod(margin)


@register_heuristic
class LeastConfidence(_Pointwise):
    """One minus the top probability of the MC-mean prediction (``1 -`` Baal's ``Certainty``), in ``[0, 1 - 1/C]``.

    Example:
        >>> LeastConfidence().select(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]).log(), 1).indices
        tensor([0])
    """

    name = "least_confidence"
    cost = _POINTWISE + " (K = 1 works)"
    _function = staticmethod(least_confidence)


@register_heuristic
class VariationRatios(_Pointwise):
    """Disagreement of the MC samples' predicted classes (Gal et al., 2017).

    Example:
        >>> log_probs = torch.tensor([[[0.9, 0.1], [0.9, 0.1]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> VariationRatios().score(log_probs)
        tensor([0.0000, 0.5000])
    """

    name = "variation_ratios"
    cost = _POINTWISE
    needs_mc_samples = True
    _function = staticmethod(variation_ratios)


@register_heuristic
class MeanSTD(_Pointwise):
    """Class-averaged standard deviation of the MC sample probabilities (Gal et al., 2017).

    Example:
        >>> log_probs = torch.tensor([[[0.9, 0.1], [0.9, 0.1]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> MeanSTD().score(log_probs)
        tensor([0.0000, 0.4000])
    """

    name = "mean_std"
    cost = _POINTWISE
    needs_mc_samples = True
    _function = staticmethod(mean_std)
