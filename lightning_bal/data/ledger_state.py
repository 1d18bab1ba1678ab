"""The label ledger's state dict: its entries, the encoding of tensor and structured labels, and its validation."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from lightning_bal.utilities.checks import as_index_tensor, describe

__all__ = ["OPTIONAL_STATE_KEYS", "UNLABELLED"]

UNLABELLED = -1
# The fields a tensor label is kept under among the structured labels' (no dict label may have them).
_TENSOR, _SHAPE = "@tensor", "@shape"
_STATE_KEYS = (
    "acquired_at",
    "acquisition_order",
    "acquisition_probability",
    "step",
    "annotation_indices",
    "annotation_values",
    "pending_query",
)
#: Entries :meth:`LabelLedger.state_dict` writes only when there is something to keep in them.
OPTIONAL_STATE_KEYS = ("annotation_fields", "annotation_field_rows", "task_options")


class _Ledger(Protocol):
    """What validating a state needs of the ledger it is for (the ledger imports this module, not the reverse)."""

    def __len__(self) -> int: ...

    def check_in_range(self, name: str, indices: Tensor) -> None: ...

    def check_label(self, value: Any) -> Any: ...


class _LedgerState(NamedTuple):
    """A validated ledger state, in the ledger's own types (fresh tensors, plain numbers and lists)."""

    acquired_at: Tensor
    acquisition_order: Tensor
    acquisition_probability: Tensor
    step: int
    annotations: dict[int, Any]
    pending_query: list[int]


def validated_state(ledger: _Ledger, state: Any) -> _LedgerState:
    """The ledger's state from a state dict, every entry validated for ``ledger`` (its size and task)."""
    if not isinstance(state, dict):
        raise TypeError(f"Expected argument `state_dict` to be a dict, but got {type(state).__name__}.")
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        raise KeyError(f"Expected the label state to hold {missing}, but it has only {sorted(state)}.")
    size = len(ledger)
    acquired_at = _int_vector(state, "acquired_at", size)
    raw_step = state["step"]
    if isinstance(raw_step, bool) or not isinstance(raw_step, numbers.Integral) or raw_step < 0:
        raise ValueError(f"Expected `step` to be a non-negative integer, but got {raw_step!r}.")
    step = int(raw_step)
    bad = acquired_at[(acquired_at < UNLABELLED) | (acquired_at > step)]
    if bad.numel():
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
    return _LedgerState(
        acquired_at=acquired_at.clone(),
        acquisition_order=order.clone(),
        acquisition_probability=probability.to(torch.float64).clone(),
        step=step,
        annotations=annotations,
        pending_query=pending.tolist(),
    )


def _validated_annotations(ledger: _Ledger, state: dict[str, Any], labelled: Tensor) -> dict[int, Any]:
    indices = as_index_tensor("annotation_indices", state["annotation_indices"])
    values = state["annotation_values"]
    if not isinstance(values, Tensor) or values.numel() != indices.numel():
        raise ValueError("Expected `annotation_indices` and `annotation_values` of one length.")
    ledger.check_in_range("annotation_indices", indices)
    if not bool(labelled[indices].all()):
        raise ValueError("Expected `annotation_indices` to hold labelled indices, but some are in the pool.")
    values = values.reshape(-1).tolist()
    saved = _structured_labels(state, sum(math.isnan(value) for value in values))
    structured = iter([_from_fields(label, number) for number, label in enumerate(saved)])
    annotations: dict[int, Any] = {}
    # The task's `check_label` gives each saved value back its canonical form (an integer class stays an int).
    for index, value in zip(indices.tolist(), values, strict=True):
        try:
            annotations[index] = ledger.check_label(next(structured) if math.isnan(value) else value)
        except (TypeError, KeyError, ValueError) as err:
            raise ValueError(f"Expected `annotation_values` valid for the task: {err}") from err
    return annotations


def as_fields(label: Mapping[str, Any] | Tensor) -> Mapping[str, Any]:
    """A structured label as it is; a tensor label as its flattened values and its shape (any shape fits a row)."""
    if isinstance(label, Tensor):
        return {_TENSOR: label.reshape(-1), _SHAPE: torch.tensor(label.shape, dtype=torch.long)}
    return label


