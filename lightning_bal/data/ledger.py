"""The label ledger: who is labelled (D_L), when, in which order, with which label; no Lightning, no data loading."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from lightning_bal.functional.risk import lure_weights, pure_weights
from lightning_bal.tasks import Task, resolve_task
from lightning_bal.tasks.detection import Detection  # noqa: F401 - registers `task="detection"` for every ledger
from lightning_bal.utilities.checks import as_index_tensor, check_non_negative_int, check_positive_int, describe

__all__ = ["OPTIONAL_STATE_KEYS", "UNLABELLED", "LabelLedger"]

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


class LabelLedger:
    """Every change of labels, validated before it happens: either all of a call takes effect, or none of it.

    State: ``acquired_at[N]`` (``-1`` in the pool D_U, else the step at which the sample joined D_L, ``0`` for the
    initial labels), ``acquisition_order[N]``, ``acquisition_probability[N]``, the current ``step``, annotator labels
    by dataset index, and the pending query. Indices are absolute dataset indices everywhere.

    An annotator label is a number, a tensor of any shape (a multi-hot vector, a class map) or (a task with structured
    labels, such as detection's boxes) a dict of tensors; the state keeps tensors and dicts field by field, rows of all
    labels concatenated (see :meth:`state_dict`).

    Args:
        size: number of samples N.
        task: a task's name (``"classification"``, ``"multilabel"``, ``"per_position"``, ``"regression"``,
            ``"detection"``), ``None`` or a :class:`~lightning_bal.tasks.Task`, whose ``check_label`` decides what an
            annotator label must be.
        num_classes: the number of classes of a classification task (labels are checked against it when known).

    Examples:
        >>> ledger = LabelLedger(6, task="classification", num_classes=3)
        >>> ledger.label([0, 4], labels=[2, 1])
        >>> ledger.acquire([5])
        1
        >>> ledger.labelled_indices.tolist(), ledger.acquired_at.tolist()
        ([0, 4, 5], [0, -1, -1, -1, 0, 1])
    """

    def __init__(self, size: int, task: Task | str | None = None, num_classes: int | None = None) -> None:
        check_non_negative_int("size", size)
        self.task_type = resolve_task(task)
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
            if self.task_type.name == "regression":
                raise ValueError("Expected `num_classes` only for a classification task, but got `task='regression'`.")
        #: The task's name, as the datamodule's state records it.
        self.task = self.task_type.name
        self.num_classes = num_classes
        self.acquired_at = torch.full((size,), UNLABELLED, dtype=torch.long)
        self.acquisition_order = torch.full((size,), UNLABELLED, dtype=torch.long)
        self.acquisition_probability = torch.full((size,), float("nan"), dtype=torch.float64)
        self.step = 0
        self.annotations: dict[int, Any] = {}
        # A plain list, not a tensor: `ddp_spawn` cannot send empty tensors to its processes.
        self.pending_query: list[int] = []

    def __len__(self) -> int:
        return int(self.acquired_at.numel())

    @property
    def labelled_indices(self) -> Tensor:
        """Dataset indices of D_L, ascending."""
        return torch.nonzero(self.acquired_at != UNLABELLED).reshape(-1)

    @property
    def pool_indices(self) -> Tensor:
        """Dataset indices of D_U, ascending."""
        return torch.nonzero(self.acquired_at == UNLABELLED).reshape(-1)

    @property
    def num_labelled(self) -> int:
        """Size of D_L."""
        return int((self.acquired_at != UNLABELLED).sum())

    @property
    def num_pool(self) -> int:
        """Size of D_U."""
        return len(self) - self.num_labelled

    def check_in_range(self, name: str, indices: Tensor) -> None:
        """Raise unless every index lies in ``[0, N)`` and none repeats."""
        out_of_range = indices[(indices < 0) | (indices >= len(self))]
        if out_of_range.numel():
            raise ValueError(
                f"Expected argument `{name}` to hold dataset indices in [0, {len(self)}),"
                f" but got {describe(out_of_range)}."
            )
        unique, counts = torch.unique(indices, return_counts=True)
        if (counts > 1).any():
            raise ValueError(
                f"Expected argument `{name}` to hold distinct indices,"
                f" but got duplicates {describe(unique[counts > 1])}."
            )

    def check_pool_members(self, name: str, indices: Tensor) -> None:
        """Raise unless every index is a distinct, in-range index of the pool."""
        self.check_in_range(name, indices)
        already = indices[self.acquired_at[indices] != UNLABELLED]
        if already.numel():
            raise ValueError(
                f"Expected argument `{name}` to hold pool indices, but {describe(already)} are already labelled."
            )

    def check_labels(self, labels: Any, expected: int) -> list[Any]:
        """Annotator labels in the task's canonical form, one per index (see the class docstring)."""
        if isinstance(labels, (str, bytes, Mapping)) or not hasattr(labels, "__len__"):
            raise TypeError(f"Expected argument `labels` to be a sequence of numbers, but got {type(labels).__name__}.")
        values = labels.reshape(-1).tolist() if isinstance(labels, (Tensor, np.ndarray)) else list(labels)
        if len(values) != expected:
            raise ValueError(
                f"Expected argument `labels` to have one label per index ({expected}), but got {len(values)}."
            )
        return [self.check_label(value) for value in values]

    def check_label(self, value: Any) -> Any:
        """One annotator label in the task's canonical form (see :meth:`Task.check_label`)."""
        label = self.task_type.check_label(value, self.num_classes)
        fields = label if isinstance(label, dict) else {}
        reserved = sorted(str(field) for field in fields if str(field).startswith("@"))
        if reserved:
            raise ValueError(
                f"Expected argument `labels` to hold dicts whose fields do not start with '@' (the state keeps tensor"
                f" labels under such names), but got fields {reserved}."
            )
        return label

    @staticmethod
    def check_probabilities(probabilities: Any, expected: int) -> Tensor:
        """Drawing probabilities in ``(0, 1]``, one per index, as float64."""
        try:
            if isinstance(probabilities, (str, bytes)):
                raise TypeError(type(probabilities).__name__)
            values = torch.as_tensor(probabilities, dtype=torch.float64).reshape(-1)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"Expected argument `probabilities` to hold numbers, but got {probabilities!r}.") from err
        if values.numel() != expected:
            raise ValueError(
                f"Expected argument `probabilities` to have one value per index ({expected}), but got {values.numel()}."
            )
        if not bool(((values > 0) & (values <= 1)).all()):
            raise ValueError(f"Expected argument `probabilities` to lie in (0, 1], but got {values.tolist()}.")
        return values

    def label(self, indices: Any, labels: Any = None, probabilities: Any = None) -> None:
        """Move ``indices`` from D_U to D_L at the current step, optionally with an annotator's ``labels``.

        ``probabilities``, when the indices were drawn at random in the given order, holds each one's drawing
        probability given the earlier draws, over the whole pool: :meth:`risk_weights` needs them.
        """
        self._record(*self._checked(indices, labels, probabilities))

    def acquire(self, indices: Any, labels: Any = None, probabilities: Any = None) -> int:
        """Start the next active learning step and label ``indices`` at it (see :meth:`label`); returns the step."""
        checked = self._checked(indices, labels, probabilities)
        self.step += 1
        self._record(*checked)
        return self.step

    def _checked(self, indices: Any, labels: Any, probabilities: Any) -> tuple[Tensor, list[Any] | None, Tensor | None]:
        tensor = as_index_tensor("indices", indices)
        self.check_pool_members("indices", tensor)
        values = None if labels is None else self.check_labels(labels, tensor.numel())
        drawn = None if probabilities is None else self.check_probabilities(probabilities, tensor.numel())
        return tensor, values, drawn

    def _record(self, indices: Tensor, values: list[Any] | None, drawn: Tensor | None) -> None:
        # Everything is validated by the caller: from here on nothing can fail half-way.
        self.acquisition_order[indices] = (
            int(self.acquisition_order.max().clamp_min(-1)) + 1 + torch.arange(indices.numel())
        )
        if drawn is not None:
            self.acquisition_probability[indices] = drawn
        self.acquired_at[indices] = self.step
        if values is not None:
            self.annotations.update(zip(indices.tolist(), values, strict=True))
        if self.pending_query:
            answered = set(indices.tolist())
            self.pending_query = [i for i in self.pending_query if i not in answered]

    def relabel(self, indices: Any, labels: Any) -> None:
        """Correct the labels of labelled ``indices`` (an annotator's mistake); their step and order are kept."""
        tensor = self._labelled_members(indices, ": label them with `label`")
        values = self.check_labels(labels, tensor.numel())
        self.check_shapes_kept(tensor.tolist(), values)
        self.annotations.update(zip(tensor.tolist(), values, strict=True))

    def check_shapes_kept(self, indices: list[int], values: list[Any]) -> None:
        """Raise unless each tensor label of ``values`` has the shape of the tensor label its index holds, if any."""
        for index, value in zip(indices, values, strict=True):
            old = self.annotations.get(index)
            # An item's size does not change: a class map of another shape is an answer for another item.
            if isinstance(old, Tensor) and isinstance(value, Tensor) and old.shape != value.shape:
                raise ValueError(
                    f"Expected argument `labels` to hold a label of shape {list(old.shape)} for index {index} (the"
                    f" shape of its label), but got {list(value.shape)}."
                )

    def unlabel(self, indices: Any) -> None:
        """Return labelled ``indices`` to the pool, forgetting their labels, step, order and drawing probability."""
        tensor = self._labelled_members(indices, ".")
        self.acquired_at[tensor] = UNLABELLED
        self.acquisition_order[tensor] = UNLABELLED
        self.acquisition_probability[tensor] = float("nan")
        for index in tensor.tolist():
            self.annotations.pop(index, None)

    def _labelled_members(self, indices: Any, hint: str) -> Tensor:
        tensor = as_index_tensor("indices", indices)
        self.check_in_range("indices", tensor)
        pool = tensor[self.acquired_at[tensor] == UNLABELLED]
        if pool.numel():
            raise ValueError(
                f"Expected argument `indices` to hold labelled indices, but {describe(pool)} are in the pool{hint}"
            )
        return tensor

    def label_randomly(self, n: int, generator: torch.Generator) -> Tensor:
        """Label ``n`` pool samples drawn uniformly at random (their drawing probabilities are recorded)."""
        check_positive_int("n", n)
        _check_generator(generator)
        pool = self.pool_indices
        if n > pool.numel():
            raise ValueError(f"Expected argument `n` to be at most the pool size {pool.numel()}, but got {n}.")
        chosen = pool[torch.randperm(pool.numel(), generator=generator)[:n]]
        self.label(chosen, probabilities=1.0 / (pool.numel() - torch.arange(n, dtype=torch.float64)))
        return chosen

    def label_balanced(self, per_class: int, targets: Tensor, generator: torch.Generator) -> Tensor:
        """Label ``per_class`` random pool samples of every class of ``targets`` (``[N]`` integer classes)."""
        check_positive_int("per_class", per_class)
        _check_generator(generator)
        if not isinstance(targets, Tensor):
            raise TypeError(f"Expected argument `targets` to be a tensor, but got {type(targets).__name__}.")
        if targets.shape != (len(self),):
            raise ValueError(
                f"Expected argument `targets` to be a tensor of shape [{len(self)}], but got {tuple(targets.shape)}."
            )
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(f"Expected argument `targets` to hold integer classes, but got dtype {targets.dtype}.")
        pool = self.pool_indices
        pool_targets = targets[pool]
        chosen = []
        for cls in torch.unique(targets).tolist():
            members = pool[pool_targets == cls]
            if members.numel() < per_class:
                raise ValueError(
                    f"Expected argument `per_class` to be at most the {members.numel()} pool samples of class {cls},"
                    f" but got {per_class}."
                )
            chosen.append(members[torch.randperm(members.numel(), generator=generator)[:per_class]])
        indices = torch.cat(chosen)
        self.label(indices)
        return indices

    def query(self, indices: Any, *, new_step: bool = False) -> None:
        """Record ``indices`` as the pending query (they stay in the pool); ``new_step`` opens the next step."""
        tensor = as_index_tensor("indices", indices)
        self.check_pool_members("indices", tensor)
        self.pending_query = tensor.tolist()
        self.step += int(new_step)

    def answer(self, indices: Any, labels: Any) -> Tensor:
        """Label answered rows of the pending query with the annotator's ``labels``; the rest stay pending."""
        tensor = as_index_tensor("indices", indices)
        pending = set(self.pending_query)
        stray = [i for i in tensor.tolist() if i not in pending]
        if stray:
            raise ValueError(
                f"Expected answers for the pending query only, but got rows for {describe(stray)}, which were not"
                f" queried (pending: {describe(self.pending_query)})."
            )
        self.label(tensor, labels)
        return tensor

    def risk_weights(self, estimator: Literal["lure", "pure"] = "lure") -> Tensor:
        """Importance weights of D_L (float64 ``[N]``, ``nan`` in the pool) for an unbiased risk estimate."""
        if estimator not in ("lure", "pure"):
            raise ValueError(f"Expected argument `estimator` to be 'lure' or 'pure', but got {estimator!r}.")
        labelled = self.labelled_indices
        in_order = labelled[torch.argsort(self.acquisition_order[labelled])]
        probabilities = self.acquisition_probability[in_order]
        missing = in_order[probabilities.isnan()]
        if missing.numel():
            raise ValueError(
                f"Expected every labelled sample to have a recorded drawing probability, but {describe(missing)}"
                " have none: only random draws (`label_randomly`, stochastic heuristics over the whole pool) can be"
                " re-weighted."
            )
        compute = lure_weights if estimator == "lure" else pure_weights
        weights = torch.full((len(self),), float("nan"), dtype=torch.float64)
        weights[in_order] = compute(probabilities, len(self))
        return weights

    def state_dict(self) -> dict[str, Any]:
        """Tensors and primitives only, so a checkpoint holding it loads with ``torch.load(weights_only=True)``.

        ``annotation_values`` holds each annotated index's number, NaN for a structured label (a dict of tensors)
        or a tensor label: those are kept, in the order of ``annotation_indices``, as ``annotation_fields`` (each
        field's tensors of all of them concatenated along dim 0) and ``annotation_field_rows`` (each field's rows per
        label, ``-1`` where a label has no such field). A tensor label is kept as the fields ``@tensor`` (its values,
        flattened) and ``@shape``. ``task_options`` (when the task has any) are the task's :meth:`Task.options`.
        """
        annotated = sorted(self.annotations)
        values = [self.annotations[i] for i in annotated]
        structured = [_as_fields(value) for value in values if isinstance(value, (Mapping, Tensor))]
        state = {
            "acquired_at": self.acquired_at.clone(),
            "acquisition_order": self.acquisition_order.clone(),
            "acquisition_probability": self.acquisition_probability.clone(),
            "step": self.step,
            "annotation_indices": torch.tensor(annotated, dtype=torch.long),
            "annotation_values": torch.tensor(
                [math.nan if isinstance(value, (Mapping, Tensor)) else float(value) for value in values],
                dtype=torch.float64,
            ),
            "pending_query": torch.tensor(self.pending_query, dtype=torch.long),
        }
        if self.task_type.options():
            state["task_options"] = dict(self.task_type.options())
        if structured:
            fields = sorted({field for label in structured for field in label})
            state["annotation_fields"] = {
                field: torch.cat(
                    [
                        torch.as_tensor(label[field]).reshape(-1, *_trailing(label[field]))
                        for label in structured
                        if field in label
                    ]
                )
                for field in fields
            }
            # -1: the label has no such field (an optional one, e.g. a detection label's `image_size`).
            state["annotation_field_rows"] = {
                field: torch.tensor([_rows(label[field]) if field in label else -1 for label in structured])
                for field in fields
            }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Validate every entry (all that :meth:`state_dict` writes are required), then replace the state."""
        # The validated state's fields are the ledger's attributes; all are checked before the first is replaced.
        for name, value in _validated_state(self, state_dict)._asdict().items():
            setattr(self, name, value)


def _check_generator(generator: Any) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"Expected argument `generator` to be a torch.Generator, but got {generator!r}.")


class _LedgerState(NamedTuple):
    """A validated ledger state, in the ledger's own types (fresh tensors, plain numbers and lists)."""

    acquired_at: Tensor
    acquisition_order: Tensor
    acquisition_probability: Tensor
    step: int
    annotations: dict[int, Any]
    pending_query: list[int]


def _validated_state(ledger: LabelLedger, state: Any) -> _LedgerState:
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


def _validated_annotations(ledger: LabelLedger, state: dict[str, Any], labelled: Tensor) -> dict[int, Any]:
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


def _as_fields(label: Mapping[str, Any] | Tensor) -> Mapping[str, Any]:
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


def _trailing(value: Any) -> tuple[int, ...]:
    shape = tuple(torch.as_tensor(value).shape)
    return shape[1:] if len(shape) > 1 else ()


def _rows(value: Any) -> int:
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
