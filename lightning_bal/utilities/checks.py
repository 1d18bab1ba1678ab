"""Argument checks shared by the public API, with messages that name the argument and what was received."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["as_index_tensor", "check_int_in_range", "check_non_negative_int", "check_positive_int", "describe"]


def _check_int(name: str, value: Any, kind: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"Expected argument `{name}` to be {kind}, but got {value!r} of type {type(value)}.")
    if value < low:
        raise ValueError(f"Expected argument `{name}` to be {kind}, but got {value}.")
    return int(value)


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is a positive integer (numpy's included, not a ``bool``), else raise.

    Example:
        >>> check_positive_int("query_size", np.int64(10))
        10
        >>> check_positive_int("query_size", 0)
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `query_size` to be a positive integer, but got 0.
    """
    return _check_int(name, value, "a positive integer", 1)


def check_non_negative_int(name: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is an integer >= 0 (numpy's included, not a ``bool``), else raise.

    Example:
        >>> check_non_negative_int("per_class", 0)
        0
    """
    return _check_int(name, value, "a non-negative integer", 0)


def check_int_in_range(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer (numpy's included, not a ``bool``) in ``[low, high]``.

    Example:
        >>> check_int_in_range("query_size", np.int64(3), 0, 5)
        3
        >>> check_int_in_range("query_size", 6, 0, 5)
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `query_size` to be an integer in [0, 5], but got 6.
    """
    number = None if isinstance(value, bool) or not isinstance(value, numbers.Integral) else int(value)
    if number is None or number < low or (high is not None and number > high):
        bound = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
        raise ValueError(f"Expected argument `{name}` to be {bound}, but got {value!r}.")
    return number


def as_index_tensor(name: str, value: Any) -> Tensor:
    """Turn an int, a sequence, a numpy array (any strides) or a tensor of indices into a 1-D int64 tensor.

    Example:
        >>> as_index_tensor("indices", np.argsort([3, 1, 2])[::-1]).tolist()
        [0, 2, 1]
        >>> as_index_tensor("indices", []).tolist()
        []
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


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``, else raise a ``TypeError`` naming the argument."""
    if not isinstance(value, bool):
        raise TypeError(f"Expected argument `{name}` to be a bool, but got {value!r}.")
    return value


def check_int_at_least(name: str, value: Any, low: int, kind: str) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``, nor numpy's) >= ``low``, else raise naming ``kind``.

    Example:
        >>> check_int_at_least("rank", 0, 1, "a positive integer")
        Traceback (most recent call last):
        ...
        ValueError: Expected argument `rank` to be a positive integer, but got 0.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"Expected argument `{name}` to be {kind}, but got {value!r}.")
    return value


def check_finite_positive(name: str, value: Any) -> float:
    """Return ``value`` as a ``float`` if it is a finite positive ``int`` or ``float`` (not a ``bool``), else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"Expected argument `{name}` to be a finite positive number, but got {value!r}.")
    return float(value)
