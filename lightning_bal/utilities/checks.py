"""Argument checks shared by the public API, with messages that name the argument and what was received."""

from __future__ import annotations

from typing import Any

__all__ = ["check_positive_int", "check_non_negative_int"]


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is a positive ``int`` (not a ``bool``), else raise naming ``name``.

    Example:
        >>> check_positive_int("query_size", 10)
        10
        >>> check_positive_int("query_size", 0)
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `query_size` to be a positive integer, but got 0.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"Expected argument `{name}` to be a positive integer, but got {value!r} of type {type(value)}."
        )
    if value <= 0:
        raise ValueError(f"Expected argument `{name}` to be a positive integer, but got {value}.")
    return value


def check_non_negative_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an ``int`` >= 0 (not a ``bool``), else raise naming ``name``.

    Example:
        >>> check_non_negative_int("per_class", 0)
        0
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"Expected argument `{name}` to be a non-negative integer, but got {value!r} of type {type(value)}."
        )
    if value < 0:
        raise ValueError(f"Expected argument `{name}` to be a non-negative integer, but got {value}.")
    return value
