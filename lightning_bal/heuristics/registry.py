"""Look heuristics up by name, for config files and the CLI."""

from __future__ import annotations

import difflib
from typing import Any

from lightning_bal.heuristics.base import Heuristic
from lightning_bal.heuristics.batchbald import BatchBALD
from lightning_bal.heuristics.classification import BALD, Entropy, LeastConfidence, Margin, MeanSTD, VariationRatios
from lightning_bal.heuristics.diversity import BADGE, CoreSet, ProbCover, TypiClust
from lightning_bal.heuristics.epig import EPIG
from lightning_bal.heuristics.ical import ICAL
from lightning_bal.heuristics.random_sampling import Random
from lightning_bal.heuristics.regression import GaussianMI, Variance
from lightning_bal.heuristics.stochastic import (
    PowerBALD,
    PowerEntropy,
    SoftmaxBALD,
    SoftmaxEntropy,
    SoftrankBALD,
    SoftrankEntropy,
)

__all__ = ["HEURISTICS", "available_heuristics", "get_heuristic", "register_heuristic"]

HEURISTICS: dict[str, type[Heuristic]] = {
    cls.name: cls
    for cls in (
        Random,
        Entropy,
        Margin,
        LeastConfidence,
        VariationRatios,
        MeanSTD,
        BALD,
        BatchBALD,
        EPIG,
        Variance,
        GaussianMI,
        PowerBALD,
        PowerEntropy,
        SoftmaxBALD,
        SoftmaxEntropy,
        SoftrankBALD,
        SoftrankEntropy,
        BADGE,
        CoreSet,
        TypiClust,
        ProbCover,
        ICAL,
    )
}


def register_heuristic(cls: type[Heuristic]) -> type[Heuristic]:
    """Make ``cls`` available by its ``name`` to :func:`get_heuristic`, the callback and the CLI; returns ``cls``.

    Usable as a class decorator. ``cls`` declares what it needs as class attributes (see :class:`Heuristic`) and its
    ``cost`` for the table of heuristics; a pointwise heuristic needs nothing else: the callback scores, shards and
    selects with it as with the library's own.

    Raises:
        TypeError: if ``cls`` is not a :class:`Heuristic` subclass with a string ``name`` and ``cost``.
        ValueError: if another class is registered under its name.

    Example:
        >>> class Peak(Heuristic):
        ...     name, cost = "peak", "O(N·K·C) after the MC pass"
        ...     def score(self, log_probs):
        ...         return log_probs.exp().amax(dim=(1, 2))
        >>> get_heuristic(register_heuristic(Peak).name)
        Peak()
        >>> del HEURISTICS["peak"]
    """
    if not (isinstance(cls, type) and issubclass(cls, Heuristic)):
        raise TypeError(f"Expected argument `cls` to be a `Heuristic` subclass, but got {cls!r}.")
    for attribute in ("name", "cost"):
        if not isinstance(getattr(cls, attribute, None), str) or not getattr(cls, attribute):
            raise TypeError(
                f"Expected `{cls.__name__}.{attribute}` to be a non-empty string class attribute, but got"
                f" {getattr(cls, attribute, None)!r}."
            )
    if HEURISTICS.get(cls.name, cls) is not cls:
        raise ValueError(
            f"Expected `{cls.__name__}.name` to be a free name, but {cls.name!r} is {HEURISTICS[cls.name].__name__}'s."
        )
    HEURISTICS[cls.name] = cls
    return cls


def available_heuristics() -> list[str]:
    """Registered names, sorted.

    Example:
        >>> available_heuristics()[:3]
        ['badge', 'bald', 'batchbald']
    """
    return sorted(HEURISTICS)


def get_heuristic(name: str, **kwargs: Any) -> Heuristic:
    """Build the heuristic registered as ``name`` (case and ``-``/``_`` insensitive) with ``kwargs``.

    Example:
        >>> get_heuristic("BatchBALD", max_candidates=500)
        BatchBALD(max_candidates=500, num_samples=10000)
        >>> get_heuristic("bal")
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `name` to be a registered heuristic, but got 'bal'. Did you mean 'bald'? ...
    """
    if not isinstance(name, str):
        raise TypeError(f"Expected argument `name` to be a string, but got {type(name)}.")
    key = name.strip().lower().replace("-", "_")
    if key not in HEURISTICS:
        close = difflib.get_close_matches(key, HEURISTICS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Expected argument `name` to be a registered heuristic, but got {name!r}.{hint}"
            f" Available: {', '.join(available_heuristics())}."
        )
    return HEURISTICS[key](**kwargs)
