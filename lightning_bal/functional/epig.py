r"""EPIG: expected predictive information gain about target inputs (Bickford Smith et al., AISTATS 2023)."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_bal.functional._validation import check_finite_scores, check_log_probs, check_mass, row_mass_error

__all__ = ["epig", "check_targets"]

# Elements of the [chunk, C, T, C] joint per chunk (16 MiB of float32, and a log buffer as large): an efficient
# matmul, with memory bounded independently of N.
_CHUNK_ELEMENTS = 1 << 22


def _check_shape(log_probs: Tensor, name: str, items: str, min_items: int) -> None:
    check_log_probs(log_probs, needs_mc_samples=True, name=name)
    if log_probs.ndim != 3 or log_probs.shape[0] < min_items:
        raise ValueError(
            f"Expected argument `{name}` to have shape [{items}, K, C] with {items} >= {min_items}, but got shape"
            f" {tuple(log_probs.shape)}."
        )


def _probs(log_probs: Tensor, name: str, dtype: torch.dtype, validate_args: bool) -> Tensor:
    probs = log_probs.to(dtype).exp()
    if validate_args and probs.numel() > 0:
        check_mass(row_mass_error(probs.detach()), log_probs, name=name)
    return probs


def check_targets(log_probs_targets: Tensor) -> None:
    """Check that ``log_probs_targets`` holds ``[T, K, C]`` log-probabilities with T >= 1 and K >= 2."""
    _check_shape(log_probs_targets, "log_probs_targets", "T", min_items=1)
    _probs(log_probs_targets, "log_probs_targets", log_probs_targets.dtype, validate_args=True)


def epig(log_probs_pool: Tensor, log_probs_targets: Tensor, validate_args: bool = True) -> Tensor:
    r"""Expected predictive information gain: what labelling x tells about predictions on target inputs x*.

    .. math:: \mathrm{EPIG}(x) = \frac{1}{T}\sum_{t=1}^T I[y; y_t^* \mid x, x_t^*]
        = H[y] + \frac{1}{T}\sum_t H[y_t^*] - \frac{1}{T}\sum_t H[y, y_t^*]

    with the joint predictive :math:`p(y, y^*) = \frac{1}{K}\sum_k p_k(y \mid x)\, p_k(y^* \mid x^*)`. The pool's
    ``[N, K, C]`` and the targets' ``[T, K, C']`` log-probabilities come from the *same* K >= 2 MC samples (the same
    dropout masks). Scores ``[N]`` are in nats, float64 for float64 inputs; see docs/user_guide.md for the targets.

    Examples:
        >>> # two equally likely models that disagree on everything: the pool label reveals the target label
        >>> log_probs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]).clamp_min(1e-12).log()
        >>> epig(log_probs, log_probs)
        tensor([0.6931])
    """
    if validate_args:
        _check_shape(log_probs_pool, "log_probs_pool", "N", min_items=0)
        _check_shape(log_probs_targets, "log_probs_targets", "T", min_items=1)
    dtype = torch.float64 if torch.float64 in (log_probs_pool.dtype, log_probs_targets.dtype) else torch.float32
    probs_pool = _probs(log_probs_pool, "log_probs_pool", dtype, validate_args)
    probs_targets = _probs(log_probs_targets.to(log_probs_pool.device), "log_probs_targets", dtype, validate_args)
    num_pool, num_samples, num_classes = probs_pool.shape
    num_targets, _, num_target_classes = probs_targets.shape
    if validate_args and probs_targets.shape[1] != num_samples:
        raise ValueError(
            f"Expected argument `log_probs_targets` to hold the same K={num_samples} MC samples as"
            f" `log_probs_pool`, but got K={probs_targets.shape[1]}."
        )
    # [K + 1, T * C'] with the 1/K folded in: an extra row of `tiny` (met by a column of ones on the pool side) makes
    # the matmul return joint + tiny, whose log is finite without xlogy (2x slower than log) or a clamping pass.
    tiny = torch.finfo(dtype).tiny
    tiny_1_TC = probs_targets.new_full((1, num_targets * num_target_classes), tiny)
    targets_K_TC = torch.cat([probs_targets.permute(1, 0, 2).reshape(num_samples, -1) / num_samples, tiny_1_TC])
    mean_entropy_targets = torch.special.entr(probs_targets.mean(1)).sum(1).mean()
    entropy_pool_N = torch.special.entr(probs_pool.mean(1)).sum(1)

    joint_size = num_classes * num_targets * num_target_classes
    chunk = max(1, _CHUNK_ELEMENTS // max(1, joint_size))
    joint_buffer = probs_pool.new_empty(min(chunk, num_pool) * num_classes, num_targets * num_target_classes)
    log_buffer = torch.empty_like(joint_buffer)
    ones_C_1 = probs_pool.new_ones(num_classes, 1)
    joint_entropy_N = probs_pool.new_empty(num_pool)
    for start in range(0, num_pool, chunk):
        pool_B_C_K = probs_pool[start : start + chunk].transpose(1, 2)
        size = pool_B_C_K.shape[0]
        pool_BC_K = torch.cat([pool_B_C_K, ones_C_1.expand(size, -1, -1)], 2).view(size * num_classes, -1)
        joint = torch.matmul(pool_BC_K, targets_K_TC, out=joint_buffer[: size * num_classes])
        neg_entropy = torch.log(joint, out=log_buffer[: size * num_classes]).mul_(joint)
        joint_entropy_N[start : start + size] = neg_entropy.view(size, joint_size).sum(1).div_(-num_targets)
    scores_N = (entropy_pool_N + mean_entropy_targets - joint_entropy_N).clamp_min_(0.0)
    if validate_args:
        check_finite_scores(scores_N, name="log_probs_pool")
    return scores_N
