"""A growing pool: new items appended to the datamodule's training dataset, their ids, targets and layout checked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from lightning_bal.data.ids import ItemId, check_ids, id_lookup, remap_state
from lightning_bal.data.labelling import LabelOperations
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.data.targets import resolve_targets
from lightning_bal.data.views import item_layout, pool_view_of

__all__ = ["ItemAdditions"]


class ItemAdditions(LabelOperations):
    """:meth:`add_items`, and the id checks the datamodule's constructor shares."""

    def add_items(
        self,
        dataset: Dataset,
        ids: Sequence[ItemId] | None = None,
        pool_dataset: Dataset | None = None,
        targets: Sequence[int] | Tensor | np.ndarray | None = None,
    ) -> Tensor:
        """Append the items of ``dataset`` to the training dataset; they join the pool. Returns their indices.

        The items already there keep their labels, steps, probabilities and pending query; the training dataset
        becomes a ``ConcatDataset``. A checkpoint of the smaller dataset loads into the grown one.

        Args:
            dataset: the new items, laid out as the training dataset's (checked on the first item of each: the same
                structure, tensor dtypes and, unless the module has a ``collate_fn``, shapes).
            ids: a stable id per new item, distinct from the ids already there and not empty (default
                ``dataset.ids``, or the new indices when the module uses default ids).
            pool_dataset: the new items read without training augmentation (as the constructor's ``pool_dataset``).
            targets: the new items' labels, needed when the module knows the labels of its items (its ``targets``
                or ``train_dataset.targets``); default ``dataset.targets``. Classes must be below ``num_classes``.

        Raises:
            TypeError, ValueError: bad ``dataset``, ``ids`` or ``targets``; nothing changes then.

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
        # One item of each side is enough to catch data of another kind before a mixed batch fails to collate.
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
