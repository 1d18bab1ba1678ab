"""Regression heuristics: scores of raw MC predictions rather than log-probabilities."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_bal.functional import gaussian_mutual_information, variance
from lightning_bal.functional._validation import Reduction
from lightning_bal.functional.outputs import Masked, OutputKey, select_output, split_masked
from lightning_bal.heuristics.base import Heuristic
from lightning_bal.heuristics.classification import _Pointwise
from lightning_bal.heuristics.registry import register_heuristic

__all__ = ["GaussianMI", "Variance"]


@register_heuristic
class Variance(_Pointwise):
    """Variance of the MC predictions ``[N, K, ...]``, reduced over trailing dims (default ``"mean"``).

    Example:
        >>> Variance().select(torch.tensor([[1.0, 3.0], [2.0, 2.0]]), 1)
        Selection(indices=tensor([0]), scores=tensor([1.]), probabilities=None, gains=None)
    """

    name = "variance"
    cost = "O(N·K·D) over the D output values"
    needs_mc_samples = True
    consumes = "outputs"
    _function = staticmethod(variance)


@register_heuristic
class GaussianMI(Heuristic):
    r"""Mutual information of a heteroscedastic head, :math:`\frac12\log(1 + \mathrm{Var}_k\mu_k/\overline{\sigma^2})`.

    The model returns a predicted mean and a log-variance; :meth:`transform` stacks them as ``[B, K, 2, ...]`` (mean
    first) for :meth:`score`. See :func:`~lightning_bal.functional.gaussian_mutual_information`.

    Args:
        mean: The output holding the predicted means (tuple position or dict key).
        log_variance: The output holding the predicted log-variances.

    Example:
        >>> outputs = (torch.tensor([[0.0, 2.0], [1.0, 1.0]]), torch.zeros(2, 2))  # (means, log-variances), K=2
        >>> GaussianMI().score(GaussianMI().transform(outputs))
        tensor([0.3466, 0.0000])
    """

    name = "gaussian_mi"
    cost = "O(N·K·D) over the D (mean, variance) outputs of a heteroscedastic head"
    needs_mc_samples = True
    consumes = "outputs"

    def __init__(
        self,
        mean: OutputKey = 0,
        log_variance: OutputKey = 1,
        reduction: Reduction = "mean",
        validate_args: bool = True,
        mask: OutputKey | None = None,
    ) -> None:
        if mean == log_variance:
            raise ValueError(
                f"Expected arguments `mean` and `log_variance` to name two outputs, but both are {mean!r}."
            )
        super().__init__(reduction=reduction, validate_args=validate_args, output=mean, mask=mask)
        if mask is not None and mask == log_variance:
            raise ValueError(f"Expected argument `mask` to name an output apart from `log_variance`, got {mask!r}.")
        self.log_variance = log_variance

    def transform(self, outputs: Any) -> Tensor | Masked:
        """``(mean [B, K, ...], log-variance [B, K, ...])`` outputs to ``[B, K, 2, ...]`` (and the mask, if any)."""
        means, log_variances = select_output(outputs, self.output), select_output(outputs, self.log_variance)
        if means.shape != log_variances.shape:
            raise ValueError(
                f"Expected the model's mean {self.output!r} and log-variance {self.log_variance!r} outputs to have one"
                f" shape, but got {tuple(means.shape)} and {tuple(log_variances.shape)}."
            )
        return self._with_mask(outputs, torch.stack([means.float(), log_variances.float()], dim=2))

    def score(self, log_probs: Tensor | Masked, mask: Tensor | None = None) -> Tensor:
        """``[N, K, 2, ...]`` stacked means and log-variances to ``[N]`` mutual informations in nats."""
        values, mask = split_masked(log_probs, mask)
        if self.validate_args and (not isinstance(values, Tensor) or values.dim() < 3 or values.shape[2] != 2):
            got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise ValueError(
                f"Expected argument `log_probs` to be stacked means and log-variances [N, K, 2, ...] (see"
                f" `GaussianMI.transform`), but got {got}."
            )
        return gaussian_mutual_information(values[:, :, 0], values[:, :, 1], self.reduction, self.validate_args, mask)

    def __repr__(self) -> str:
        return f"GaussianMI(mean={self.output!r}, log_variance={self.log_variance!r})"
