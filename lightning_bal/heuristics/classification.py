"""Pointwise classification heuristics, thin classes over :mod:`lightning_bal.functional`."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from lightning_bal.functional import bald, entropy, least_confidence, margin, mean_std, variation_ratios
from lightning_bal.functional.outputs import Masked, split_masked
from lightning_bal.heuristics.base import Heuristic
from lightning_bal.heuristics.registry import register_heuristic

__all__ = ["BALD", "Entropy", "LeastConfidence", "Margin", "MeanSTD", "VariationRatios"]

# Reading the MC pass's [N, K, C] log-probabilities once.
_POINTWISE = "O(N·K·C) after the MC pass"


@register_heuristic
class Entropy(Heuristic):
    """Max-entropy acquisition: :func:`~lightning_bal.functional.entropy` of the MC-mean prediction.

    Example:
        >>> import torch
        >>> Entropy().select(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]).log(), 1).indices
        tensor([0])
    """

    name: ClassVar[str] = "entropy"
    cost = _POINTWISE + " (K = 1 works)"

    def score(self, log_probs: Tensor | Masked, mask: Tensor | None = None) -> Tensor:
        """``[N, K, C, ...]`` log-probabilities to ``[N]`` entropies."""
        values, mask = split_masked(log_probs, mask)
        return entropy(values, self.reduction, self.validate_args, mask)


@register_heuristic
class BALD(Heuristic):
    """BALD, the mutual information of prediction and parameters (Houlsby et al., 2011).

    Example:
        >>> import torch
        >>> log_probs = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> BALD().select(log_probs, 1)
        Selection(indices=tensor([1]), scores=tensor([0.3681]), probabilities=None, gains=None)
    """

    name: ClassVar[str] = "bald"
    cost = _POINTWISE
    needs_mc_samples: ClassVar[bool] = True

    def score(self, log_probs: Tensor | Masked, mask: Tensor | None = None) -> Tensor:
        """``[N, K, C, ...]`` log-probabilities to ``[N]`` BALD scores."""
        values, mask = split_masked(log_probs, mask)
        return bald(values, self.reduction, self.validate_args, mask)


@register_heuristic
class Margin(Heuristic):
    """Smallest margin between the two most probable classes of the MC-mean prediction (lower is better).

    Example:
        >>> import torch
        >>> Margin().select(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]).log(), 1).indices
        tensor([0])
    """

    name: ClassVar[str] = "margin"
    cost = _POINTWISE + " (K = 1 works)"
    higher_is_better: ClassVar[bool] = False

    def score(self, log_probs: Tensor | Masked, mask: Tensor | None = None) -> Tensor:
        """``[N, K, C, ...]`` log-probabilities to ``[N]`` margins."""
        values, mask = split_masked(log_probs, mask)
        return margin(values, self.reduction, self.validate_args, mask)


@register_heuristic
class LeastConfidence(Heuristic):
    """One minus the top probability of the MC-mean prediction (``1 -`` Baal's ``Certainty``).

    Example:
        >>> import torch
        >>> LeastConfidence().select(torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]]]).log(), 1).indices
        tensor([0])
    """

    name: ClassVar[str] = "least_confidence"
    cost = _POINTWISE + " (K = 1 works)"

    def score(self, log_probs: Tensor | Masked, mask: Tensor | None = None) -> Tensor:
        """``[N, K, C, ...]`` log-probabilities to ``[N]`` scores in ``[0, 1 - 1/C]``."""
        values, mask = split_masked(log_probs, mask)
        return least_confidence(values, self.reduction, self.validate_args, mask)


@register_heuristic
class VariationRatios(Heuristic):
    """Disagreement of the MC samples' predicted classes (Gal et al., 2017).

    Example:
        >>> import torch
        >>> log_probs = torch.tensor([[[0.9, 0.1], [0.9, 0.1]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> VariationRatios().score(log_probs)
        tensor([0.0000, 0.5000])
    """

    name: ClassVar[str] = "variation_ratios"
    cost = _POINTWISE
    needs_mc_samples: ClassVar[bool] = True

    def score(self, log_probs: Tensor | Masked, mask: Tensor | None = None) -> Tensor:
        """``[N, K, C, ...]`` log-probabilities to ``[N]`` variation ratios."""
        values, mask = split_masked(log_probs, mask)
        return variation_ratios(values, self.reduction, self.validate_args, mask)


@register_heuristic
class MeanSTD(Heuristic):
    """Class-averaged standard deviation of the MC sample probabilities (Gal et al., 2017).

    Example:
        >>> import torch
        >>> log_probs = torch.tensor([[[0.9, 0.1], [0.9, 0.1]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> MeanSTD().score(log_probs)
        tensor([0.0000, 0.4000])
    """

    name: ClassVar[str] = "mean_std"
    cost = _POINTWISE
    needs_mc_samples: ClassVar[bool] = True

    def score(self, log_probs: Tensor | Masked, mask: Tensor | None = None) -> Tensor:
        """``[N, K, C, ...]`` log-probabilities to ``[N]`` mean standard deviations."""
        values, mask = split_masked(log_probs, mask)
        return mean_std(values, self.reduction, self.validate_args, mask)
