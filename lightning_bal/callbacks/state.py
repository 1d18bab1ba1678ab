"""Checks of the callback's checkpointed state: every entry validated before any is loaded, errors naming the entry."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["validated_callback_state", "validated_convergence_state"]

# Written by every `state_dict`, whatever the configuration. Those of `Convergence` are not: a run resumed with a
# `Convergence` it did not have before starts tracking afresh.
_REQUIRED = (
    "seed",
    "steps_done",
    "last_selection",
    "last_step_epoch",
    "trained_epoch",
    "pending_step",
    "initial_weights",
    "history",
    "val_metrics",
    "posterior",
    "stopping",
    "annotator",
)


def _integer(state: dict[str, Any], key: str, minimum: int) -> int:
    value = state[key]
    if isinstance(value, (bool, float)) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
        raise ValueError(f"Expected `{key}` to be {kind}, but got {value!r}.")
    return int(value)


def _mapping(state: dict[str, Any], key: str, of_tensors: bool = False) -> dict[str, Any]:
    value = state.get(key)
    if value is None:
        return {}
    kind = "a dict of tensors" if of_tensors else "a dict"
    if not isinstance(value, dict) or (of_tensors and not all(isinstance(v, Tensor) for v in value.values())):
        raise TypeError(f"Expected `{key}` to be {kind}, but got {type(value).__name__}: {value!r:.80}.")
    return dict(value)


def validated_callback_state(state: Any) -> dict[str, Any]:
    """The callback's own entries of ``state``, checked: raises naming the first bad entry, before anything loads."""
    if not isinstance(state, dict):
        raise TypeError(f"Expected argument `state_dict` to be a dict, but got {type(state).__name__}.")
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise KeyError(f"Expected the callback's state to hold {missing}, but it has only {sorted(state)}.")
    seed = state["seed"]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"Expected `seed` to be an integer, but got {seed!r}.")
    selection = state["last_selection"]
    if not isinstance(selection, Tensor) or selection.is_floating_point() or selection.dtype == torch.bool:
        got = f"dtype {selection.dtype}" if isinstance(selection, Tensor) else type(selection).__name__
        raise TypeError(f"Expected `last_selection` to be an integer tensor, but got {got}.")
    if selection.ndim != 1:
        raise ValueError(f"Expected `last_selection` to have shape [q], but got {tuple(selection.shape)}.")
    pending = state["pending_step"]
    if not isinstance(pending, bool):
        raise TypeError(f"Expected `pending_step` to be a bool, but got {pending!r}.")
    history = state["history"]
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise TypeError(f"Expected `history` to be a list of dicts, but got {history!r:.80}.")
    posterior = state["posterior"]
    if not isinstance(posterior, dict):
        raise TypeError(f"Expected `posterior` to be a dict (the posterior's state), but got {posterior!r:.80}.")
    stopping = state["stopping"]
    if not isinstance(stopping, list) or not all(isinstance(entry, dict) for entry in stopping):
        raise TypeError(f"Expected `stopping` to be a list of dicts (one per criterion), but got {stopping!r:.80}.")
    annotator = state["annotator"]
    if not isinstance(annotator, dict):
        raise TypeError(f"Expected `annotator` to be a dict (the annotator's state), but got {annotator!r:.80}.")
    return {
        "seed": int(seed),
        "steps_done": _integer(state, "steps_done", 0),
        "last_selection": selection.clone() if selection.numel() else None,
        "last_step_epoch": _integer(state, "last_step_epoch", -1),
        "trained_epoch": _integer(state, "trained_epoch", -1),
        "pending_step": pending,
        "initial_weights": _mapping(state, "initial_weights", of_tensors=True) or None,
        "history": [dict(row) for row in history],
        "val_metrics": _mapping(state, "val_metrics") or None,
        "posterior": posterior,
        "stopping": [dict(entry) for entry in stopping],
        "annotator": dict(annotator),
    }


def validated_convergence_state(state: dict[str, Any]) -> dict[str, Any]:
    """The entries of a :class:`~lightning_bal.callbacks.Convergence` state, checked (all optional)."""
    if not isinstance(state, Mapping):
        raise TypeError(f"Expected the Convergence state to be a mapping, but got {type(state).__name__}.")
    best = state.get("best_score")
    if best is not None and (
        isinstance(best, bool) or not isinstance(best, numbers.Real) or not math.isfinite(float(best))
    ):
        raise ValueError(f"Expected `best_score` to be a finite number or None, but got {best!r}.")
    return {
        "best_score": None if best is None else float(best),
        "wait": _integer({"wait": state.get("wait", 0)}, "wait", 0),
        "best_weights": _mapping(state, "best_weights", of_tensors=True) or None,
        "best_val_metrics": _mapping(state, "best_val_metrics") or None,
    }
