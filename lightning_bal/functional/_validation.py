"""Input checks and trailing-dimension reductions shared by every heuristic function."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "Reduction",
    "TopQ",
    "check_log_probs",
    "check_mask",
    "check_mass",
    "mass_tolerance",
    "row_mass_error",
    "check_finite_scores",
    "check_reduction",
    "reduce_scores",
    "finalize_scores",
    "check_masked_inputs",
]


class TopQ:
    """Reduction to the mean of the top ``q`` fraction of an item's valid positions (at least one position).

    The string ``"topq"`` is ``TopQ(0.1)``. Items with no valid position get the heuristic's empty score.

    Args:
        q: fraction of positions averaged, in ``(0, 1]``; ``TopQ(1.0)`` is the mean.

    Examples:
        >>> TopQ(0.5)(torch.tensor([[1.0, 4.0, 2.0, 3.0]]))
        tensor([3.5000])
        >>> TopQ(0.0)
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `q` to be a fraction in (0, 1], but got 0.0.
    """

    def __init__(self, q: float = 0.1) -> None:
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q <= 1.0:
            raise ValueError(f"Expected argument `q` to be a fraction in (0, 1], but got {q!r}.")
        self.q = float(q)

    def __call__(self, scores: Tensor, mask: Tensor | None = None, empty: float = 0.0) -> Tensor:
        """Reduce ``[N, ...]`` scores (``mask``: bool ``[N, ...]``, True where a position counts) to ``[N]``."""
        flat = scores.flatten(1)
        valid = torch.ones_like(flat, dtype=torch.bool) if mask is None else mask.flatten(1)
        counts = valid.sum(1)
        taken = (counts.double() * self.q).ceil().long().clamp_min(1)
        ordered = flat.masked_fill(~valid, -math.inf).sort(dim=1, descending=True).values
        positions = torch.arange(flat.shape[1], device=flat.device)
        top = positions.unsqueeze(0) < taken.unsqueeze(1)
        means = torch.where(top, ordered, torch.zeros((), dtype=flat.dtype, device=flat.device)).sum(1) / taken
        return means.masked_fill(counts == 0, empty) if flat.shape[1] else torch.full_like(means, empty)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TopQ) and other.q == self.q

    def __hash__(self) -> int:
        return hash(("TopQ", self.q))

    def __repr__(self) -> str:
        return f"TopQ(q={self.q})"


#: How per-position scores (pixels, tokens, outputs) become one score per item: ``"mean"``, ``"sum"``, ``"max"``,
#: ``"topq"`` (``TopQ(0.1)``), a :class:`TopQ`, or a callable ``reduction(scores [N, ...]) -> [N]`` (called as
#: ``reduction(scores, mask)`` when a mask is given).
Reduction = str | TopQ | Callable[..., Tensor]

_REDUCTIONS = ("mean", "sum", "max", "topq")
# A row of log-probabilities rounded to bfloat16 anywhere upstream (a bf16 model's log_softmax, upcast later) has a
# mass off by up to u * (1 + H) <= u * (1 + ln C), u = 2**-8 the unit roundoff: measured up to 0.005 for C=2 and
# 0.02 for C=1000. Twice that bound leaves room for the log_softmax's own rounding; probabilities (mass >= C),
# logits and rows summing to 0 or 2 miss it by far. Float32 rows deviate by ~1e-6.
_BF16_EPS = 2.0**-7
_MIN_MASS_TOLERANCE = 1e-3


def check_log_probs(log_probs: Tensor, needs_mc_samples: bool, name: str = "log_probs") -> None:
    """Check the cheap structural properties of a ``[N, K, C, ...]`` tensor of log-probabilities.

    Values are checked later, from quantities the heuristic computes anyway (see :func:`check_mass`), so that
    validation never costs an extra pass over ``[N, K, C]``.

    Examples:
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


def mass_tolerance(num_classes: int) -> float:
    """How far a row's mass ``sum_c exp(log_probs)`` may stray from 1 for ``num_classes`` classes.

    Examples:
        >>> round(mass_tolerance(10), 4)
        0.0258
    """
    return max(_MIN_MASS_TOLERANCE, _BF16_EPS * (1.0 + math.log(max(num_classes, 1))))


