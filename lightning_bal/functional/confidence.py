"""Confidence-based scores of the MC-averaged prediction: margin and least confidence."""

from __future__ import annotations

from torch import Tensor

from lightning_bal.functional._mc_pass import mc_moments
from lightning_bal.functional._validation import (
    Reduction,
    check_log_probs,
    check_masked_inputs,
    check_reduction,
    finalize_scores,
)

__all__ = ["margin", "least_confidence"]


def margin(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Gap between the two most probable classes of the mean prediction; LOWER is more uncertain.

    .. math:: \bar p_{(1)} - \bar p_{(2)}, \quad \bar p = \frac{1}{K}\sum_k p_k \text{ sorted descending}

    Same values as Baal's ``Margin``.

    Args:
        log_probs: ``[N, K, C, ...]`` log-probabilities with C >= 2 classes.
        reduction: How trailing dims ``...`` are reduced: ``"mean"``, ``"sum"``, ``"max"``, ``"topq"``, a
            :class:`~lightning_bal.functional.TopQ` or a callable (see :data:`Reduction`). As for every heuristic,
            ``"max"`` keeps the most uncertain position, here the SMALLEST margin, and ``"topq"`` the smallest
            margins; a callable gets the margins as they are.
        validate_args: Check the input (rank, dtype, C >= 2, finite values, rows of ``exp`` summing to one).
        mask: Optional bool ``[N, ...]`` (the trailing dims): True where a position counts; positions marked False
            (padding, void pixels) are left out of the reduction, and an item with none that counts scores 1.0.

    Returns:
        ``[N]`` margins in ``[0, 1]``.

    Example:
        >>> import torch
        >>> margin(torch.tensor([[[0.7, 0.2, 0.1]]]).log())
        tensor([0.5000])
        >>> pixels = torch.tensor([[0.5, 0.99], [0.5, 0.01]]).log()[None, None]  # [1, 1, C=2, 2 pixels]
        >>> margin(pixels, reduction="max")  # the most uncertain pixel: the smallest margin
        tensor([0.])
    """
    if validate_args:
        check_log_probs(log_probs, needs_mc_samples=False)
        check_reduction(reduction)
        check_masked_inputs(log_probs, mask)
        if log_probs.shape[2] < 2:
            raise ValueError(f"Expected argument `log_probs` to have C >= 2 classes, but got C={log_probs.shape[2]}.")
    top2_N_2_R = mc_moments(log_probs, validate_args=validate_args).mean_probs.topk(2, dim=1).values
    margins_N_R = top2_N_2_R[:, 0] - top2_N_2_R[:, 1]
    return finalize_scores(margins_N_R, log_probs, reduction, validate_args, mask, empty=1.0, higher_is_better=False)


def least_confidence(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""One minus the probability of the most probable class of the mean prediction; higher is more uncertain.

    .. math:: 1 - \max_c \bar p_c, \quad \bar p = \frac{1}{K}\sum_k p_k

    Baal's ``Certainty`` returns :math:`\max_c \bar p_c` (lower is better); this is ``1 -`` that value.

    Args:
        log_probs: ``[N, K, C, ...]`` log-probabilities.
        reduction: How trailing dims ``...`` are reduced: ``"mean"``, ``"sum"``, ``"max"``, ``"topq"``, a
            :class:`~lightning_bal.functional.TopQ` or a callable (see :data:`Reduction`).
        validate_args: Check the input (rank, dtype, finite values, rows of ``exp`` summing to one).
        mask: Optional bool ``[N, ...]`` (the trailing dims): True where a position counts; positions marked False
            (padding, void pixels) are left out of the reduction, and an item with none that counts scores 0.0.

    Returns:
        ``[N]`` scores in ``[0, 1 - 1/C]``.

    Example:
        >>> import torch
        >>> least_confidence(torch.tensor([[[0.7, 0.2, 0.1]]]).log())
        tensor([0.3000])
    """
    if validate_args:
        check_log_probs(log_probs, needs_mc_samples=False)
        check_reduction(reduction)
        check_masked_inputs(log_probs, mask)
    top_N_R = mc_moments(log_probs, validate_args=validate_args).mean_probs.amax(1)
    return finalize_scores(top_N_R.neg_().add_(1.0), log_probs, reduction, validate_args, mask)
