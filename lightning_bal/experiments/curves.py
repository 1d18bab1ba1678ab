"""Summaries of curves, lists of ``(labelled, value)`` per step: labels to reach a value, area, mean and spread."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from numbers import Real
from typing import Any

__all__ = ["Curve", "area_under_curve", "check_threshold", "labels_to_reach", "mean_and_spread"]

Curve = list[tuple[int, float]]


def check_threshold(argument: str, threshold: Any) -> float:
    """``threshold`` as a float: a finite number (a NaN threshold is never reached, an infinite one is no target)."""
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not math.isfinite(threshold):
        raise ValueError(f"Expected argument `{argument}` to be a finite number, but got {threshold!r}.")
    return float(threshold)


def _check_curve(curve: Any, argument: str = "curve") -> Sequence[Any]:
    """``curve`` as given: a list of ``(labelled, value)`` pairs, labelled counts non-decreasing."""
    if isinstance(curve, (str, bytes)) or not isinstance(curve, Sequence):
        raise TypeError(f"Expected argument `{argument}` to be a list of (labelled, value) pairs, but got {curve!r}.")
    for i, point in enumerate(curve):
        if (
            not isinstance(point, Sequence)
            or len(point) != 2
            or any(isinstance(part, bool) or not isinstance(part, Real) for part in point)
        ):
            raise TypeError(
                f"Expected argument `{argument}` to be a list of (labelled, value) pairs of numbers, but point {i} is"
                f" {point!r}."
            )
        if i and point[0] < curve[i - 1][0]:
            raise ValueError(
                f"Expected argument `{argument}` in the order of the steps (labelled counts never falling), but point"
                f" {i} has {point[0]} labels after {curve[i - 1][0]}."
            )
    return curve


def labels_to_reach(curve: Curve, threshold: float) -> int | None:
    """The fewest labels at which ``curve`` reaches ``threshold``, else ``None``.

    Examples:
        >>> labels_to_reach([(20, 0.5), (30, 0.91), (40, 0.89), (50, 0.96)], 0.9)
        30
    """
    threshold = check_threshold("threshold", threshold)
    return next((labelled for labelled, value in _check_curve(curve) if value >= threshold), None)


def area_under_curve(curve: Curve) -> float:
    """The mean value over the labelled range (trapezoids divided by the range); a one-point curve has its value.

    Examples:
        >>> area_under_curve([(20, 0.5), (30, 0.7), (40, 0.9)])
        0.7
    """
    if not _check_curve(curve):
        raise ValueError("Expected argument `curve` to hold at least one (labelled, value) pair, but got none.")
    xs, ys = zip(*curve, strict=True)
    if xs[-1] == xs[0]:
        return float(statistics.mean(ys))
    area = sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False))
    return round(area / (xs[-1] - xs[0]), 12)


def mean_and_spread(curves: Sequence[Curve]) -> tuple[list[int], list[float], list[float], list[float]]:
    """``(labelled, mean, min, max)`` over seeds at each step, cut to the shortest curve (a run stopped early).

    Examples:
        >>> mean_and_spread([[(20, 0.5), (30, 0.7)], [(20, 0.7), (30, 0.9), (40, 1.0)]])
        ([20, 30], [0.6, 0.8], [0.5, 0.7], [0.7, 0.9])
    """
    if isinstance(curves, (str, bytes)) or not isinstance(curves, Sequence):
        raise TypeError(f"Expected argument `curves` to be a list of curves, but got {curves!r}.")
    if not curves or not all(_check_curve(curve, "curves") for curve in curves):
        raise ValueError("Expected argument `curves` to hold at least one non-empty curve, but got none.")
    length = min(len(curve) for curve in curves)
    xs = [labelled for labelled, _ in curves[0][:length]]
    for number, curve in enumerate(curves):
        other = [labelled for labelled, _ in curve[:length]]
        if other != xs:
            # Means over seeds at different label counts would mix steps: the seeds must share their grid.
            raise ValueError(
                f"Expected argument `curves` to share their labelled counts step by step, but curve {number} has"
                f" {other} where curve 0 has {xs}."
            )
    columns = [[curve[i][1] for curve in curves] for i in range(length)]
    means = [round(statistics.fmean(column), 12) for column in columns]
    return xs, means, [min(column) for column in columns], [max(column) for column in columns]
