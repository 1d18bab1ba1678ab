"""Mean standard deviation of the class probabilities over MC samples (Kampffmeyer et al., 2016)."""

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

__all__ = ["mean_std"]


def mean_std(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Class-averaged standard deviation of the K sample probabilities; higher is more uncertain.

    .. math:: \frac{1}{C}\sum_c \sqrt{\frac{1}{K}\sum_k (p_{kc} - \bar p_c)^2}

    The population (biased) standard deviation over K, as in Gal et al. (2017).

    Args:
        log_probs: ``[N, K, C, ...]`` log-probabilities with K >= 2 MC samples.
        reduction: How trailing dims ``...`` are reduced: ``"mean"``, ``"sum"``, ``"max"``, ``"topq"``, a
            :class:`~lightning_bal.functional.TopQ` or a callable (see :data:`Reduction`).
        validate_args: Check the input (rank, dtype, K >= 2, finite values, rows of ``exp`` summing to one).
        mask: Optional bool ``[N, ...]`` (the trailing dims): True where a position counts; positions marked False
            (padding, void pixels) are left out of the reduction, and an item with none that counts scores 0.0.

    Returns:
        ``[N]`` scores in ``[0, 0.5]``.

    Example:
        >>> import torch
        >>> mean_std(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]).clamp_min(1e-12).log())
        tensor([0.5000])
    """
    if validate_args:
        check_log_probs(log_probs, needs_mc_samples=True)
        check_reduction(reduction)
        check_masked_inputs(log_probs, mask)
    moments = mc_moments(log_probs, variance=True, validate_args=validate_args)
    assert moments.variance_probs is not None  # requested above; narrows the type for mypy
    return finalize_scores(moments.variance_probs.sqrt().mean(1), log_probs, reduction, validate_args, mask)
