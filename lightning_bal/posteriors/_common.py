"""What the posteriors share: reading pool batches, stacking samples (the default task's), checking saved entries."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from lightning_bal.mc.engine import finish, input_batches
from lightning_bal.tasks import stack_samples

__all__ = ["finish", "input_batches", "stack_samples", "state_entries", "state_int", "state_tensor"]


def state_entries(owner: str, state: Any, names: tuple[str, ...]) -> dict[str, Any] | None:
    """``names``' entries of a saved ``state``; ``None`` for an empty one (a fresh posterior). Errors name the entry."""
    if not isinstance(state, Mapping):
        raise TypeError(f"Expected the state of `{owner}` to be a mapping (its `state_dict()`), but got {state!r:.80}.")
    if not state:
        return None
    missing = [name for name in names if name not in state]
    if missing:
        raise KeyError(f"Expected state entry `{missing[0]}` in the state of `{owner}`, but it is missing.")
    return {name: state[name] for name in names}


def state_tensor(owner: str, name: str, value: Any, ndim: int) -> Tensor:
    """``value`` if it is a finite floating-point tensor of ``ndim`` dimensions, else an error naming the entry."""
    if not isinstance(value, Tensor) or not value.is_floating_point():
        got = f"dtype {value.dtype}" if isinstance(value, Tensor) else f"{value!r:.80}"
        raise TypeError(f"Expected state entry `{name}` of `{owner}` to be a floating-point tensor, but got {got}.")
    if value.ndim != ndim:
        raise ValueError(
            f"Expected state entry `{name}` of `{owner}` to have {ndim} dimension(s), got shape {tuple(value.shape)}."
        )
    bad = int((~torch.isfinite(value)).sum())
    if bad:
        raise ValueError(
            f"Expected state entry `{name}` of `{owner}` to be finite, but {bad} values are NaN or infinite."
        )
    return value


def state_int(owner: str, name: str, value: Any, minimum: int) -> int:
    """``value`` as an int if it is an integer >= ``minimum`` (not a bool), else an error naming the entry."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(
            f"Expected state entry `{name}` of `{owner}` to be an integer >= {minimum}, but got {value!r}."
        )
    return int(value)
