"""Confidence intervals over seeds for paired differences: Student's t, or the bootstrap.

Two intervals are offered, both over seeds (the seed is the unit of replication):

- ``"t"`` (the default): Student's t interval, ``mean +- t(n-1) * sd / sqrt(n)``. It assumes the paired differences
  are roughly normal; with 2 seeds it is defined but very wide (``t(1) = 12.7``).
- ``"bootstrap"``: the percentile interval of the mean over ``resamples`` resamples of the seeds with replacement,
  drawn from a generator seeded with ``seed``. It assumes nothing about the shape, but with few seeds it takes few
  values (2 seeds: 3 distinct means) and is too narrow; prefer ``"t"`` below about 10 seeds.

One seed is refused: a difference with nothing to compare it to has no interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightning_bal.utilities.checks import check_one_of, check_python_int

__all__ = ["INTERVALS", "PairedDifference", "confidence_interval", "t_quantile"]

INTERVALS = ("t", "bootstrap")


def _check_level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"Expected argument `level` to be a number in (0, 1), but got {level!r}.")
    return float(level)


def _t_two_sided(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with ``df`` (a positive integer) degrees of freedom, by its finite series."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        # Odd df: 2/pi * (theta + sin * cos * (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)), df - 2 terms of the series.
        term, total = math.cos(theta), 0.0
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= cos2 * (2 * k) / (2 * k + 1)
        return 2 / math.pi * (theta + sin * total)
    term, total = 1.0, 0.0
    for k in range(1, df // 2 + 1):
        total += term
        term *= cos2 * (2 * k - 1) / (2 * k)
    return sin * total


def t_quantile(level: float, df: int) -> float:
    """The ``t`` with ``P(|T| <= t) = level`` for Student's t with ``df`` degrees of freedom (two-sided).

    Examples:
        >>> round(t_quantile(0.95, 1), 3), round(t_quantile(0.95, 4), 3), round(t_quantile(0.95, 30), 3)
        (12.706, 2.776, 2.042)
    """
    level = _check_level(level)
    df = check_python_int("df", df, 1)
    if df == 1:
        return math.tan(math.pi * level / 2)
    low, high = 0.0, 1.0
    while _t_two_sided(high, df) < level:
        high *= 2
    # The series is monotone in t: bisection to float precision.
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        low, high = (middle, high) if _t_two_sided(middle, df) < level else (low, middle)
    return (low + high) / 2


@dataclass(frozen=True)
class PairedDifference:
    """The difference heuristic minus baseline over seeds: its mean, a confidence interval, each seed's value.

    Attributes:
        mean: the mean difference over seeds.
        low: the lower end of the interval.
        high: the upper end of the interval.
        values: ``{seed: difference}``.
    """

    mean: float
    low: float
    high: float
    values: dict[int, float]

    @property
    def seeds(self) -> int:
        """The number of seeds (pairs)."""
        return len(self.values)

    @property
    def above(self) -> int:
        """The number of seeds on which the heuristic is above the baseline (a difference > 0, a tie is not)."""
        return sum(value > 0 for value in self.values.values())


def confidence_interval(
    values: Mapping[int, float],
    *,
    level: float = 0.95,
    method: str = "t",
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedDifference:
    """The mean of ``{seed: difference}`` and its ``level`` interval over seeds (``"t"`` or ``"bootstrap"``).

    The result does not depend on the order of the seeds: they are sorted before anything is summed or resampled.

    Examples:
        >>> d = confidence_interval({0: 0.02, 1: 0.04, 2: 0.03})
        >>> round(d.mean, 4), round(d.low, 4), round(d.high, 4), d.above
        (0.03, 0.0052, 0.0548, 3)
    """
    if not isinstance(values, Mapping):
        raise TypeError(f"Expected argument `values` to be a mapping {{seed: difference}}, but got {values!r}.")
    for key, value in values.items():
        if isinstance(key, bool) or not isinstance(key, int):
            raise TypeError(f"Expected argument `values` to have integer seeds as keys, but got {key!r}.")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"Expected argument `values` to hold finite numbers, but seed {key} has {value!r}.")
    if len(values) < 2:
        raise ValueError(
            f"Expected argument `values` to hold at least 2 seeds (a paired difference needs pairs to vary over), but"
            f" got {len(values)}."
        )
    level = _check_level(level)
    check_one_of("method", method, INTERVALS)
    resamples = check_python_int("resamples", resamples, 1)
    seed = check_python_int("seed", seed, 0)
    ordered = [float(values[key]) for key in sorted(values)]
    n = len(ordered)
    mean = math.fsum(ordered) / n
    if method == "t":
        spread = math.sqrt(math.fsum((value - mean) ** 2 for value in ordered) / (n - 1))
        half = t_quantile(level, n - 1) * spread / math.sqrt(n)
        low, high = mean - half, mean + half
    else:
        draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        means = np.asarray(ordered)[draws].mean(axis=1)
        tail = (1 - level) / 2
        low, high = (float(q) for q in np.quantile(means, [tail, 1 - tail]))
    # A constant difference has no spread: its interval is the point, not a float-rounding sliver around it.
    if max(ordered) == min(ordered):
        low = high = mean = ordered[0]
    return PairedDifference(mean, low, high, {key: float(values[key]) for key in sorted(values)})
