"""Loading a label ledger's state: every entry checked against the ledger (size, task) before anything is replaced."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from lightning_bal.utilities.checks import as_index_tensor, describe

__all__ = ["STATE_KEYS", "UNLABELLED", "LedgerChecks", "LedgerState", "validated_ledger_state"]

UNLABELLED = -1
STATE_KEYS = (
    "acquired_at",
    "acquisition_order",
    "acquisition_probability",
    "step",
    "annotation_indices",
    "annotation_values",
    "pending_query",
)


class LedgerChecks(Protocol):
    """The ledger as this module sees it, so that `ledger.py` imports this module and never the reverse."""

    def __len__(self) -> int: ...

    def check_in_range(self, name: str, indices: Tensor) -> None:
        """Raise unless every index lies in ``[0, N)`` and none repeats."""

    def check_label(self, value: Any) -> int | float:
        """One annotator label as a plain number valid for the task."""


class LedgerState(NamedTuple):
    """A validated ledger state, in the ledger's own types (fresh tensors, plain numbers and lists)."""

    acquired_at: Tensor
    acquisition_order: Tensor
    acquisition_probability: Tensor
    step: int
    annotations: dict[int, int | float]
    pending_query: list[int]


def validated_ledger_state(ledger: LedgerChecks, state: Any) -> LedgerState:
    """The ledger's state from a state dict, every entry validated for ``ledger`` (its size and task)."""
    if not isinstance(state, dict):
        raise TypeError(f"Expected argument `state_dict` to be a dict, but got {type(state).__name__}.")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise KeyError(f"Expected the label state to hold {missing}, but it has only {sorted(state)}.")
    size = len(ledger)
    acquired_at = _int_vector(state, "acquired_at", size)
    raw_step = state["step"]
    if isinstance(raw_step, bool) or not isinstance(raw_step, numbers.Integral) or raw_step < 0:
        raise ValueError(f"Expected `step` to be a non-negative integer, but got {raw_step!r}.")
    step = int(raw_step)
    if bool((acquired_at < UNLABELLED).any()) or bool((acquired_at > step).any()):
        bad = acquired_at[(acquired_at < UNLABELLED) | (acquired_at > step)]
        raise ValueError(
            f"Expected `acquired_at` to hold -1 or a step in [0, {step}] (`step` is {step}), but got"
            f" {describe(bad.unique())}."
        )
    labelled = acquired_at != UNLABELLED
    order = _int_vector(state, "acquisition_order", size)
    if bool((order[~labelled] != UNLABELLED).any()) or bool((order[labelled] < UNLABELLED).any()):
        raise ValueError("Expected `acquisition_order` to be -1 exactly in the pool, but got other values.")
    probability = state["acquisition_probability"]
    if not isinstance(probability, Tensor) or probability.shape != (size,) or not probability.is_floating_point():
        raise ValueError(f"Expected `acquisition_probability` to be a float tensor of shape [{size}].")
    known = probability[~probability.isnan()]
    if bool(((known <= 0) | (known > 1)).any()):
        raise ValueError("Expected `acquisition_probability` to lie in (0, 1] or be NaN.")
    annotations = _validated_annotations(ledger, state, labelled)
    pending = as_index_tensor("pending_query", state["pending_query"])
    ledger.check_in_range("pending_query", pending)
    if bool(labelled[pending].any()):
        raise ValueError("Expected `pending_query` to hold pool indices, but some are labelled.")
    return LedgerState(
        acquired_at=acquired_at.clone(),
        acquisition_order=order.clone(),
        acquisition_probability=probability.to(torch.float64).clone(),
        step=step,
        annotations=annotations,
        pending_query=pending.tolist(),
    )


def _validated_annotations(ledger: LedgerChecks, state: dict[str, Any], labelled: Tensor) -> dict[int, int | float]:
    indices = as_index_tensor("annotation_indices", state["annotation_indices"])
    values = state["annotation_values"]
    if not isinstance(values, Tensor) or values.numel() != indices.numel():
        raise ValueError("Expected `annotation_indices` and `annotation_values` of one length.")
    ledger.check_in_range("annotation_indices", indices)
    if not bool(labelled[indices].all()):
        raise ValueError("Expected `annotation_indices` to hold labelled indices, but some are in the pool.")
    annotations: dict[int, int | float] = {}
    # The task's `check_label` gives each saved float back its canonical form (an integer class stays an int).
    for index, value in zip(indices.tolist(), values.tolist(), strict=True):
        try:
            annotations[index] = ledger.check_label(value)
        except ValueError as err:
            raise ValueError(f"Expected `annotation_values` valid for the task: {err}") from err
    return annotations


def _int_vector(state: dict[str, Any], key: str, size: int) -> Tensor:
    value = state[key]
    if not isinstance(value, Tensor) or value.shape != (size,):
        got = f"size {value.numel()}, shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"Expected a state dict for a dataset of {size} samples, but got `{key}` of {got}.")
    if value.is_floating_point() or value.dtype == torch.bool or value.is_complex():
        raise ValueError(f"Expected `{key}` to be an integer tensor, but got dtype {value.dtype}.")
    return value.long()
