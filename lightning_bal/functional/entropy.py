"""Predictive entropy of the MC-averaged prediction (max-entropy acquisition)."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_bal.functional._mc_pass import mc_moments
from lightning_bal.functional._validation import Reduction, check_log_probs, check_reduction, finalize_scores

__all__ = ["entropy"]


def entropy(log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True) -> Tensor:
    r"""Entropy of the mean prediction over the MC samples; higher is more uncertain.

    .. math:: H[\bar p] = -\sum_c \bar p_c \log \bar p_c, \quad \bar p_c = \frac{1}{K}\sum_k p_{kc}

    Args:
        log_probs: ``[N, K, C, ...]`` log-probabilities (K may be 1: a deterministic model).
        reduction: How trailing dims ``...`` are reduced to one score per item: ``"mean"``, ``"sum"``, ``"max"``
            or a callable ``[N, ...] -> [N]``. Unused without trailing dims.
        validate_args: Check the input (rank, dtype, finite values, rows of ``exp`` summing to one on average).

    Returns:
        ``[N]`` scores in nats.

    Example:
        >>> entropy(torch.full((1, 3, 4), 0.25).log())
        tensor([1.3863])
    """
    if validate_args:
        check_log_probs(log_probs, needs_mc_samples=False)
        check_reduction(reduction)
    mean_probs_N_C_R = mc_moments(log_probs, validate_args=validate_args).mean_probs
    return finalize_scores(
        torch.xlogy(mean_probs_N_C_R, mean_probs_N_C_R).sum(1).neg_(), log_probs, reduction, validate_args
    )
