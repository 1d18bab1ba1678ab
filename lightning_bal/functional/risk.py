r"""Unbiased risk estimates from actively acquired labels: PURE and LURE (Farquhar, Gal and Rainforth, ICLR 2021).

Both are unbiased estimates of the mean loss over all N items given ``probabilities``, the ``[M]`` conditional drawing
probability :math:`q_m` of every acquired item in acquisition order (the initial labels first; see
:func:`uniform_probabilities` and :attr:`~lightning_bal.heuristics.Selection.probabilities`), and ``pool_size``, N, the
dataset size before the first label. A top-k acquisition cannot be corrected (see docs/user_guide.md).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_bal.utilities.checks import check_python_int

__all__ = ["lure_weights", "pure_weights", "uniform_probabilities", "weighted_risk"]


def _check_probabilities(probabilities: Tensor, pool_size: int) -> Tensor:
    check_python_int("pool_size", pool_size, 1)
    if not isinstance(probabilities, Tensor) or probabilities.ndim != 1:
        got = tuple(probabilities.shape) if isinstance(probabilities, Tensor) else type(probabilities)
        raise ValueError(f"Expected argument `probabilities` to be a tensor of shape [M], but got {got}.")
    if probabilities.numel() > pool_size:
        raise ValueError(
            f"Expected argument `probabilities` to hold at most `pool_size`={pool_size} items, but got"
            f" {probabilities.numel()}."
        )
    probabilities = probabilities.to(torch.float64)
    if not bool(((probabilities > 0) & (probabilities <= 1)).all()):
        bad = probabilities[~((probabilities > 0) & (probabilities <= 1))][0]
        raise ValueError(f"Expected argument `probabilities` to lie in (0, 1], but got {float(bad)}.")
    return probabilities


def uniform_probabilities(count: int, pool_size: int, num_acquired: int = 0) -> Tensor:
    r"""Conditional probabilities of ``count`` items drawn uniformly after ``num_acquired`` earlier draws.

    Float64, :math:`q_m = 1 / (N - m + 1)` for the m-th draw, to concatenate with the others in acquisition order.

    Examples:
        >>> uniform_probabilities(2, pool_size=4, num_acquired=1)
        tensor([0.3333, 0.5000], dtype=torch.float64)
    """
    check_python_int("count", count, 0)
    check_python_int("num_acquired", num_acquired, 0)
    total = count + num_acquired
    check_python_int("pool_size", pool_size, total, expected=f"an integer >= `count` + `num_acquired` = {total}")
    remaining = torch.arange(pool_size - num_acquired, pool_size - num_acquired - count, -1, dtype=torch.float64)
    return remaining.reciprocal()


def lure_weights(probabilities: Tensor, pool_size: int) -> Tensor:
    r"""LURE weights :math:`v_m`, so that :math:`\hat R_\text{LURE} = \frac{1}{M}\sum_{m=1}^M v_m L_m` is unbiased.

    Float64 weights, all positive; uniform sampling gives :math:`v_m = 1`. Pass them to :func:`weighted_risk`.

    Examples:
        >>> lure_weights(torch.tensor([0.5, 0.5]), pool_size=3)
        tensor([0.8333, 1.0000], dtype=torch.float64)
    """
    q_M = _check_probabilities(probabilities, pool_size)
    num_acquired = q_M.numel()
    m_M = torch.arange(1, num_acquired + 1, dtype=torch.float64, device=q_M.device)
    # With M = N the last m equals N; its coefficient (N - M) / (N - m) is 0, so clamping the divisor is exact.
    coefficient_M = (pool_size - num_acquired) / (pool_size - m_M).clamp_min(1.0)
    return 1.0 + coefficient_M * ((pool_size - m_M + 1.0) * q_M).reciprocal().sub_(1.0)


def pure_weights(probabilities: Tensor, pool_size: int) -> Tensor:
    r"""PURE weights :math:`c_m`, so that :math:`\hat R_\text{PURE} = \frac{1}{M}\sum_{m=1}^M c_m L_m` is unbiased.

    Float64, positive; a larger variance than LURE's, which is preferred.

    Examples:
        >>> pure_weights(torch.tensor([0.5, 0.5]), pool_size=3)
        tensor([1.0000, 0.6667], dtype=torch.float64)
    """
    q_M = _check_probabilities(probabilities, pool_size)
    num_acquired = q_M.numel()
    later_M = torch.arange(num_acquired - 1, -1, -1, dtype=torch.float64, device=q_M.device)
    return (q_M * pool_size).reciprocal().add_(later_M / pool_size)


def weighted_risk(losses: Tensor, weights: Tensor) -> Tensor:
    r"""The weighted risk estimate :math:`\hat R = \frac{1}{M}\sum_{m=1}^M w_m L_m`.

    ``losses`` ``[M]`` (gradients flow through) are in the order of ``weights`` (from :func:`lure_weights` or
    :func:`pure_weights`), which are cast to their dtype and device.

    Examples:
        >>> weighted_risk(torch.tensor([1.0, 3.0]), torch.tensor([0.5, 1.5], dtype=torch.float64))
        tensor(2.5000)
    """
    for name, value in (("losses", losses), ("weights", weights)):
        if not isinstance(value, Tensor) or value.ndim != 1:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value)
            raise ValueError(f"Expected argument `{name}` to be a tensor of shape [M], but got {got}.")
    if losses.shape != weights.shape or losses.numel() == 0:
        raise ValueError(
            "Expected arguments `losses` and `weights` to have the same non-empty shape [M], but got"
            f" {tuple(losses.shape)} and {tuple(weights.shape)}."
        )
    if not losses.is_floating_point():
        raise TypeError(f"Expected argument `losses` to be a floating point tensor, but got dtype {losses.dtype}.")
    return (losses * weights.to(dtype=losses.dtype, device=losses.device)).mean()
