"""Predictive entropy of the MC-averaged prediction (max-entropy acquisition)."""

from __future__ import annotations

from torch import Tensor

from lightning_bal.functional._entropy import entropy_over_classes
from lightning_bal.functional._mc_pass import mc_moments
from lightning_bal.functional._validation import (
    Reduction,
    check_log_probs,
    check_masked_inputs,
    check_reduction,
    finalize_scores,
)

__all__ = ["entropy"]


def entropy(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Entropy of the mean prediction over the MC samples; higher is more uncertain.

    .. math:: H[\bar p] = -\sum_c \bar p_c \log \bar p_c, \quad \bar p_c = \frac{1}{K}\sum_k p_{kc}

    Args:
        log_probs: ``[N, K, C, ...]`` log-probabilities (K may be 1: a deterministic model).
        reduction: How trailing dims ``...`` are reduced to one score per item: ``"mean"``, ``"sum"``, ``"max"``
            or a callable ``[N, ...] -> [N]``. Unused without trailing dims.
        validate_args: Check the input (rank, dtype, finite values, rows of ``exp`` summing to one on average).
        mask: Optional bool ``[N, ...]`` (the trailing dims): True where a position counts; positions marked False
            (padding, void pixels) are left out of the reduction, and an item with none that counts scores 0.0.

    Returns:
        ``[N]`` scores in nats.

    Example:
        >>> import torch
        >>> entropy(torch.full((1, 3, 4), 0.25).log())
        tensor([1.3863])
    """
    if validate_args:
        check_log_probs(log_probs, needs_mc_samples=False)
        check_reduction(reduction)
        check_masked_inputs(log_probs, mask)
    mean_probs_N_C_R = mc_moments(log_probs, validate_args=validate_args).mean_probs
    return finalize_scores(entropy_over_classes(mean_probs_N_C_R), log_probs, reduction, validate_args, mask)
