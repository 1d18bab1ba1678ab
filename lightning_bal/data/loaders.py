"""The datamodule's labelling API (each call forwarded to its ledger) and its loaders: D_L, the pool, val and test."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from lightning_bal.data.ids import ItemId, id_lookup
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.data.ledger_state import UNLABELLED
from lightning_bal.data.queries import read_answers, write_queries
from lightning_bal.data.targets import dataset_classes, labelled_classes, resolve_targets
from lightning_bal.data.views import (
    EpochShuffleSampler,
    LabelledView,
    PoolView,
    ResumableLoader,
    batched_loader,
    map_style_size,
    target_of,
    warn_if_nondeterministic,
)
from lightning_bal.utilities.checks import as_index_tensor, check_one_of, describe

__all__ = ["Indices", "LabelOperations", "Loaders"]

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
