"""Input checks and trailing-dimension reductions shared by every heuristic function."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "Reduction",
    "check_log_probs",
    "check_mass",
    "check_finite_scores",
    "check_reduction",
    "reduce_scores",
    "finalize_scores",
]

Reduction = str | Callable[[Tensor], Tensor]

_REDUCTIONS = ("mean", "sum", "max")
# Row masses of float32 log-softmax outputs deviate from 1 by ~1e-6; probabilities or logits by far more.
_MASS_TOLERANCE = 1e-3


def check_log_probs(log_probs: Tensor, needs_mc_samples: bool, name: str = "log_probs") -> None:
    """Check the cheap structural properties of a ``[N, K, C, ...]`` tensor of log-probabilities.

    Values are checked later, from quantities the heuristic computes anyway (see :func:`check_mass`), so that
    validation never costs an extra pass over ``[N, K, C]``.

    Example:
        >>> check_log_probs(torch.zeros(2, 3), needs_mc_samples=False)
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `log_probs` to have shape [N, K, C, ...] (at least 3 dims), but got shape (2, 3).
    """
    if not isinstance(log_probs, Tensor):
        raise TypeError(f"Expected argument `{name}` to be a torch.Tensor, but got {type(log_probs)}.")
    if not log_probs.is_floating_point():
        raise TypeError(f"Expected argument `{name}` to be a floating point tensor, but got dtype {log_probs.dtype}.")
    if log_probs.ndim < 3:
        raise ValueError(
            f"Expected argument `{name}` to have shape [N, K, C, ...] (at least 3 dims), but got shape"
            f" {tuple(log_probs.shape)}."
        )
    if needs_mc_samples and log_probs.shape[1] < 2:
        raise ValueError(
            f"Expected argument `{name}` to hold K >= 2 MC samples on dim 1 (this heuristic measures disagreement"
            f" between samples), but got K={log_probs.shape[1]}."
        )


def check_mass(mass: Tensor, num_rows: int, log_probs: Tensor, name: str = "log_probs") -> None:
    """Check that ``exp(log_probs)`` sums to one over the class dim, given ``mass = exp(log_probs).sum()``.

    The check is on the mean row mass ``mass / num_rows`` (``num_rows = N * K * prod(trailing dims)``): it is free
    given the class means the heuristics compute anyway, and probabilities or logits fail it by a wide margin.

    Example:
        >>> probs = torch.full((2, 3, 4), 0.25)
        >>> check_mass(probs.exp().sum(), 6, probs)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `log_probs` to hold log-probabilities (values <= 0 whose exp sums to 1 ...
    """
    if num_rows == 0:  # an empty pool has no row to check
        return
    mean_mass = float(mass) / num_rows
    if mean_mass != mean_mass:  # NaN
        raise ValueError(f"Expected argument `{name}` to contain finite values, but got NaN.")
    if abs(mean_mass - 1.0) > _MASS_TOLERANCE:
        largest = float(log_probs.max())
        hint = " (probabilities or logits?)" if largest > 0 else ""
        raise ValueError(
            f"Expected argument `{name}` to hold log-probabilities (values <= 0 whose exp sums to 1 over dim 2),"
            f" but got values up to {largest:.4g}{hint}." + ("" if hint else f" Mean row mass is {mean_mass:.6g}.")
        )


def check_finite_scores(scores: Tensor, name: str = "log_probs") -> None:
    """Raise if ``scores`` holds NaN or inf, which only non-finite inputs can produce."""
    # A finite sum proves every score finite in one cheap reduction (``isfinite().all()`` is four passes); only a
    # non-finite sum, which large finite scores can also give by overflow, needs the element-wise check.
    if math.isfinite(float(scores.sum())):
        return
    if not bool(torch.isfinite(scores).all()):
        raise ValueError(f"Expected argument `{name}` to contain finite values, but got NaN or inf.")


def check_reduction(reduction: Reduction) -> None:
    """Check that ``reduction`` is one of ``"mean"``, ``"sum"``, ``"max"`` or a callable.

    Example:
        >>> check_reduction("median")
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `reduction` to be one of ('mean', 'sum', 'max') or a callable, but got 'median'.
    """
    if not callable(reduction) and reduction not in _REDUCTIONS:
        raise ValueError(
            f"Expected argument `reduction` to be one of {_REDUCTIONS} or a callable, but got {reduction!r}."
        )


def reduce_scores(scores: Tensor, reduction: Reduction) -> Tensor:
    """Reduce per-position scores ``[N, ...]`` to one score per item ``[N]``; ``[N]`` passes through unchanged.

    Example:
        >>> reduce_scores(torch.tensor([[1.0, 3.0], [0.0, 2.0]]), "max")
        tensor([3., 2.])
    """
    if scores.ndim == 1:
        return scores
    if callable(reduction):
        reduced = reduction(scores)
        if not isinstance(reduced, Tensor) or reduced.shape != scores.shape[:1]:
            got = tuple(reduced.shape) if isinstance(reduced, Tensor) else type(reduced)
            raise ValueError(
                f"Expected argument `reduction` to return a tensor of shape {tuple(scores.shape[:1])}, but got {got}."
            )
        return reduced
    flat = scores.flatten(1)
    if reduction == "mean":
        return flat.mean(1)
    if reduction == "sum":
        return flat.sum(1)
    return flat.amax(1)


def finalize_scores(scores_N_R: Tensor, log_probs: Tensor, reduction: Reduction, validate_args: bool) -> Tensor:
    """Restore the trailing dims of ``[N, R]`` scores, check them for NaN/inf and reduce them to ``[N]``.

    Example:
        >>> finalize_scores(torch.ones(2, 3), torch.zeros(2, 5, 4, 3), "sum", validate_args=True)
        tensor([3., 3.])
    """
    scores = scores_N_R.reshape(log_probs.shape[:1] + log_probs.shape[3:])
    if validate_args:
        check_finite_scores(scores)
    return reduce_scores(scores, reduction)