def _from_fields(label: dict[str, Tensor], number: int) -> dict[str, Tensor] | Tensor:
    """The structured label ``number`` as saved; a tensor label (fields ``@tensor`` and ``@shape``) reshaped."""
    if _TENSOR not in label and _SHAPE not in label:
        return label
    if set(label) != {_TENSOR, _SHAPE}:
        raise ValueError(
            f"Expected structured label {number} of `annotation_fields` to hold both `{_TENSOR}` and `{_SHAPE}` (a"
            f" tensor label) and nothing else, but it holds {sorted(label)}."
        )
    values, shape = label[_TENSOR], label[_SHAPE]
    if shape.dim() != 1 or shape.is_floating_point() or shape.is_complex() or bool((shape < 0).any()):
        raise ValueError(
            f"Expected `annotation_fields['{_SHAPE}']` to hold non-negative integer sizes, but label {number} has"
            f" {shape.tolist()}."
        )
    if math.prod(shape.tolist()) != values.numel():
        raise ValueError(
            f"Expected `annotation_fields['{_TENSOR}']` to hold {math.prod(shape.tolist())} values for label {number}"
            f" (its `{_SHAPE}` {shape.tolist()}), but got {values.numel()}."
        )
    return values.reshape(shape.tolist())


def trailing_shape(value: Any) -> tuple[int, ...]:
    shape = tuple(torch.as_tensor(value).shape)
    return shape[1:] if len(shape) > 1 else ()


def row_count(value: Any) -> int:
    tensor = torch.as_tensor(value)
    return int(tensor.shape[0]) if tensor.ndim > 1 else int(tensor.numel())


def _structured_labels(state: dict[str, Any], expected: int) -> list[dict[str, Tensor]]:
    """The ``expected`` structured labels kept as ``annotation_fields`` / ``annotation_field_rows``, split per label."""
    fields, rows = state.get("annotation_fields", {}), state.get("annotation_field_rows", {})
    if not isinstance(fields, dict) or not isinstance(rows, dict) or sorted(fields) != sorted(rows):
        raise ValueError("Expected `annotation_fields` and `annotation_field_rows` to be dicts of the same fields.")
    if expected and not fields:
        raise ValueError(
            f"Expected `annotation_values` to hold finite numbers, or NaN for a structured label kept in"
            f" `annotation_fields`, but got {expected} NaN and no `annotation_fields`."
        )
    labels: list[dict[str, Tensor]] = [{} for _ in range(expected)]
    for field in sorted(fields):
        counts, values = rows[field], fields[field]
        if not isinstance(counts, Tensor) or counts.shape != (expected,) or counts.is_floating_point():
            raise ValueError(
                f"Expected `annotation_field_rows['{field}']` to hold {expected} row counts (one per structured label),"
                f" but got {counts!r}."
            )
        if not isinstance(values, Tensor) or bool((counts < -1).any()) or values.ndim == 0:
            raise ValueError(f"Expected `annotation_fields['{field}']` to be a tensor of rows, but got {values!r}.")
        present = counts >= 0
        if int(counts[present].sum()) != values.shape[0]:
            raise ValueError(
                f"Expected `annotation_fields['{field}']` to hold {int(counts[present].sum())} rows (the sum of"
                f" `annotation_field_rows['{field}']`), but got {values.shape[0]}."
            )
        parts = iter(torch.split(values, counts[present].tolist()))
        for label, has in zip(labels, present.tolist(), strict=True):
            if has:
                label[field] = next(parts).clone()
    return labels


def _int_vector(state: dict[str, Any], key: str, size: int) -> Tensor:
    value = state[key]
    if not isinstance(value, Tensor) or value.shape != (size,):
        got = f"size {value.numel()}, shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"Expected a state dict for a dataset of {size} samples, but got `{key}` of {got}.")
    if value.is_floating_point() or value.dtype == torch.bool or value.is_complex():
        raise ValueError(f"Expected `{key}` to be an integer tensor, but got dtype {value.dtype}.")
    return value.long()
