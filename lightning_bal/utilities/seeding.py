"""The one seed derivation of a run: every random stream is a function of the run's seed, a counter and a salt."""

from __future__ import annotations

import numbers
from enum import IntEnum
from typing import Any

__all__ = ["Stream", "check_seed", "derive_seed"]


class Stream(IntEnum):
    """Salts of the independent random streams of a run, so no two uses of one seed draw the same numbers."""

    SHUFFLE = 0
    MASKS = 0x5EED_0001
    SELECTION = 0x5EED_0002
    CALIBRATION = 0x5EED_0003
    TARGETS = 0x5EED_0004
    TEST = 0x5EED_0005


def derive_seed(seed: int, counter: int, stream: Stream) -> int:
    """The seed of ``stream`` at ``counter`` (a step, or an epoch for the shuffle): the same on every rank and resume.

    Examples:
        >>> derive_seed(0, 1, Stream.MASKS) == derive_seed(0, 1, Stream.MASKS) != derive_seed(0, 2, Stream.MASKS)
        True
    """
    return (seed * 1_000_003 + counter * 7_919 + int(stream)) % (2**62)


def check_seed(name: str, seed: Any, optional: bool = True) -> int | None:
    """``seed`` if it is an ``int`` (not a ``bool``), or ``None`` when ``optional``; else an error naming ``name``."""
    if seed is None and optional:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        expected = "an integer or None" if optional else "an integer"
        raise TypeError(f"Expected argument `{name}` to be {expected}, but got {seed!r} of type {type(seed).__name__}.")
    return int(seed)
