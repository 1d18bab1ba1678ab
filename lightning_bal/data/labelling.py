"""The datamodule's labelling API: who is labelled, labelling, annotator queries; each call forwarded to its ledger.

:class:`LabelOperations` is a mixin of :class:`~lightning_bal.ActiveDataModule`: it keeps the module's own file to
datasets and loaders, and gathers here the thin, documented surface over :class:`LabelLedger` that users call.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from lightning_bal.data.ids import ItemId, check_ids, id_lookup, remap_state
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.data.queries import read_answers, write_queries
from lightning_bal.data.targets import labelled_classes, resolve_targets
from lightning_bal.data.views import item_layout, pool_view_of

__all__ = ["Indices", "LabelOperations"]

Indices = int | Sequence[int] | Tensor | np.ndarray


class LabelOperations:
    """D_L and D_U as read from the :attr:`ledger`, and every way to change them (validated by the ledger).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> from lightning_bal import ActiveDataModule
        >>> dm = ActiveDataModule(TensorDataset(torch.zeros(6, 1), torch.arange(6) % 2), seed=0)
        >>> dm.label([0, 1]); dm.acquire([4])
        1
        >>> dm.labelled_indices.tolist(), dm.num_pool, dm.step
        ([0, 1, 4], 3, 1)
    """

    ledger: LabelLedger
    generator: torch.Generator
    train_dataset: Dataset
    pool_dataset: Dataset
    pool_overrides: Any
    collate_fn: Any
    input_fn: Any
    _pool_subset_step: int
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
        """Dataset indices of items named by id (compared as text, as files carry them).

        Raises:
            TypeError: ``ids`` is a string or not a sequence.
            ValueError: an id that names no item of the dataset (nothing else is done).

        Example:
            >>> from torch.utils.data import TensorDataset
            >>> from lightning_bal import ActiveDataModule
            >>> dm = ActiveDataModule(TensorDataset(torch.zeros(3, 1)), ids=["a", "b", "c"], seed=0)
            >>> dm.indices_of(["c", "a"]).tolist()
            [2, 0]
        """
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
        """Class labels of D_L in ``labelled_indices`` order, or ``None`` when they are not integer classes.

        Annotator labels come first, then ``targets`` (or the dataset's ``targets``), else each item's own target.
        """
        return labelled_classes(self.labelled_indices, self.ledger.annotations, self._targets, self.train_dataset)

    # ------------------------------------------------------------------ labelling: validated by the ledger
    def label(self, dataset_indices: Indices, labels: Any = None, probabilities: Any = None) -> None:
        """Move ``dataset_indices`` from D_U to D_L at the current step: see :meth:`LabelLedger.label`.

        Either every index is labelled or, on bad input (an index out of range, repeated or already labelled;
        labels invalid for the task), none is.
        """
        self.ledger.label(dataset_indices, labels, probabilities)

    def acquire(self, dataset_indices: Indices, labels: Any = None, probabilities: Any = None) -> int:
        """Start the next active learning step and label ``dataset_indices`` at it; returns the new step.

        The one way to label at a new step: on bad input neither the step nor the labelled set changes.
        """
        return self.ledger.acquire(dataset_indices, labels, probabilities)

    def relabel(self, dataset_indices: Indices, labels: Any) -> None:
        """Correct an annotator's labels of labelled ``dataset_indices`` (their step and order are kept)."""
        self.ledger.relabel(dataset_indices, labels)

    def unlabel(self, dataset_indices: Indices) -> None:
        """Return labelled ``dataset_indices`` to the pool, forgetting their labels (e.g. a label found wrong)."""
        self.ledger.unlabel(dataset_indices)

    def risk_weights(self, estimator: Literal["lure", "pure"] = "lure") -> Tensor:
        """Importance weights of D_L for an unbiased risk estimate: see :meth:`LabelLedger.risk_weights`.

        Example:
            >>> from torch.utils.data import TensorDataset
            >>> from lightning_bal import ActiveDataModule
            >>> dm = ActiveDataModule(TensorDataset(torch.zeros(10, 1)), initial_labels=4, seed=0)
            >>> dm.risk_weights()[dm.labelled_indices].tolist()  # uniform draws need no correction
            [1.0, 1.0, 1.0, 1.0]
        """
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
        """Record ``dataset_indices`` as the pending query for a human annotator (they stay in the pool).

        With ``new_step``, the query opens the next active learning step: its answers are recorded at it.
        """
        self.ledger.query(dataset_indices, new_step=new_step)

    def export_queries(self, path: str | Path, scores: Sequence[float | None] | None = None) -> Path:
        """Write the pending query (id, index, step, score, empty label) to ``path`` (``.json`` or ``.csv``).

        ``scores``, one finite number or ``None`` per queried item in query order, fill the ``score`` column.
        """
        pending = self.ledger.pending_query
        if scores is not None:
            scores = _checked_scores(scores, len(pending))
        ids = self.ids
        return write_queries(path, pending, self.step, [ids[i] for i in pending], scores)

    def import_labels(self, path: str | Path) -> Tensor:
        """Label the answered rows of a file written by :meth:`export_queries`; unanswered rows stay in the pool.

        Rows name items by id. Every row must belong to the pending query and name the current step (a file of an
        older query is refused), and every label must suit the task; otherwise nothing changes. Returns the dataset
        indices labelled.
        """
        answers = read_answers(path)
        self.check_answer_steps(answers.steps, source=str(path))
        return self.ledger.answer(self.indices_of(answers.ids), answers.labels)

    def check_answer_steps(self, steps: set[int], source: str) -> None:
        """Refuse answers to a query of another step than the pending one (a stale or foreign answers file).

        Example:
            >>> from torch.utils.data import TensorDataset
            >>> from lightning_bal import ActiveDataModule
            >>> dm = ActiveDataModule(TensorDataset(torch.zeros(3, 1)), seed=0)
            >>> dm.query([1], new_step=True)
            >>> dm.check_answer_steps({0}, source="old.csv")
            Traceback (most recent call last):
            ...
            ValueError: Expected answers to the query of step 1, but old.csv answers step(s) [0]: it is stale ...
        """
        stale = sorted(steps - {self.step})
        if stale:
            raise ValueError(
                f"Expected answers to the query of step {self.step}, but {source} answers step(s) {stale}: it is"
                " stale (an older query) or belongs to another run. Export the pending query again."
            )

    # ------------------------------------------------------------------ a growing pool
    def add_items(
        self,
        dataset: Dataset,
        ids: Sequence[ItemId] | None = None,
        pool_dataset: Dataset | None = None,
        targets: Sequence[int] | Tensor | np.ndarray | None = None,
    ) -> Tensor:
        """Append the items of ``dataset`` to the training dataset; they join the pool. Returns their indices.

        Labels, steps, drawing probabilities and the pending query of the items already there are kept. The
        training dataset becomes a ``ConcatDataset`` of the old one and ``dataset`` (the pool reads ``pool_dataset``,
        or ``dataset`` with the module's ``pool_overrides``). ``ids`` default to ``dataset.ids``, or to the new
        indices when the module uses default ids. A checkpoint of the smaller dataset loads into the grown one.

        Args:
            dataset: the new items, laid out as the training dataset's (checked on the first item of each: the same
                structure, tensor dtypes and, unless the module has a ``collate_fn``, shapes).
            ids: a stable id per new item, distinct from the ids already there and not empty.
            pool_dataset: the new items read without training augmentation (as the constructor's ``pool_dataset``).
            targets: the new items' labels, needed when the module knows the labels of its items (its ``targets``
                or ``train_dataset.targets``); default ``dataset.targets``. Classes must be below ``num_classes``.

        Raises:
            TypeError: ``dataset`` is not a map-style dataset; ``ids`` or ``targets`` of the wrong type.
            ValueError: items laid out differently from the training dataset's; ids empty, repeated or already in
                the dataset; targets missing, of the wrong length, or classes outside ``[0, num_classes)``. Nothing
                changes then.

        Example:
            >>> from torch.utils.data import TensorDataset
            >>> from lightning_bal import ActiveDataModule
            >>> dm = ActiveDataModule(TensorDataset(torch.zeros(4, 1)), initial_labels=2, seed=0)
            >>> dm.add_items(TensorDataset(torch.ones(3, 1))).tolist()
            [4, 5, 6]
            >>> len(dm), dm.num_labelled, dm.num_pool
            (7, 2, 5)
        """
        if isinstance(dataset, (str, bytes)) or not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"Expected argument `dataset` to be a map-style dataset, but got {type(dataset).__name__}.")
        size, added = len(self), len(dataset)
        if ids is None:
            ids = getattr(dataset, "ids", None)
        if ids is None and self._ids is not None:
            raise ValueError(
                "Expected argument `ids` (or a `dataset.ids` attribute) for the new items, since this datamodule"
                " names its items by `ids`, but got None."
            )
        new_ids = None if ids is None else self._checked_ids("ids", ids, added)
        if new_ids is not None:
            known = id_lookup(self.ids)
            clash = [item for item in new_ids if str(item) in known]
            if clash:
                raise ValueError(
                    f"Expected argument `ids` to hold new ids, but {clash[:5]} are already in the dataset."
                )
        all_ids = (
            None if new_ids is None and self._ids is None else self.ids + list(new_ids or range(size, size + added))
        )
        pool_part = pool_view_of(dataset, pool_dataset, self.pool_overrides)
        shared_pool = pool_dataset is None and not self.pool_overrides and self.pool_dataset is self.train_dataset
        if size and added:
            self._check_layout(dataset, pool_part, shared_pool)
        new_targets = self._new_targets(targets, dataset, added)
        grown = LabelLedger(size + added, self.ledger.task, self.ledger.num_classes)
        grown.load_state_dict(remap_state(self.ledger.state_dict(), self.ids, all_ids or list(range(size + added))))
        # Validated: swap everything at once.
        self.train_dataset = ConcatDataset([self.train_dataset, dataset])
        self.pool_dataset = self.train_dataset if shared_pool else ConcatDataset([self.pool_dataset, pool_part])
        self._targets = None if new_targets is None else torch.cat([self._targets, new_targets])  # type: ignore[list-item]
        self._ids = all_ids
        self._id_lookup = None
        self.ledger = grown
        self._pool_subset_step = -1
        return torch.arange(size, size + added)

    @staticmethod
    def _checked_ids(name: str, ids: Any, size: int) -> list[ItemId]:
        checked = check_ids(name, ids, size)
        # Answer files name items by id, and a blank cell names none: such an item could never be labelled.
        blank = [item for item in checked if isinstance(item, str) and not item.strip()]
        if blank:
            raise ValueError(
                f"Expected argument `{name}` to hold non-empty ids (answer files name items by them), but got"
                f" {blank[0]!r}."
            )
        return checked

    def _check_layout(self, dataset: Dataset, pool_part: Dataset, shared_pool: bool) -> None:
        # One item of each side, not the whole dataset: enough to catch data of another kind, which would otherwise
        # fail much later, when a batch mixing old and new items is collated.
        shapes = self.collate_fn is None
        reads = [("item", "the training dataset's", self.train_dataset[0], dataset[0])]
        if not shared_pool:
            pool_inputs = (self.input_fn(self.pool_dataset[0]), self.input_fn(pool_part[0]))
            reads.append(("pool input", "the pool's", *pool_inputs))
        for what, whose, old, new in reads:
            expected, found = item_layout(old, shapes), item_layout(new, shapes)
            if expected != found:
                raise ValueError(
                    f"Expected argument `dataset` to hold items laid out as the training dataset's, but its first"
                    f" {what} is {found} where {whose} is {expected}."
                )

    def _new_targets(self, targets: Any, dataset: Dataset, added: int) -> Tensor | None:
        if self._targets is None:
            if targets is not None:
                raise ValueError(
                    "Expected argument `targets` only when the datamodule knows its items' labels (`targets` or"
                    " `train_dataset.targets` at construction), but it has none."
                )
            return None
        new_targets = resolve_targets(targets, dataset, added)
        if new_targets is None:
            raise ValueError(
                "Expected argument `targets` (or a `dataset.targets` attribute) for the new items, since the"
                " datamodule knows the labels of its items, but got None."
            )
        num_classes = self.ledger.num_classes
        if num_classes is not None and added and int(new_targets.max()) >= num_classes:
            raise ValueError(
                f"Expected argument `targets` (or `dataset.targets`) to hold classes below `num_classes`"
                f" ({num_classes}), but got class {int(new_targets.max())}. A datamodule that will see more classes"
                " needs them in its `num_classes` from the start."
            )
        return new_targets


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
