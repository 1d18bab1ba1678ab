"""Variance of regression predictions over MC samples."""

from __future__ import annotations

from torch import Tensor

from lightning_bal.functional._validation import (
    Reduction,
    check_finite_scores,
    check_mask,
    check_reduction,
    reduce_scores,
)

__all__ = ["variance"]


def variance(
    predictions: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Variance of the K MC predictions, reduced over trailing dims; higher is more uncertain.

    .. math:: \frac{1}{K}\sum_k \big(f_k(x) - \bar f(x)\big)^2

    The population (biased) variance, as ``numpy.var`` and Baal's ``Variance``.

    Args:
        predictions: ``[N, K, ...]`` regression outputs (any real values) with K >= 2 MC samples.
        reduction: How trailing dims ``...`` are reduced: ``"mean"``, ``"sum"``, ``"max"``, ``"topq"``, a
            :class:`~lightning_bal.functional.TopQ` or a callable (see :data:`Reduction`).
        validate_args: Check the input (rank, dtype, K >= 2, finite values).
        mask: Optional bool ``[N, ...]`` (the trailing dims): True where an output counts; outputs marked False are
            left out of the reduction, and an item with none that counts scores 0.

    Returns:
        ``[N]`` variances.

    Example:
        >>> import torch
        >>> variance(torch.tensor([[1.0, 3.0], [2.0, 2.0]]))
        tensor([1., 0.])
    """
    if validate_args:
        if not isinstance(predictions, Tensor) or not predictions.is_floating_point():
            got = predictions.dtype if isinstance(predictions, Tensor) else type(predictions)
            raise TypeError(f"Expected argument `predictions` to be a floating point tensor, but got {got}.")
        if predictions.ndim < 2 or predictions.shape[1] < 2:
            raise ValueError(
                "Expected argument `predictions` to have shape [N, K, ...] with K >= 2 MC samples, but got shape"
                f" {tuple(predictions.shape)}."
            )
        check_reduction(reduction)
        if mask is not None:
            check_mask(mask, tuple(predictions.shape[:1] + predictions.shape[2:]))
    scores = predictions.var(dim=1, correction=0)
    if validate_args:
        check_finite_scores(scores, name="predictions")
    return reduce_scores(scores, reduction, mask)
