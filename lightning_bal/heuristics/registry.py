"""Look heuristics up by name, for config files and the CLI."""

from __future__ import annotations

import difflib
from typing import Any, TypeVar

from lightning_bal.heuristics.base import Heuristic

__all__ = ["HEURISTICS", "available_heuristics", "get_heuristic", "register_heuristic"]

H = TypeVar("H", bound=type[Heuristic])

# Filled by `register_heuristic` as the heuristics' modules are imported (the package imports every built-in one).
HEURISTICS: dict[str, type[Heuristic]] = {}


def register_heuristic(cls: H) -> H:
    """Class decorator: make a :class:`Heuristic` subclass available by its free ``name`` (it declares a ``cost``).

    See docs/heuristics.md#a-heuristic-of-your-own.

    Examples:
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

    Examples:
        >>> available_heuristics()[:3]
        ['badge', 'bald', 'batchbald']
    """
    return sorted(HEURISTICS)


def get_heuristic(name: str, **kwargs: Any) -> Heuristic:
    """Build the heuristic registered as ``name`` (case and ``-``/``_`` insensitive) with ``kwargs``.

    Examples:
        >>> get_heuristic("BatchBALD", max_candidates=500)
        BatchBALD(max_candidates=500, num_samples=10000)
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
