"""The label ledger: who is labelled (D_L), when, in which order, with which label; no Lightning, no data loading."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from lightning_bal.data.ledger_state import UNLABELLED, as_fields, row_count, trailing_shape, validated_state
from lightning_bal.functional.risk import lure_weights, pure_weights
from lightning_bal.tasks import Task, resolve_task
from lightning_bal.tasks.detection import Detection  # noqa: F401 - registers `task="detection"` for every ledger
from lightning_bal.utilities.checks import as_index_tensor, check_non_negative_int, check_positive_int, describe

__all__ = ["LabelLedger"]


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
        structured = [as_fields(value) for value in values if isinstance(value, (Mapping, Tensor))]
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
                        torch.as_tensor(label[field]).reshape(-1, *trailing_shape(label[field]))
                        for label in structured
                        if field in label
                    ]
                )
                for field in fields
            }
            # -1: the label has no such field (an optional one, e.g. a detection label's `image_size`).
            state["annotation_field_rows"] = {
                field: torch.tensor([row_count(label[field]) if field in label else -1 for label in structured])
                for field in fields
            }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Validate every entry (all that :meth:`state_dict` writes are required), then replace the state."""
        # The validated state's fields are the ledger's attributes; all are checked before the first is replaced.
        for name, value in validated_state(self, state_dict)._asdict().items():
            setattr(self, name, value)


def _check_generator(generator: Any) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"Expected argument `generator` to be a torch.Generator, but got {generator!r}.")
