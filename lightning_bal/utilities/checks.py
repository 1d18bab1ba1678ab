"""Argument checks shared by the public API, with messages that name the argument and what was received."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "as_index_tensor",
    "check_argument",
    "check_bool",
    "check_finite_number",
    "check_finite_positive",
    "check_int_in_range",
    "check_non_empty_str",
    "check_non_negative_int",
    "check_one_of",
    "check_positive_int",
    "check_python_int",
    "describe",
    "is_finite",
    "is_int",
    "is_integer_tensor",
]


def _check_int(name: str, value: Any, kind: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Expected argument `{name}` to be {kind}, but got {value!r} of type {type(value)}.")
    if value < low:
        raise ValueError(f"Expected argument `{name}` to be {kind}, but got {value}.")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is a positive integer (numpy's included, not a ``bool``), else raise."""
    return _check_int(name, value, "a positive integer", 1)


def check_non_negative_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is an integer >= 0 (numpy's included, not a ``bool``), else raise."""
    return _check_int(name, value, "a non-negative integer", 0)


def check_int_in_range(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer (numpy's included, not a ``bool``) in ``[low, high]``.

    Examples:
        >>> check_int_in_range("query_size", np.int64(3), 0, 5)
        3
    """
    number = None if isinstance(value, bool) or not isinstance(value, numbers.Integral) else int(value)
    if number is None or number < low or (high is not None and number > high):
        bound = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
        raise ValueError(f"Expected argument `{name}` to be {bound}, but got {value!r}.")
    return number


def as_index_tensor(name: str, value: Any) -> Tensor:
    """Turn an int, a sequence, a numpy array (any strides) or a tensor of indices into a 1-D int64 tensor.

    Examples:
        >>> as_index_tensor("indices", np.argsort([3, 1, 2])[::-1]).tolist()
        [0, 2, 1]
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Expected argument `{name}` to hold integer dataset indices, but got {value!r}.")
    if isinstance(value, numbers.Integral):
        return torch.tensor([int(value)], dtype=torch.long)
    if isinstance(value, np.ndarray):
        # `np.ascontiguousarray`: torch refuses the negative strides of `np.argsort(x)[::-1]`.
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, Tensor):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise TypeError(f"Expected argument `{name}` to hold integer dataset indices, but got {value!r}.")
        items = list(value)
        if not items:
            return torch.zeros(0, dtype=torch.long)
        if any(isinstance(i, (bool, np.bool_)) or not isinstance(i, numbers.Integral) for i in items):
            raise TypeError(f"Expected argument `{name}` to hold integer dataset indices, but got {items!r}.")
        return torch.tensor([int(i) for i in items], dtype=torch.long)
    if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
        raise TypeError(f"Expected argument `{name}` to hold integer dataset indices, but got dtype {value.dtype}.")
    return value.detach().to("cpu", torch.long).reshape(-1)


def describe(indices: Tensor | list[int], limit: int = 5) -> str:
    """The first ``limit`` indices, for error messages."""
    shown = indices[:limit].tolist() if isinstance(indices, Tensor) else list(indices[:limit])
    return f"{shown}{' ...' if len(indices) > limit else ''}"


def check_one_of(name: str, value: Any, choices: Sequence[str]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise a ``ValueError`` that lists them."""
    if value not in choices:
        options = ", ".join(repr(choice) for choice in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"Expected argument `{name}` to be {options}, but got {value!r}.")
    return value


def check_non_empty_str(name: str, value: Any) -> str:
    """Return ``value`` if it is a non-empty string, else raise a ``TypeError``."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"Expected argument `{name}` to be a non-empty string, but got {value!r}.")
    return value


def check_finite_number(name: str, value: Any, low: float | None = None) -> float:
    """Return ``value`` as a ``float`` if it is a finite ``int`` or ``float`` (not a ``bool``), ``>= low`` if given."""
    finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not finite or (low is not None and value < low):
        bound = "a finite number" if low is None else f"a finite number >= {low:g}"
        raise ValueError(f"Expected argument `{name}` to be {bound}, but got {value!r}.")
    return float(value)


def check_python_int(name: str, value: Any, low: int, high: int | None = None, expected: str | None = None) -> int:
    """Return ``value`` if it is a Python ``int`` (not a ``bool``) in ``[low, high]``, else raise a ``ValueError``.

    ``expected`` describes the accepted values in the message; by default, from the bounds.

    Examples:
        >>> check_python_int("k", 0, 1)
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `k` to be a positive integer, but got 0.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        if expected is None and high is not None:
            expected = f"an integer in [{low}, {high}]"
        elif expected is None:
            expected = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
        raise ValueError(f"Expected argument `{name}` to be {expected}, but got {value!r}.")
    return value


def is_integer_tensor(value: Any) -> bool:
    """Whether ``value`` is a tensor of integers or bools (neither floating point nor complex)."""
    return isinstance(value, Tensor) and not (value.is_floating_point() or value.is_complex())


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python ``int`` and not a ``bool`` (``True`` would pass for 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    """Whether ``value`` is a finite ``int`` or ``float`` and not a ``bool``."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check_argument(name: str, value: Any, valid: bool, expected: str, error: type[Exception] = ValueError) -> None:
    """Unless ``valid``, raise ``error``: "Expected argument `name` to be ``expected``, but got ``value!r``."."""
    if not valid:
        raise error(f"Expected argument `{name}` to be {expected}, but got {value!r}.")


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``, else raise a ``TypeError`` naming the argument."""
    if not isinstance(value, bool):
        raise TypeError(f"Expected argument `{name}` to be a bool, but got {value!r}.")
    return value


def check_finite_positive(name: str, value: Any) -> float:
    """Return ``value`` as a ``float`` if it is a finite positive ``int`` or ``float`` (not a ``bool``), else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"Expected argument `{name}` to be a finite positive number, but got {value!r}.")
    return float(value)
