"""The datamodule's loaders: D_L, the pool, val and test, on top of its labelling API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from lightning_bal.data.labelling import LabelOperations
from lightning_bal.data.ledger_state import UNLABELLED
from lightning_bal.data.targets import dataset_classes
from lightning_bal.data.views import (
    EpochShuffleSampler,
    LabelledView,
    PoolView,
    ResumableLoader,
    batched_loader,
    map_style_size,
    warn_if_nondeterministic,
)
from lightning_bal.utilities.checks import as_index_tensor, check_one_of, describe

__all__ = ["Loaders"]


class Loaders(LabelOperations, pl.LightningDataModule):
    """Lightning's loader hooks and the pool loaders, built from the attributes :class:`ActiveDataModule` sets."""

    pool_dataset: Dataset
    collate_fn: Any
    input_fn: Any
    _pool_subset_step: int
    val_dataset: Dataset | None
    test_dataset: Dataset | None
    batch_size: int
    train_samples_per_epoch: int | None
    pool_batch_size: int
    eval_batch_size: int
    num_workers: int
    max_pool_size: int | None
    return_weights: Literal["lure", "pure"] | None
    seed: int
    _pool_subset: list[int]
    _checked_pool_determinism: bool
    _eval_targets: dict[str, Tensor]

    def scoring_indices(self) -> Tensor:
        """Pool indices to score at this step (the pool or a seeded subset of ``max_pool_size``), less pending items."""
        pool = self.pool_indices
        if self.ledger.pending_query:
            pool = pool[~torch.isin(pool, torch.tensor(self.ledger.pending_query, dtype=torch.long))]
        if self.max_pool_size is None or pool.numel() <= self.max_pool_size:
            return pool
        if self._pool_subset_step != self.step:
            chosen = torch.randperm(pool.numel(), generator=self.generator)[: self.max_pool_size]
            self._pool_subset = pool[chosen].sort().values.tolist()
            self._pool_subset_step = self.step
        subset = torch.tensor(self._pool_subset, dtype=torch.long)
        return subset[self.acquired_at[subset] == UNLABELLED]

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sampler | None = None, **kwargs: Any) -> DataLoader:
        # Its own generator for the workers' base seed: iterating the loader leaves the global RNG alone.
        generator = torch.Generator().manual_seed(self.seed)
        loader_cls = ResumableLoader if "trained_batches" in kwargs else DataLoader
        return loader_cls(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            generator=generator,
            collate_fn=self.collate_fn,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled loader over D_L (annotator labels included)."""
        if self.num_labelled == 0:
            raise RuntimeError("The labelled set is empty: label some samples (e.g. `initial_labels=20`) before fit.")
        weights = None if self.return_weights is None else self.risk_weights(self.return_weights)
        # A loaded state's masks were never held against the dataset: a checkpoint knows no item's size.
        masks = {i: label for i, label in self.ledger.annotations.items() if isinstance(label, Tensor)}
        self._check_target_shapes(list(masks), list(masks.values()), "the annotator label (the state's `@tensor`)")
        view = LabelledView(self.train_dataset, self.labelled_indices, self.ledger.annotations, weights)
        # The shuffle depends on the seed and the epoch only, not on the global RNG (which Lightning does not
        # checkpoint), so a resumed run sees the same batches as an uninterrupted one. The epoch is read here too:
        # under DDP, Lightning releases before 2.4 did not forward `set_epoch` to a custom sampler.
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        sampler = EpochShuffleSampler(len(view), self.seed, self.train_samples_per_epoch, epoch=epoch)
        return self._loader(view, self.batch_size, sampler, trained_batches=self._trained_batches)

    def _trained_batches(self) -> int:
        # What Lightning's own epoch loop counts as trained in the current epoch.
        trainer = self.trainer
        return (
            0 if trainer is None else int(getattr(trainer.fit_loop.epoch_loop.batch_progress.current, "processed", 0))
        )

    def pool_dataloader(self, indices: Tensor | None = None) -> DataLoader:
        """Loader over pool ``indices`` (default :meth:`scoring_indices`) yielding ``(inputs, dataset_indices)``."""
        if indices is None:
            indices = self.scoring_indices()
        else:
            indices = as_index_tensor("indices", indices)
            self.ledger.check_in_range("indices", indices)
        return self._inputs_loader(self.pool_dataset, indices, self.pool_batch_size, pool=True)

    def inputs_dataloader(self, dataset: Dataset, indices: Tensor | None = None) -> DataLoader:
        """Loader over a dataset outside the pool (or its ``indices``) yielding ``(inputs, indices)``, by input_fn."""
        size = map_style_size("dataset", dataset)
        if indices is None:
            indices = torch.arange(size)
        else:
            indices = as_index_tensor("indices", indices)
            outside = indices[(indices < 0) | (indices >= size)]
            if outside.numel():
                raise ValueError(
                    f"Expected argument `indices` to hold indices in [0, {size}) of `dataset`, but got"
                    f" {describe(outside)}."
                )
        return self._inputs_loader(dataset, indices, self.eval_batch_size)

    def _inputs_loader(self, dataset: Dataset, indices: Tensor, batch_size: int, pool: bool = False) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        batched = batched_loader(dataset, indices, self.input_fn, batch_size, self.num_workers, generator)
        if batched is not None:
            return batched
        view = PoolView(dataset, indices, self.input_fn)
        if pool and not self._checked_pool_determinism and len(view):
            self._checked_pool_determinism = True
            warn_if_nondeterministic(view)
        return self._loader(view, batch_size)

    def eval_dataset(self, split: Literal["val", "test"]) -> Dataset:
        """The validation or test dataset; a clear error when the datamodule was given none."""
        datasets = {"val": self.val_dataset, "test": self.test_dataset}
        dataset = datasets[check_one_of("split", split, ("val", "test"))]
        if dataset is None:
            raise RuntimeError(f"This needs a `{split}_dataset` in the `ActiveDataModule`, but none was given.")
        return dataset

    def eval_targets(self, split: Literal["val", "test"]) -> Tensor:
        """Class labels of the validation or test set, read once (``item[1]`` or ``item["target"]``)."""
        if split not in self._eval_targets:
            self._eval_targets[split] = dataset_classes(self.eval_dataset(split))
        return self._eval_targets[split]

    # Without a validation (test) set the hook is LightningDataModule's own, so Lightning sees no such loader and
    # runs no loop over it, instead of warning about an empty one.
    @property
    def val_dataloader(self) -> Callable[[], DataLoader]:
        """Builds the loader over the validation dataset (Lightning's default hook when none was given)."""
        return super().val_dataloader if self.val_dataset is None else lambda: self._eval_loader("val")

    @property
    def test_dataloader(self) -> Callable[[], DataLoader]:
        """Builds the loader over the test dataset (Lightning's default hook when none was given)."""
        return super().test_dataloader if self.test_dataset is None else lambda: self._eval_loader("test")

    def _eval_loader(self, split: Literal["val", "test"]) -> DataLoader:
        return self._loader(self.eval_dataset(split), self.eval_batch_size)
