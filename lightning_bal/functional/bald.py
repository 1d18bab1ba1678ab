"""BALD: mutual information between the prediction and the model parameters (Houlsby et al., 2011)."""

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
from lightning_bal.functional.entropy import entropy_over_classes

__all__ = ["bald", "expected_entropy"]


def bald(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Mutual information :math:`I[y; \omega]`, estimated from K MC samples; higher is more informative.

    .. math:: \mathrm{BALD} = H\Big[\frac{1}{K}\sum_k p_k\Big] - \frac{1}{K}\sum_k H[p_k]

    One chunked pass computes both terms. Rounding noise below zero is clipped, since the value is >= 0 exactly.

    Args:
        log_probs: ``[N, K, C, ...]`` log-probabilities with K >= 2 MC samples.
        reduction: How trailing dims ``...`` are reduced: ``"mean"``, ``"sum"``, ``"max"``, ``"topq"``, a
            :class:`~lightning_bal.functional.TopQ` or a callable (see :data:`Reduction`).
        validate_args: Check the input (rank, dtype, K >= 2, finite values, rows of ``exp`` summing to one).
        mask: Optional bool ``[N, ...]`` (the trailing dims): True where a position counts; positions marked False
            (padding, void pixels) are left out of the reduction, and an item with none that counts scores 0.0.

    Returns:
        ``[N]`` scores in nats, between 0 and :func:`~lightning_bal.functional.entropy`.

    Example:
        >>> import torch
        >>> log_probs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]).clamp_min(1e-12).log()
        >>> bald(log_probs)
        tensor([0.6931])
    """
    if validate_args:
        check_log_probs(log_probs, needs_mc_samples=True)
        check_reduction(reduction)
        check_masked_inputs(log_probs, mask)
    moments = mc_moments(log_probs, expected_entropy=True, validate_args=validate_args)
    assert moments.expected_entropy is not None  # requested above; narrows the type for mypy
    scores_N_R = entropy_over_classes(moments.mean_probs).sub_(moments.expected_entropy).clamp_min_(0.0)
    return finalize_scores(scores_N_R, log_probs, reduction, validate_args, mask)


def expected_entropy(
    log_probs: Tensor, reduction: Reduction = "mean", validate_args: bool = True, mask: Tensor | None = None
) -> Tensor:
    r"""Mean entropy of the K sample predictions, the aleatoric part of :func:`entropy`.

    .. math:: \frac{1}{K}\sum_k H[p_k] = -\frac{1}{K}\sum_k \sum_c p_{kc} \log p_{kc}

    Args:
        log_probs: ``[N, K, C, ...]`` log-probabilities.
        reduction: How trailing dims ``...`` are reduced: ``"mean"``, ``"sum"``, ``"max"``, ``"topq"``, a
            :class:`~lightning_bal.functional.TopQ` or a callable (see :data:`Reduction`).
        validate_args: Check the input (rank, dtype, finite values, rows of ``exp`` summing to one).
        mask: Optional bool ``[N, ...]`` (the trailing dims): True where a position counts; positions marked False
            (padding, void pixels) are left out of the reduction, and an item with none that counts scores 0.0.

    Returns:
        ``[N]`` conditional entropies in nats.

    Example:
        >>> import torch
        >>> expected_entropy(torch.full((1, 2, 2), 0.5).log())
        tensor([0.6931])
    """
    if validate_args:
        check_log_probs(log_probs, needs_mc_samples=False)
        check_reduction(reduction)
        check_masked_inputs(log_probs, mask)
    moments = mc_moments(log_probs, expected_entropy=True, validate_args=validate_args)
    assert moments.expected_entropy is not None  # requested above; narrows the type for mypy
    return finalize_scores(moments.expected_entropy, log_probs, reduction, validate_args, mask)
