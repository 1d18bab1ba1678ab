"""The datamodule's labelling API: D_L and D_U read from its ledger, and every change forwarded to it."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_bal.data.ids import ItemId, id_lookup
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.data.queries import read_answers, write_queries
from lightning_bal.data.targets import labelled_classes, resolve_targets
from lightning_bal.data.views import target_of
from lightning_bal.utilities.checks import as_index_tensor

__all__ = ["Indices", "LabelOperations"]

Indices = int | Sequence[int] | Tensor | np.ndarray


class LabelOperations:
    """D_L and D_U as read from the :attr:`ledger`, and every way to change them (validated by the ledger)."""

    ledger: LabelLedger
    generator: torch.Generator
    train_dataset: Dataset
    _targets: Tensor | None
    _ids: list[ItemId] | None
    _id_lookup: dict[str, int] | None

    # ------------------------------------------------------------------ construction helpers
    def _require_targets(self, targets: Any) -> Tensor:
        resolved = resolve_targets(targets, self.train_dataset, len(self)) if targets is not None else None
        resolved = resolved if resolved is not None else self._targets
        if resolved is None:
            raise ValueError(
                "Expected argument `targets` (or a `targets` attribute on the train dataset) for balanced labelling,"
                " but got None."
            )
        return resolved

    # ------------------------------------------------------------------ the label ledger's state, read-only here
    def __len__(self) -> int:
        return len(self.ledger)

    @property
    def acquired_at(self) -> Tensor:
        """``[N]``: ``-1`` in the pool, else the step at which the sample was labelled (see :class:`LabelLedger`)."""
        return self.ledger.acquired_at

    @property
    def acquisition_order(self) -> Tensor:
        """``[N]``: the position of each labelled sample in labelling order, ``-1`` in the pool."""
        return self.ledger.acquisition_order

    @property
    def acquisition_probability(self) -> Tensor:
        """``[N]`` float64: each sample's recorded drawing probability, ``nan`` where none was recorded."""
        return self.ledger.acquisition_probability

    @property
    def step(self) -> int:
        """The current active learning step: new labels are recorded at this step (0 = initial labels)."""
        return self.ledger.step

    @property
    def labelled_indices(self) -> Tensor:
        """Dataset indices of D_L, ascending."""
        return self.ledger.labelled_indices

    @property
    def pool_indices(self) -> Tensor:
        """Dataset indices of D_U, ascending."""
        return self.ledger.pool_indices

    @property
    def num_labelled(self) -> int:
        """Size of D_L."""
        return self.ledger.num_labelled

    @property
    def num_pool(self) -> int:
        """Size of D_U."""
        return self.ledger.num_pool

    @property
    def annotations(self) -> dict[int, int | float]:
        """Labels given by an annotator, by dataset index; they take precedence over the dataset's own targets."""
        return dict(self.ledger.annotations)

    @property
    def pending_query(self) -> Tensor:
        """Dataset indices queried for a human annotator and not yet answered."""
        return torch.tensor(self.ledger.pending_query, dtype=torch.long)

    @property
    def ids(self) -> list[ItemId]:
        """Each training item's stable id (its index unless ``ids`` were given)."""
        return list(range(len(self))) if self._ids is None else list(self._ids)

    def indices_of(self, ids: Sequence[ItemId]) -> Tensor:
        """Dataset indices of items named by id (compared as text, as files carry them); an unknown id is an error."""
        # A string is a sequence too: its characters would be looked up as ids.
        if isinstance(ids, (str, bytes)) or not isinstance(ids, (Sequence, Tensor, np.ndarray)):
            raise TypeError(f"Expected argument `ids` to be a sequence of ids, but got {type(ids).__name__}.")
        if isinstance(ids, (Tensor, np.ndarray)):
            ids = ids.tolist()
        if self._id_lookup is None:
            self._id_lookup = id_lookup(self.ids)
        unknown = [item for item in ids if str(item) not in self._id_lookup]
        if unknown:
            raise ValueError(
                f"Expected ids of items of the training dataset, but got unknown ids {unknown[:5]}"
                f"{' ...' if len(unknown) > 5 else ''} (answers from another project or dataset?)."
            )
        return torch.tensor([self._id_lookup[str(item)] for item in ids], dtype=torch.long)

    def labelled_targets(self) -> Tensor | None:
        """Class labels of D_L in ``labelled_indices`` order (annotator labels first); ``None`` if not classes."""
        return labelled_classes(self.labelled_indices, self.ledger.annotations, self._targets, self.train_dataset)

    def labelled_class_counts(self) -> Tensor | None:
        """Labels per class in D_L, one count for each class of the training targets; ``None`` if not classes.

        A class of the dataset with no label yet counts 0, so the rarest classes of a long-tailed pool show from the
        first step rather than from their first label. Without known targets, the classes run up to the largest label.

        Example:
            >>> from torch.utils.data import TensorDataset
            >>> from lightning_bal import ActiveDataModule
            >>> classes = torch.arange(6) % 3
            >>> dm = ActiveDataModule(TensorDataset(torch.randn(6, 2), classes), targets=classes)
            >>> dm.label([0, 3])
            >>> dm.labelled_class_counts()
            tensor([2, 0, 0])
        """
        classes = self.labelled_targets()
        if classes is None:
            return None
        known = 0 if self._targets is None or not self._targets.numel() else int(self._targets.max()) + 1
        return torch.bincount(classes, minlength=known)

    # ------------------------------------------------------------------ labelling: validated by the ledger
    def label(self, dataset_indices: Indices, labels: Any = None, probabilities: Any = None) -> None:
        """Move ``dataset_indices`` from D_U to D_L at the current step: all of them or, on bad input, none."""
        self._check_target_shapes(dataset_indices, labels)
        self.ledger.label(dataset_indices, labels, probabilities)

    def acquire(self, dataset_indices: Indices, labels: Any = None, probabilities: Any = None) -> int:
        """Start the next active learning step and label ``dataset_indices`` at it (on bad input, neither changes)."""
        self._check_target_shapes(dataset_indices, labels)
        return self.ledger.acquire(dataset_indices, labels, probabilities)

    def relabel(self, dataset_indices: Indices, labels: Any) -> None:
        """Correct an annotator's labels of labelled ``dataset_indices`` (their step and order are kept)."""
        self._check_target_shapes(dataset_indices, labels)
        self.ledger.relabel(dataset_indices, labels)

    def _check_target_shapes(self, dataset_indices: Indices, labels: Any, what: str = "argument `labels`") -> None:
        """Refuse a tensor label (a mask) whose shape is not that of the item's target in the dataset.

        The labelled view trains on the label in the target's place, where another shape fails only at collation or
        in the loss. Other malformed input is left for the ledger to name.
        """
        if labels is None or isinstance(labels, (str, bytes, Tensor, np.ndarray)) or not hasattr(labels, "__len__"):
            return
        values = list(labels)
        if not any(isinstance(value, Tensor) and value.dim() for value in values):
            return
        indices = as_index_tensor("dataset_indices", dataset_indices).tolist()
        if len(indices) != len(values):
            return
        for index, value in zip(indices, values, strict=True):
            if not isinstance(value, Tensor) or not 0 <= index < len(self):
                continue
            try:
                target = target_of(self.train_dataset[index])
            except (TypeError, KeyError):
                continue  # an item without a target: the label is its only one
            if isinstance(target, Tensor) and target.dim() and target.shape != value.shape:
                raise ValueError(
                    f"Expected {what} to hold a label of shape {list(target.shape)} for index {index} (the shape of"
                    f" its target in the dataset), but got {list(value.shape)}."
                )

    def unlabel(self, dataset_indices: Indices) -> None:
        """Return labelled ``dataset_indices`` to the pool, forgetting their labels (e.g. a label found wrong)."""
        self.ledger.unlabel(dataset_indices)

    def risk_weights(self, estimator: Literal["lure", "pure"] = "lure") -> Tensor:
        """Importance weights of D_L for an unbiased risk estimate: see :meth:`LabelLedger.risk_weights`."""
        return self.ledger.risk_weights(estimator)

    def label_randomly(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Label ``n`` pool samples drawn uniformly at random (their drawing probabilities are recorded)."""
        return self.ledger.label_randomly(n, generator or self.generator)

    def label_balanced(
        self, per_class: int, targets: Sequence[int] | Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Label ``per_class`` random pool samples of every class (the usual balanced initial set)."""
        return self.ledger.label_balanced(per_class, self._require_targets(targets), generator or self.generator)

    # ------------------------------------------------------------------ human annotators
    def query(self, dataset_indices: Indices, new_step: bool = False) -> None:
        """Record ``dataset_indices`` as the pending query for an annotator; ``new_step`` opens the next step for it."""
        self.ledger.query(dataset_indices, new_step=new_step)

    def export_queries(self, path: str | Path, scores: Sequence[float | None] | None = None) -> Path:
        """Write the pending query (id, index, step, ``scores`` in query order, empty label) to ``.json``/``.csv``."""
        pending = self.ledger.pending_query
        if scores is not None:
            scores = _checked_scores(scores, len(pending))
        ids = self.ids
        return write_queries(path, pending, self.step, [ids[i] for i in pending], scores)

    def import_labels(self, path: str | Path) -> Tensor:
        """Label the answered rows of a file written by :meth:`export_queries`, all or none; returns their indices.

        Every row must belong to the pending query and name the current step; unanswered rows stay in the pool.
        """
        answers = read_answers(path)
        self.check_answer_steps(answers.steps, source=str(path))
        return self.ledger.answer(self.indices_of(answers.ids), answers.labels)

    def check_answer_steps(self, steps: set[int], source: str) -> None:
        """Refuse answers to a query of another step than the pending one (a stale or foreign answers file)."""
        if not isinstance(steps, (set, frozenset)):
            raise TypeError(f"Expected `steps` to be a set of step numbers, but got {type(steps).__name__}.")
        stale = sorted(steps - {self.step})
        if stale:
            raise ValueError(
                f"Expected answers to the query of step {self.step}, but {source} answers step(s) {stale}: it is"
                " stale (an older query) or belongs to another run. Export the pending query again."
            )


def _checked_scores(scores: Any, expected: int) -> list[float | None]:
    # JSON has no NaN or infinity, and a file with the wrong number of scores would pair them with the wrong items.
    if isinstance(scores, (str, bytes)) or not isinstance(scores, (Sequence, Tensor, np.ndarray)):
        raise TypeError(f"Expected argument `scores` to be a sequence of numbers or None, but got {scores!r}.")
    values = scores.tolist() if isinstance(scores, (Tensor, np.ndarray)) else list(scores)
    if len(values) != expected:
        raise ValueError(
            f"Expected argument `scores` to hold one score per queried item ({expected}), but got {len(values)}."
        )
    for value in values:
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise TypeError(f"Expected argument `scores` to hold numbers or None, but got {value!r}.")
        if value is not None and not math.isfinite(value):
            raise ValueError(f"Expected argument `scores` to hold finite numbers or None, but got {value!r}.")
    return [None if value is None else float(value) for value in values]
