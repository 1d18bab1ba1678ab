"""Several annotators per item: reconcile their answers and measure how far they agree (docs/annotators.md).

Every function reads a table of answers, one row per item and one column per annotator, each cell a class index or
``None`` where that annotator did not answer the item::

    answers = [[0, 0, 1],      # item 0: annotators a and b said class 0, c said 1
               [1, None, 1]]   # item 1: b did not answer

``cohen_kappa`` of :mod:`lightning_bal.annotation.stopping` compares two complete labelings (tensors); the one here
compares two annotators over the items both answered.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lightning_bal.utilities.checks import check_positive_int

__all__ = ["DawidSkene", "cohen_kappa", "dawid_skene", "fleiss_kappa", "majority_vote"]

# Two class posteriors closer than this are a tie: the item stays undecided.
_TIE_TOLERANCE = 1e-9


def _check_cell(name: str, value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"Expected argument `{name}` to hold class indices (integers >= 0) or None, but {where} holds {value!r}."
        )
    return value


def _check_table(answers: Any, num_classes: int | None) -> tuple[list[list[int | None]], int]:
    """The table as lists, and the number of classes (``num_classes``, else one more than the largest answer)."""
    if isinstance(answers, (str, bytes)) or not isinstance(answers, Sequence):
        raise TypeError(
            f"Expected argument `answers` to be a table (a sequence of rows, one per item), but got"
            f" {type(answers).__name__}."
        )
    rows: list[list[int | None]] = []
    for number, row in enumerate(answers):
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
            raise TypeError(
                f"Expected every row of argument `answers` to be a sequence (one cell per annotator), but row {number}"
                f" is {type(row).__name__}."
            )
        if rows and len(row) != len(rows[0]):
            raise ValueError(
                f"Expected every row of argument `answers` to have one cell per annotator ({len(rows[0])}), but row"
                f" {number} has {len(row)}."
            )
        rows.append([_check_cell("answers", cell, f"row {number}") for cell in row])
    largest = max((cell for row in rows for cell in row if cell is not None), default=-1)
    if num_classes is None:
        return rows, max(largest + 1, 1)
    check_positive_int("num_classes", num_classes)
    if largest >= num_classes:
        raise ValueError(
            f"Expected argument `answers` to hold classes below `num_classes` ({num_classes}), but it holds {largest}."
        )
    return rows, num_classes


def majority_vote(answers: Sequence[Sequence[int | None]], num_classes: int | None = None) -> list[int | None]:
    """The class most annotators gave each item; ``None`` for a tie or an item nobody answered (it stays pending).

    Args:
        answers: ``[N][A]`` class indices, ``None`` where an annotator did not answer.
        num_classes: the number of classes (default: one more than the largest answer); only checked.

    Returns:
        One class or ``None`` per item.

    Examples:
        >>> majority_vote([[0, 0, 1], [1, None, 1], [0, 1, None], [None, None, None]])
        [0, 1, None, None]
    """
    rows, _ = _check_table(answers, num_classes)
    decided: list[int | None] = []
    for row in rows:
        ranked = Counter(cell for cell in row if cell is not None).most_common(2)
        if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
            decided.append(None)
        else:
            decided.append(ranked[0][0])
    return decided


class DawidSkene(NamedTuple):
    """What :func:`dawid_skene` estimated.

    ``labels``: the most probable class of each item (``None``: a tie, or nobody answered); ``posteriors`` ``[N, C]``:
    each item's class probabilities; ``confusions`` ``[A, C, C]``: row ``k`` of annotator ``a`` is the probability of
    each answer when the true class is ``k``; ``priors`` ``[C]``: the class frequencies; ``iterations`` run, and
    whether the posteriors ``converged`` within the tolerance before the cap.
    """

    labels: list[int | None]
    posteriors: Tensor
    confusions: Tensor
    priors: Tensor
    iterations: int
    converged: bool


def dawid_skene(
    answers: Sequence[Sequence[int | None]],
    num_classes: int | None = None,
    max_iterations: int = 500,
    tolerance: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkene:
    r"""Dawid and Skene (1979): estimate each annotator's confusion matrix and each item's class by EM.

    The posteriors start from the vote shares of each item (a deterministic start); the M step counts, per annotator,
    the answers given for each (soft) true class, plus ``smoothing``, so an annotator who answered few items gets a
    confusion close to uniform where nothing was seen; the E step weighs each item's answers by them:

    .. math:: P(y_i = k) \propto \pi_k \prod_a \theta^{(a)}_{k, \ell_{ia}}

    It stops when no posterior moves more than ``tolerance``, or after ``max_iterations``. One annotator alone (or
    annotators who never answer the same item) is allowed: with nothing to compare, each answer stands as given.

    Args:
        answers: ``[N][A]`` class indices, ``None`` where an annotator did not answer.
        num_classes: the number of classes (default: one more than the largest answer).
        max_iterations: the cap on EM iterations.
        tolerance: the largest change of a posterior that counts as converged.
        smoothing: the pseudo-count added to every confusion and prior cell (> 0).

    Returns:
        A :class:`DawidSkene` with labels, posteriors, confusions and priors.

    Examples:
        >>> result = dawid_skene([[0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 1, 0]])
        >>> result.labels
        [0, 1, 0, 1]
        >>> result.converged
        True
    """
    rows, classes = _check_table(answers, num_classes)
    check_positive_int("max_iterations", max_iterations)
    for name, value in (("tolerance", tolerance), ("smoothing", smoothing)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"Expected argument `{name}` to be a positive finite number, but got {value!r}.")
    num_annotators = len(rows[0]) if rows else 0
    given = torch.tensor([[-1 if c is None else c for c in row] for row in rows], dtype=torch.long)
    given = given.reshape(len(rows), num_annotators)
    # One-hot answers [N, A, C]; a missing answer is all zeros and weighs nothing.
    seen = torch.zeros(len(rows), num_annotators, classes, dtype=torch.float64)
    seen.scatter_(2, given.clamp(min=0).unsqueeze(2), (given >= 0).unsqueeze(2).to(torch.float64))
    votes = seen.sum(1)
    answered = votes.sum(1, keepdim=True)
    posteriors = torch.where(answered > 0, votes / answered.clamp(min=1), torch.full_like(votes, 1.0 / classes))
    # Without an item answered twice nothing tells an annotator's errors from the truth (the likelihood is flat, and
    # EM would drift wherever the smoothing pulls): the answers stand as they are.
    iterations, converged = 0, not bool((answered > 1).any())
    while iterations < max_iterations and not converged:
        iterations += 1
        priors, confusions = _m_step(posteriors, seen, smoothing)
        log_joint = priors.log() + torch.einsum("nal,akl->nk", seen, confusions.log())
        updated = torch.softmax(log_joint, dim=1)
        converged = not rows or bool((updated - posteriors).abs().max() <= tolerance)
        posteriors = updated
    priors, confusions = _m_step(posteriors, seen, smoothing)
    labels: list[int | None] = []
    for row, answered_any in zip(posteriors, (answered.squeeze(1) > 0).tolist(), strict=True):
        top = torch.topk(row, min(2, classes))
        tie = classes > 1 and float(top.values[0] - top.values[1]) <= _TIE_TOLERANCE
        labels.append(int(top.indices[0]) if answered_any and not tie else None)
    return DawidSkene(labels, posteriors, confusions, priors, iterations, converged)


def _m_step(posteriors: Tensor, seen: Tensor, smoothing: float) -> tuple[Tensor, Tensor]:
    """Class priors ``[C]`` and confusions ``[A, C, C]`` from posteriors ``[N, C]``, one-hot answers ``[N, A, C]``."""
    classes = posteriors.shape[1]
    priors = (posteriors.sum(0) + smoothing) / (posteriors.shape[0] + classes * smoothing)
    counts = torch.einsum("nk,nal->akl", posteriors, seen) + smoothing
    return priors, counts / counts.sum(2, keepdim=True)


def _check_column(name: str, column: Any) -> list[int | None]:
    if isinstance(column, (str, bytes)) or not isinstance(column, Sequence):
        raise TypeError(
            f"Expected argument `{name}` to be a sequence of class indices (None: not answered), but got"
            f" {type(column).__name__}."
        )
    return [_check_cell(name, cell, f"item {number}") for number, cell in enumerate(column)]


def _kappa(observed: float, expected: float) -> float:
    # Both annotators always give one and the same class: chance agreement is certain and kappa is 0 / 0; answers
    # that agree on everything are full agreement.
    if expected >= 1.0 - 1e-12:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def cohen_kappa(first: Sequence[int | None], second: Sequence[int | None]) -> float:
    r"""Cohen's kappa of two annotators over the items both answered: :math:`(p_o - p_e) / (1 - p_e)`.

    Args:
        first: the first annotator's class per item, ``None`` where not answered.
        second: the second annotator's, over the same items.

    Returns:
        Kappa in ``[-1, 1]``; 1 where both gave the same single class throughout.

    Examples:
        >>> cohen_kappa([0, 1, 1, 0, None], [0, 1, 0, 0, 1])
        0.5
    """
    left, right = _check_column("first", first), _check_column("second", second)
    if len(left) != len(right):
        raise ValueError(
            f"Expected arguments `first` and `second` to answer the same items, but got {len(left)} and {len(right)}."
        )
    pairs = [(a, b) for a, b in zip(left, right, strict=True) if a is not None and b is not None]
    if not pairs:
        raise ValueError("Expected arguments `first` and `second` to both answer at least one item, but none is.")
    total = len(pairs)
    observed = sum(a == b for a, b in pairs) / total
    counts_first, counts_second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(counts_first[k] * counts_second[k] for k in counts_first) / total**2
    return _kappa(observed, expected)


def fleiss_kappa(answers: Sequence[Sequence[int | None]]) -> float:
    r"""Fleiss' kappa of any number of annotators, over the items with at least two answers.

    An item answered by :math:`n_i` annotators, :math:`n_{ik}` of them saying class :math:`k`, agrees by
    :math:`P_i = \sum_k n_{ik}(n_{ik} - 1) / (n_i(n_i - 1))`; chance agreement is :math:`P_e = \sum_k p_k^2` with
    :math:`p_k` the share of all answers that say :math:`k`; kappa is :math:`(\bar P - P_e) / (1 - P_e)`. Annotators
    need not answer every item (the number of answers may vary by item).

    Args:
        answers: ``[N][A]`` class indices, ``None`` where an annotator did not answer.

    Returns:
        Kappa; 1 where every answer is one and the same class.

    Examples:
        >>> round(fleiss_kappa([[0, 0, 0], [1, 1, 0], [1, 1, 1], [0, 1, None]]), 4)
        0.1597
    """
    rows, _ = _check_table(answers, None)
    counted = [Counter(cell for cell in row if cell is not None) for row in rows]
    counted = [counts for counts in counted if sum(counts.values()) >= 2]
    if not counted:
        raise ValueError("Expected argument `answers` to hold at least one item with two or more answers, but none.")
    agreement = [
        sum(n * (n - 1) for n in counts.values()) / (sum(counts.values()) * (sum(counts.values()) - 1))
        for counts in counted
    ]
    totals: Counter[int] = Counter()
    for counts in counted:
        totals.update(counts)
    total = sum(totals.values())
    expected = sum((n / total) ** 2 for n in totals.values())
    return _kappa(sum(agreement) / len(agreement), expected)
