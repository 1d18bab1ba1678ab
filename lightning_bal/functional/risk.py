r"""Unbiased risk estimates from actively acquired labels: PURE and LURE (Farquhar, Gal and Rainforth, ICLR 2021).

Actively acquired labels lean towards informative items, so their mean loss does not estimate the population risk
:math:`r = \frac{1}{N}\sum_{i=1}^N L_i`. Both estimators here are exactly unbiased given, for every acquired item in
acquisition order (the initial labels first), its conditional drawing probability :math:`q_m` over the whole
remaining pool (:math:`1 / (N - m + 1)` for uniform draws, see :func:`uniform_probabilities`; a stochastic
heuristic's :attr:`~lightning_bal.heuristics.Selection.probabilities` if it scored the whole remaining pool), and
``pool_size``, N, the dataset size before the first label. They need :math:`q_m > 0` for every item left at every
draw: a deterministic (top-k) acquisition cannot be corrected.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["lure_weights", "pure_weights", "uniform_probabilities", "weighted_risk"]


def _check_probabilities(probabilities: Tensor, pool_size: int) -> Tensor:
    """Check ``pool_size`` and the ``[M]`` conditional probabilities, and return them as float64."""
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ValueError(f"Expected argument `pool_size` to be a positive integer, but got {pool_size!r}.")
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

    .. math:: q_m = \frac{1}{N - m + 1}, \quad m = \text{num\_acquired} + 1, \dots, \text{num\_acquired} + \text{count}

    Args:
        count: Number of items drawn uniformly at random, e.g. the initial labels.
        pool_size: N, the size of the original pool.
        num_acquired: Number of items acquired before these.

    Returns:
        float64 ``[count]`` probabilities, to concatenate with the other draws in acquisition order.

    Example:
        >>> uniform_probabilities(2, pool_size=4, num_acquired=1)
        tensor([0.3333, 0.5000], dtype=torch.float64)
    """
    for name, value in (("count", count), ("num_acquired", num_acquired)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"Expected argument `{name}` to be a non-negative integer, but got {value!r}.")
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < count + num_acquired:
        raise ValueError(
            f"Expected argument `pool_size` to be an integer >= `count` + `num_acquired` = {count + num_acquired},"
            f" but got {pool_size!r}."
        )
    remaining = torch.arange(pool_size - num_acquired, pool_size - num_acquired - count, -1, dtype=torch.float64)
    return remaining.reciprocal()


def lure_weights(probabilities: Tensor, pool_size: int) -> Tensor:
    r"""LURE weights :math:`v_m`, so that :math:`\hat R_\text{LURE} = \frac{1}{M}\sum_{m=1}^M v_m L_m` is unbiased.

    .. math:: v_m = 1 + \frac{N - M}{N - m}\left(\frac{1}{(N - m + 1)\, q_m} - 1\right)

    Every :math:`v_m > 0` (since :math:`\frac{N - M}{N - m} \le 1`); uniform sampling gives :math:`v_m = 1`, and so
    does labelling the whole pool (M = N). The expected weight sum is M. Pass the result to :func:`weighted_risk`.

    Args:
        probabilities: ``[M]`` conditional drawing probabilities :math:`q_m`, in acquisition order (see the module).
        pool_size: N, the size of the original pool.

    Returns:
        float64 ``[M]`` weights.

    Example:
        >>> lure_weights(uniform_probabilities(3, pool_size=5), pool_size=5)
        tensor([1., 1., 1.], dtype=torch.float64)
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

    The paper's average of one importance-weighted estimate per draw, collected into a weight per loss:

    .. math:: \hat R_\text{PURE} = \frac{1}{M}\sum_{m=1}^M \Big[\frac{1}{N}\sum_{t<m} L_t + \frac{L_m}{N q_m}\Big]
        = \frac{1}{M}\sum_{m=1}^M c_m L_m, \quad c_m = \frac{1}{N q_m} + \frac{M - m}{N}

    Unlike LURE's, the weights are not 1 under uniform sampling, so PURE has a larger variance; prefer LURE.

    Args:
        probabilities: ``[M]`` conditional drawing probabilities :math:`q_m`, in acquisition order (see the module).
        pool_size: N, the size of the original pool.

    Returns:
        float64 ``[M]`` positive weights.

    Example:
        >>> pure_weights(torch.tensor([0.5, 0.5]), pool_size=3)
        tensor([1.0000, 0.6667], dtype=torch.float64)
    """
    q_M = _check_probabilities(probabilities, pool_size)
    num_acquired = q_M.numel()
    later_M = torch.arange(num_acquired - 1, -1, -1, dtype=torch.float64, device=q_M.device)
    return (q_M * pool_size).reciprocal().add_(later_M / pool_size)


def weighted_risk(losses: Tensor, weights: Tensor) -> Tensor:
    r"""The weighted risk estimate :math:`\hat R = \frac{1}{M}\sum_{m=1}^M w_m L_m`.

    Args:
        losses: ``[M]`` losses of the acquired items, in the order of ``weights``. Gradients flow through.
        weights: ``[M]`` weights from :func:`lure_weights` or :func:`pure_weights`; cast to the dtype and device of
            ``losses``.

    Returns:
        A scalar tensor with the dtype of ``losses``.

    Example:
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
