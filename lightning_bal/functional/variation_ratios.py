"""Variation ratios: disagreement of the K MC samples' predicted classes (Freeman, 1965; Gal et al., 2017)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lightning_bal.functional._mc_pass import mc_moments
from lightning_bal.functional._validation import (
    Reduction,
    check_log_probs,
    check_masked_inputs,
    check_reduction,
    finalize_scores,
)

__all__ = ["variation_ratios"]


def variation_ratios(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Fraction of MC samples whose predicted class is not the modal one; higher is more uncertain.

    .. math:: 1 - \frac{1}{K}\max_c \big|\{k : \arg\max_{c'} p_{kc'} = c\}\big|

    Ties in a sample's argmax go to the lowest class index.

    Args:
        log_probs: ``[N, K, C, ...]`` log-probabilities with K >= 2 MC samples.
        reduction: How trailing dims ``...`` are reduced: ``"mean"``, ``"sum"``, ``"max"``, ``"topq"``, a
            :class:`~lightning_bal.functional.TopQ` or a callable (see :data:`Reduction`).
        validate_args: Check the input (rank, dtype, K >= 2, finite values, rows of ``exp`` summing to one).
        mask: Optional bool ``[N, ...]`` (the trailing dims): True where a position counts; positions marked False
            (padding, void pixels) are left out of the reduction, and an item with none that counts scores 0.0.

    Returns:
        ``[N]`` scores in ``[0, 1 - 1/K]`` (multiples of ``1/K``).

    Example:
        >>> variation_ratios(torch.tensor([[[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]]).log())
        tensor([0.2500])
        >>> variation_ratios(torch.zeros(0, 4, 2))  # an empty pool
        tensor([])
    """
    if validate_args:
        check_log_probs(log_probs, needs_mc_samples=True)
        check_reduction(reduction)
        check_masked_inputs(log_probs, mask)
        mc_moments(log_probs, validate_args=True)
    num_items, num_samples, num_classes = log_probs.shape[:3]
    # The trailing size is spelled out: `reshape(..., -1)` is ambiguous, hence an error, for an empty pool.
    rest = math.prod(log_probs.shape[3:])
    votes_N_K_R = log_probs.reshape(num_items, num_samples, num_classes, rest).argmax(2)
    counts_N_C_R = torch.zeros(
        num_items, num_classes, votes_N_K_R.shape[2], dtype=torch.int64, device=log_probs.device
    ).scatter_add_(1, votes_N_K_R, torch.ones_like(votes_N_K_R))
    dtype = log_probs.dtype if log_probs.dtype in (torch.float32, torch.float64) else torch.float32
    scores_N_R = 1.0 - counts_N_C_R.amax(1).to(dtype) / num_samples
    return finalize_scores(scores_N_R, log_probs, reduction, validate_args, mask)