def row_mass_error(probs: Tensor) -> Tensor:
    """The largest ``|sum_c probs - 1|`` over the rows of ``[N, K, C, ...]`` probabilities, a 0-d tensor.

    One pass over ``probs`` (a matrix-vector product without trailing dims), no host sync; NaN if a row holds NaN.

    Examples:
        >>> row_mass_error(torch.tensor([[[0.5, 0.5], [1.0, 1.0]]]))
        tensor(1.)
    """
    if probs.numel() == 0:
        return probs.new_zeros(())
    num_classes = probs.shape[2]
    if math.prod(probs.shape[3:]) == 1:
        # `sum(2)` over a few contiguous classes pays a per-row overhead that a product with a ones vector does not.
        masses = torch.mv(probs.reshape(-1, num_classes), probs.new_ones(num_classes))
    else:
        masses = probs.sum(2)
    lowest, highest = torch.aminmax(masses)
    return torch.maximum(highest - 1.0, 1.0 - lowest)


def check_mass(error: Tensor, log_probs: Tensor, name: str = "log_probs", per_item: bool = False) -> None:
    """Check that every row of ``exp(log_probs)`` sums to one over the class dim, given ``error = row_mass_error``.

    ``error`` is the largest deviation of a row's mass from 1, computed by the caller from the probabilities it
    needs anyway; only a failing check reads ``log_probs`` again, to name the first bad row. With ``per_item``,
    ``error`` is the largest deviation of an item's mean row mass over the K samples (per trailing position), which
    misses rows of one item whose errors offset each other, and the first bad row of a bad item is named.

    Examples:
        >>> log_probs = torch.tensor([[[-0.6931, -0.6931], [0.0, 0.0]]])
        >>> check_mass(row_mass_error(log_probs.exp()), log_probs)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `log_probs` to hold log-probabilities ... row mass of `log_probs[0, 1, :]` is 2.
    """
    worst = float(error)
    if worst != worst:  # NaN
        raise ValueError(f"Expected argument `{name}` to contain finite values, but got NaN.")
    tolerance = mass_tolerance(log_probs.shape[2])
    if worst <= tolerance:
        return
    masses = torch.logsumexp(log_probs.detach().double(), dim=2).exp()
    deviation = (masses - 1.0).abs()
    bad_rows = ~(deviation <= tolerance)
    if per_item:
        item_masses = masses.mean(1, keepdim=True)
        bad_rows &= ~((item_masses - 1.0).abs() <= tolerance)
    bad = torch.nonzero(bad_rows)
    row = tuple(int(i) for i in (bad[0] if bad.numel() else torch.unravel_index(deviation.argmax(), masses.shape)))
    index = ", ".join([str(i) for i in row[:2]] + [":"] + [str(i) for i in row[2:]])
    largest = float(log_probs.max())
    hint = f" values up to {largest:.4g} (probabilities or logits?);" if largest > 0 else ""
    item = ""
    if per_item:
        position = ", ".join([str(row[0]), ":", ":"] + [str(i) for i in row[2:]])
        item = f" (mean row mass of `{name}[{position}]` is {float(item_masses[(row[0], 0) + row[2:]]):.6g})"
    raise ValueError(
        f"Expected argument `{name}` to hold log-probabilities (values <= 0 whose exp sums to 1 over dim 2, within"
        f" {tolerance:.3g}), but got{hint} row mass of `{name}[{index}]` is {float(masses[row]):.6g}{item}."
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
    """Check that ``reduction`` is one of ``"mean"``, ``"sum"``, ``"max"``, ``"topq"``, a :class:`TopQ` or a callable.

    Examples:
        >>> check_reduction("median")
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `reduction` to be one of ('mean', 'sum', 'max', 'topq'), a TopQ or a callable, ...
    """
    if not callable(reduction) and reduction not in _REDUCTIONS:
        raise ValueError(
            f"Expected argument `reduction` to be one of {_REDUCTIONS}, a TopQ or a callable, but got {reduction!r}."
        )


def check_mask(mask: Tensor | None, shape: tuple[int, ...], name: str = "mask") -> None:
    """Check that ``mask`` is a bool tensor of ``shape``: ``[N, ...]``, one flag per scored position.

    ``True`` marks a position that counts; ``False`` one that is ignored (padding, void pixels, ``ignore_index``).

    Examples:
        >>> check_mask(torch.ones(2, 3, dtype=torch.bool), (2, 4))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `mask` to have shape (2, 4) (items, then the trailing dims of the scores), ...
    """
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(
            f"Expected argument `{name}` to be a bool tensor (True where a position counts), but got {got}."
        )
    if len(shape) < 2:
        raise ValueError(
            f"Expected argument `{name}` only for scores over positions (pixels, tokens: trailing dims), but the"
            f" inputs have none (one score per item, shape {tuple(shape)})."
        )
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"Expected argument `{name}` to have shape {tuple(shape)} (items, then the trailing dims of the scores),"
            f" but got {tuple(mask.shape)}."
        )


