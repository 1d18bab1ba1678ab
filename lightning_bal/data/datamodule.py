"""ActiveDataModule: its datasets, construction checks, state and added items; its bases load and label."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from lightning_bal.data.ids import ItemId, align_state, check_ids, id_lookup, remap_state
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.data.loaders import Loaders
from lightning_bal.data.streaming import as_streamed, chunk_shard, is_streamed
from lightning_bal.data.targets import resolve_targets
from lightning_bal.data.views import default_input_fn, item_layout, map_style_size, pool_view_of
from lightning_bal.tasks import Classification, Task, resolve_task
from lightning_bal.utilities.checks import (
    as_index_tensor,
    check_int_in_range,
    check_non_negative_int,
    check_positive_int,
)
from lightning_bal.utilities.distributed import shard
from lightning_bal.utilities.seeding import check_seed

__all__ = ["ActiveDataModule"]

_STATE_KEYS = ("generator_state", "pool_subset", "pool_subset_step", "seed", "ids")


class ActiveDataModule(Loaders):
    """A ``LightningDataModule`` over the labelled set D_L and the pool D_U of one training dataset.

    Who is labelled, when, and with which label is kept by its :attr:`ledger` (a :class:`LabelLedger`). All public
    methods take and return absolute dataset indices.

    Args:
        train_dataset: map-style dataset holding D_L and D_U together; items are ``(input, target, ...)`` tuples,
            mappings with ``"input"``/``"target"`` keys, or bare inputs when labels come from an annotator. A
            ``litdata.StreamingDataset`` is read through :class:`~lightning_bal.data.streaming.StreamedDataset`
            (docs/multi_node.md#streamed-pools).
        initial_labels: number of samples labelled at step 0 when the module is built.
        balanced_initial: draw ``initial_labels`` evenly over the classes (needs ``targets``).
        targets: the dataset's labels (default ``train_dataset.targets``), for balanced labelling and histograms.
        task: ``"classification"``, ``"regression"`` or a :class:`~lightning_bal.tasks.Task` (docs/tasks.md): what
            annotator labels must be. Default: classification when integer ``targets`` are known.
        num_classes: default ``max(targets) + 1`` when targets are known.
        train_samples_per_epoch: draw at least this many samples per training epoch, repeating D_L.
        eval_batch_size: batch size of the validation and test loaders (defaults to ``pool_batch_size``).
        pool_dataset: the same samples as ``train_dataset`` in the same order, read without training augmentation.
        pool_overrides: attributes to set on a shallow copy of ``train_dataset`` to read the pool without
            augmentation, e.g. ``{"transform": eval_transform}`` (ignored when ``pool_dataset`` is given).
        input_fn: picks the model input from a dataset item (default: ``item[0]`` or ``item["input"]``).
        max_pool_size: score only a random subset of at most this many pool samples per step (:meth:`scoring_indices`).
        return_weights: make the train loader yield ``(input, target, weight)`` with each sample's ``"lure"`` or
            ``"pure"`` risk weight (:meth:`risk_weights`).
        collate_fn: batches the items of every loader (e.g. pads sequences), ``(input, dataset_index)`` in the pool's.
        seed: seeds the initial labels, pool subsets, training shuffle and, unless the callback has its own, the MC
            masks and stochastic selection; ``None`` draws one from torch.
        ids: a stable id per training item (default ``train_dataset.ids``, else the index): see
            docs/annotators.md#stable-item-ids.

    Examples:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.randn(100, 3), torch.arange(100) % 4)
        >>> dm = ActiveDataModule(data, initial_labels=8, balanced_initial=True, targets=data.tensors[1], seed=0)
        >>> dm.num_labelled, dm.num_pool, dm.step
        (8, 92, 0)
        >>> dm.acquire([int(dm.pool_indices[0])])
        1
        >>> dm.num_labelled, int(dm.acquired_at.max())
        (9, 1)
    """

    def __init__(
        self,
        train_dataset: Dataset,
        val_dataset: Dataset | None = None,
        test_dataset: Dataset | None = None,
        *,
        initial_labels: int = 0,
        balanced_initial: bool = False,
        targets: Sequence[int] | Tensor | np.ndarray | None = None,
        task: Task | str | None = None,
        num_classes: int | None = None,
        batch_size: int = 32,
        train_samples_per_epoch: int | None = None,
        pool_batch_size: int = 256,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pool_dataset: Dataset | None = None,
        pool_overrides: Mapping[str, Any] | None = None,
        input_fn: Callable[[Any], Any] | None = None,
        max_pool_size: int | None = None,
        return_weights: Literal["lure", "pure"] | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        seed: int | None = None,
        ids: Sequence[ItemId] | None = None,
    ) -> None:
        super().__init__()
        # A litdata StreamingDataset counts only this rank's share; the datamodule indexes every item.
        train_dataset, pool_dataset = as_streamed(train_dataset), as_streamed(pool_dataset)
        size = map_style_size("train_dataset", train_dataset)
        for name, dataset in (("val_dataset", val_dataset), ("test_dataset", test_dataset)):
            readable = hasattr(dataset, "__getitem__") or hasattr(dataset, "__iter__")
            if dataset is not None and (isinstance(dataset, (str, bytes)) or not readable):
                raise TypeError(
                    f"Expected argument `{name}` to be a dataset or None, but got {type(dataset).__name__}."
                )
        self.train_dataset = train_dataset
        self.val_dataset = val_dataset
        self.test_dataset = test_dataset
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.train_samples_per_epoch = (
            None
            if train_samples_per_epoch is None
            else check_positive_int("train_samples_per_epoch", train_samples_per_epoch)
        )
        self.pool_batch_size = check_positive_int("pool_batch_size", pool_batch_size)
        self.eval_batch_size = check_positive_int(
            "eval_batch_size", pool_batch_size if eval_batch_size is None else eval_batch_size
        )
        self.num_workers = check_non_negative_int("num_workers", num_workers)
        self.max_pool_size = None if max_pool_size is None else check_positive_int("max_pool_size", max_pool_size)
        if input_fn is not None and not callable(input_fn):
            raise TypeError(f"Expected argument `input_fn` to be a callable or None, but got {input_fn!r}.")
        self.input_fn = input_fn or default_input_fn
        if return_weights not in (None, "lure", "pure"):
            raise ValueError(
                f"Expected argument `return_weights` to be None, 'lure' or 'pure', but got {return_weights!r}."
            )
        self.return_weights = return_weights
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"Expected argument `collate_fn` to be callable or None, but got {collate_fn!r}.")
        self.collate_fn = collate_fn
        self.pool_overrides = pool_overrides
        self.pool_dataset = pool_view_of(train_dataset, pool_dataset, pool_overrides)
        if ids is None:
            ids = getattr(train_dataset, "ids", None)
        # None: every item's id is its index (stored as None, so default runs keep small checkpoints).
        self._ids: list[ItemId] | None = None if ids is None else self._checked_ids("ids", ids, size)
        self._id_lookup: dict[str, int] | None = None
        kind = resolve_task(task)
        self._targets = None if kind.name == "regression" else resolve_targets(targets, train_dataset, size)
        if type(kind) is Task and self._targets is not None:
            kind = Classification()
        if kind.name == "classification" and self._targets is not None and size:
            largest = int(self._targets.max())
            if num_classes is None:
                num_classes = largest + 1
            elif check_positive_int("num_classes", num_classes) <= largest:
                raise ValueError(
                    f"Expected argument `num_classes` to exceed every class of `targets`, but got {num_classes} with"
                    f" class {largest} among the targets."
                )
        self.ledger = LabelLedger(size, kind, num_classes)

        seed = check_seed("seed", seed)
        self.seed = int(torch.seed() if seed is None else seed) % 2**62
        self.generator = torch.Generator().manual_seed(self.seed)
        # A plain list, not a tensor: `ddp_spawn` cannot send empty tensors to its processes (torch shares them by
        # file descriptor, which fails for size 0).
        self._pool_subset: list[int] = []
        self._pool_subset_step = -1
        self._checked_pool_determinism = False
        self._eval_targets: dict[str, Tensor] = {}

        check_non_negative_int("initial_labels", initial_labels)
        # A string such as "false" would be truthy and label a balanced set.
        if not isinstance(balanced_initial, (bool, np.bool_)):
            raise TypeError(f"Expected argument `balanced_initial` to be a bool, but got {balanced_initial!r}.")
        if initial_labels > size:
            raise ValueError(
                f"Expected argument `initial_labels` to be at most the dataset size {size}, but got {initial_labels}."
            )
        if balanced_initial and initial_labels:
            num_classes = int(torch.unique(self._require_targets(None)).numel())
            if initial_labels % num_classes:
                raise ValueError(
                    f"Expected argument `initial_labels` to be divisible by the {num_classes} classes when"
                    f" `balanced_initial=True`, but got {initial_labels}."
                )
            self.label_balanced(initial_labels // num_classes)
        elif initial_labels:
            self.label_randomly(initial_labels)

    # ------------------------------------------------------------------ state
    def __getstate__(self) -> dict[str, Any]:
        # `ddp_spawn` pickles the datamodule with torch's shared-memory pickler, which cannot send a Generator.
        state = self.__dict__.copy()
        state["generator"] = self.generator.get_state().tolist()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        generator = torch.Generator()
        generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
        self.__dict__.update({**state, "generator": generator})

    def state_dict(self) -> dict[str, Any]:
        """Tensors and primitives only, so a checkpoint holding it loads with ``torch.load(weights_only=True)``."""
        return {
            **self.ledger.state_dict(),
            "seed": self.seed,
            "generator_state": self.generator.get_state(),
            "pool_subset": torch.tensor(self._pool_subset, dtype=torch.long),
            "pool_subset_step": self._pool_subset_step,
            "ids": None if self._ids is None else list(self._ids),
            "task": self.ledger.task,
            "num_classes": self.ledger.num_classes,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore labels, pending query, generator and pool subset (re-mapped by id); a bad state changes nothing."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"Expected argument `state_dict` to be a dict, but got {type(state_dict).__name__}.")
        # The keys read here: every state this module ever saved holds them (no release wrote a smaller layout).
        missing = [key for key in _STATE_KEYS if key not in state_dict]
        if missing:
            raise KeyError(f"Expected the datamodule's state to hold {missing}, but it has only {sorted(state_dict)}.")
        state_dict = align_state(state_dict, self._ids, len(self))
        ledger = LabelLedger(len(self), self.ledger.task_type, self.ledger.num_classes)
        ledger.load_state_dict(state_dict)
        generator = torch.Generator()
        try:
            generator.set_state(state_dict["generator_state"])
        except (TypeError, RuntimeError) as err:
            raise ValueError(f"Expected `generator_state` to be a torch.Generator state, but it is not: {err}") from err
        seed = state_dict["seed"]
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"Expected the state's `seed` to be an integer, but got {seed!r}.")
        subset = as_index_tensor("pool_subset", state_dict["pool_subset"])
        ledger.check_in_range("pool_subset", subset)
        subset_step = state_dict["pool_subset_step"]
        if isinstance(subset_step, bool) or not isinstance(subset_step, int) or subset_step < -1:
            raise ValueError(f"Expected `pool_subset_step` to be an integer >= -1, but got {subset_step!r}.")
        lost = sorted(set(self.ledger.annotations) - set(ledger.annotations))
        if lost:
            rank_zero_warn(
                f"Loading this state drops the annotators' labels of {len(lost)} items (ids"
                f" {[self.ids[i] for i in lost[:5]]}{' ...' if len(lost) > 5 else ''}). If they were imported into the"
                " datamodule after its checkpoint was saved, import them into the checkpoint instead (`lightning-bal"
                " import CKPT ANSWERS` or `lightning_bal.annotation.import_answers`), then `fit(ckpt_path=CKPT)`."
            )
        # Validated: swap everything at once.
        self.ledger = ledger
        self.generator = generator
        self.seed = int(seed)
        self._pool_subset = subset.tolist()
        self._pool_subset_step = subset_step

    # ------------------------------------------------------------------ the pool over ranks
    def pool_shard(self, candidates: Tensor, rank: int, world_size: int) -> Tensor:
        """The part of ``candidates`` (ascending pool indices) that ``rank`` of ``world_size`` scores.

        Strided shards of an in-memory pool; contiguous blocks of a streamed one (:func:`chunk_shard`), so that each
        rank reads only its own chunks. Either way they are disjoint, cover ``candidates`` once and are equally sized.

        Examples:
            >>> from torch.utils.data import TensorDataset
            >>> dm = ActiveDataModule(TensorDataset(torch.zeros(5, 1)), seed=0)
            >>> [dm.pool_shard(dm.pool_indices, rank, 2).tolist() for rank in range(2)]
            [[0, 2, 4], [1, 3]]
        """
        world_size = check_positive_int("world_size", world_size)
        rank = check_int_in_range("rank", rank, 0, world_size - 1)
        candidates = as_index_tensor("candidates", candidates)
        if not is_streamed(self.pool_dataset):
            return shard(candidates, rank, world_size)
        if candidates.numel() > 1 and bool((candidates[1:] < candidates[:-1]).any()):
            raise ValueError("Expected argument `candidates` to be ascending pool indices, but they are not sorted.")
        return chunk_shard(candidates, rank, world_size)

    # ------------------------------------------------------------------ a growing pool
    def add_items(
        self,
        dataset: Dataset,
        ids: Sequence[ItemId] | None = None,
        pool_dataset: Dataset | None = None,
        targets: Sequence[int] | Tensor | np.ndarray | None = None,
    ) -> Tensor:
        """Append the items of ``dataset`` to the training dataset; they join the pool. Returns their indices.

        ``ids``, ``pool_dataset`` and ``targets`` are the new items', as the constructor's (default ``dataset.ids``
        and ``dataset.targets``). See docs/annotators.md#a-growing-pool.

        Examples:
            >>> from torch.utils.data import TensorDataset
            >>> from lightning_bal import ActiveDataModule
            >>> dm = ActiveDataModule(TensorDataset(torch.zeros(4, 1)), initial_labels=2, seed=0)
            >>> dm.add_items(TensorDataset(torch.ones(3, 1))).tolist()
            [4, 5, 6]
            >>> len(dm), dm.num_labelled, dm.num_pool
            (7, 2, 5)
        """
        dataset, pool_dataset = as_streamed(dataset), as_streamed(pool_dataset)
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
        grown = LabelLedger(size + added, self.ledger.task_type, self.ledger.num_classes)
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