def reduce_scores(
    scores: Tensor,
    reduction: Reduction,
    mask: Tensor | None = None,
    empty: float = 0.0,
    higher_is_better: bool = True,
) -> Tensor:
    """Reduce per-position scores ``[N, ...]`` to one score per item ``[N]``; ``[N]`` passes through unchanged.

    Positions where the bool ``mask`` ``[N, ...]`` is False do not count; an item with no position that counts
    gets ``empty`` (the heuristic's least informative score).

    ``"max"`` and ``"topq"`` look at the most uncertain positions whatever the score's direction: for a score whose
    lower is more uncertain (``higher_is_better=False``, e.g. a margin), ``"max"`` is the smallest score and
    ``"topq"`` the mean of the smallest. A callable gets the scores as they are.

    Examples:
        >>> reduce_scores(torch.tensor([[1.0, 3.0], [0.0, 2.0]]), "max")
        tensor([3., 2.])
        >>> reduce_scores(torch.tensor([[1.0, 3.0], [0.0, 2.0]]), "max", higher_is_better=False)
        tensor([1., 0.])
        >>> mask = torch.tensor([[True, False], [False, False]])
        >>> reduce_scores(torch.tensor([[1.0, 3.0], [0.0, 2.0]]), "mean", mask=mask)
        tensor([1., 0.])
    """
    if scores.ndim == 1:
        return scores
    if not higher_is_better and (reduction in ("max", "topq") or isinstance(reduction, TopQ)):
        # The most uncertain positions of a lower-is-better score are its smallest: reduce the negated scores.
        return reduce_scores(scores.neg(), reduction, mask, -empty).neg_()
    if reduction == "topq":
        reduction = TopQ()
    if isinstance(reduction, TopQ):
        return reduction(scores, mask, empty)
    if callable(reduction):
        reduced = reduction(scores) if mask is None else reduction(scores, mask)
        if not isinstance(reduced, Tensor) or reduced.shape != scores.shape[:1]:
            got = tuple(reduced.shape) if isinstance(reduced, Tensor) else type(reduced)
            raise ValueError(
                f"Expected argument `reduction` to return a tensor of shape {tuple(scores.shape[:1])}, but got {got}."
            )
        return reduced
    flat = scores.flatten(1)
    if mask is None:
        if reduction == "mean":
            return flat.mean(1)
        if reduction == "sum":
            return flat.sum(1)
        return flat.amax(1)
    valid = mask.flatten(1)
    counts = valid.sum(1)
    if reduction == "max":
        reduced = flat.masked_fill(~valid, -math.inf).amax(1) if flat.shape[1] else flat.sum(1)
    else:
        reduced = flat.masked_fill(~valid, 0.0).sum(1)
        if reduction == "mean":
            reduced = reduced / counts.clamp_min(1)
    return reduced.masked_fill(counts == 0, empty)


def finalize_scores(
    scores_N_R: Tensor,
    log_probs: Tensor,
    reduction: Reduction,
    validate_args: bool,
    mask: Tensor | None = None,
    empty: float = 0.0,
    higher_is_better: bool = True,
) -> Tensor:
    """Restore the trailing dims of ``[N, R]`` scores, check them for NaN/inf and reduce them to ``[N]``.

    ``higher_is_better`` is the score's direction, which decides what ``"max"`` and ``"topq"`` keep (see
    :func:`reduce_scores`).

    Examples:
        >>> finalize_scores(torch.ones(2, 3), torch.zeros(2, 5, 4, 3), "sum", validate_args=True)
        tensor([3., 3.])
    """
    scores = scores_N_R.reshape(log_probs.shape[:1] + log_probs.shape[3:])
    if validate_args:
        check_finite_scores(scores)
    return reduce_scores(scores, reduction, mask, empty, higher_is_better)


def check_masked_inputs(log_probs: Tensor, mask: Tensor | None) -> None:
    """Check a ``mask`` against ``[N, K, C, ...]`` log-probabilities: it must be ``[N, ...]`` (trailing dims only).

    Examples:
        >>> check_masked_inputs(torch.zeros(2, 3, 4, 5), torch.ones(2, 4, dtype=torch.bool))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `mask` to have shape (2, 5) (items, then the trailing dims of the scores), ...
    """
    if mask is not None:
        check_mask(mask, tuple(log_probs.shape[:1] + log_probs.shape[3:]))
