"""ActiveDataModule: who is labelled (D_L), who is in the pool (D_U), and the loaders over each."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from lightning_bal.data.queries import read_answers, write_queries
from lightning_bal.data.sampler import EpochShuffleSampler
from lightning_bal.data.views import LabelledView, PoolView, default_input_fn, target_of
from lightning_bal.functional.risk import lure_weights, pure_weights
from lightning_bal.utilities.checks import check_non_negative_int, check_positive_int

__all__ = ["ActiveDataModule"]

_UNLABELLED = -1


def _as_index_tensor(name: str, value: Any) -> Tensor:
    """Turn an int, a sequence, a numpy array or a tensor of dataset indices into a 1-D int64 tensor."""
    if isinstance(value, bool):
        raise TypeError(f"Expected argument `{name}` to hold integer dataset indices, but got {value!r}.")
    if isinstance(value, int):
        return torch.tensor([value], dtype=torch.long)
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, Tensor):
        try:
            value = torch.as_tensor(list(value))
        except (TypeError, ValueError) as err:
            raise TypeError(f"Expected argument `{name}` to hold integer dataset indices, but got {value!r}.") from err
    if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
        raise TypeError(f"Expected argument `{name}` to hold integer dataset indices, but got dtype {value.dtype}.")
    return value.detach().to("cpu", torch.long).reshape(-1)


def _describe(indices: Tensor, limit: int = 5) -> str:
    shown = indices[:limit].tolist()
    return f"{shown}{' ...' if indices.numel() > limit else ''}"


class ActiveDataModule(pl.LightningDataModule):
    """A ``LightningDataModule`` that tracks the labelled set D_L and the pool D_U of one training dataset.

    State is a single tensor ``acquired_at[N]``: ``-1`` for a pool sample, else the active learning step at which the
    sample was labelled (``0`` for the initial labels). Everything else is derived from it. All public methods take
    and return absolute dataset indices.

    Args:
        train_dataset: map-style dataset holding D_L and D_U together; items are ``(input, target, ...)`` tuples,
            mappings with ``"input"``/``"target"`` keys, or bare inputs when labels come from an annotator.
        val_dataset: optional validation dataset, passed through to ``val_dataloader``.
        test_dataset: optional test dataset, passed through to ``test_dataloader``.
        initial_labels: number of samples labelled at step 0 when the module is built.
        balanced_initial: draw ``initial_labels`` evenly over the classes (needs ``targets`` or
            ``train_dataset.targets``, and ``initial_labels`` divisible by the number of classes).
        targets: the dataset's labels, used for balanced labelling and the labelled-set class histogram.
        batch_size: batch size of the train loader over D_L.
        train_samples_per_epoch: draw at least this many samples per training epoch, repeating D_L in fresh
            permutations, so that a small labelled set still gets enough optimiser steps per epoch.
        pool_batch_size: batch size of the pool loader (inference only, so it can be larger).
        eval_batch_size: batch size of the validation and test loaders (defaults to ``pool_batch_size``).
        num_workers: workers of every loader.
        pool_dataset: the same samples as ``train_dataset`` in the same order, read without training augmentation.
        pool_overrides: attributes to set on a shallow copy of ``train_dataset`` to read the pool without
            augmentation, e.g. ``{"transform": eval_transform}`` (ignored when ``pool_dataset`` is given).
        input_fn: picks the model input from a dataset item (default: ``item[0]`` or ``item["input"]``).
        max_pool_size: score only a random subset of at most this many pool samples per step.
        return_weights: make the train loader yield each sample's ``"lure"`` or ``"pure"`` risk weight after the
            item, ``(input, target, weight)``, so that ``training_step`` can weight its per-sample loss (see
            :meth:`risk_weights`).
        seed: seed of the module's generator (initial labels, pool subsets); ``None`` draws one from torch.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.randn(100, 3), torch.arange(100) % 4)
        >>> dm = ActiveDataModule(data, initial_labels=8, balanced_initial=True, targets=data.tensors[1], seed=0)
        >>> dm.num_labelled, dm.num_pool, dm.step
        (8, 92, 0)
        >>> dm.next_step()
        1
        >>> dm.label([int(dm.pool_indices[0])])
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
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not hasattr(train_dataset, "__getitem__") or not hasattr(train_dataset, "__len__"):
            raise TypeError(
                f"Expected argument `train_dataset` to be a map-style dataset with `__len__` and `__getitem__`,"
                f" but got {type(train_dataset).__name__}."
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
        self.eval_batch_size = check_positive_int("eval_batch_size", eval_batch_size or pool_batch_size)
        self.num_workers = check_non_negative_int("num_workers", num_workers)
        self.max_pool_size = None if max_pool_size is None else check_positive_int("max_pool_size", max_pool_size)
        self.input_fn = input_fn or default_input_fn
        if return_weights not in (None, "lure", "pure"):
            raise ValueError(
                f"Expected argument `return_weights` to be None, 'lure' or 'pure', but got {return_weights!r}."
            )
        self.return_weights = return_weights
        self.pool_dataset = self._make_pool_dataset(train_dataset, pool_dataset, pool_overrides)
        size = len(train_dataset)
        self._targets = self._resolve_targets(targets, train_dataset, size)

        self.seed = int(torch.seed() if seed is None else seed) % 2**62
        self.generator = torch.Generator().manual_seed(self.seed)
        self.acquired_at = torch.full((size,), _UNLABELLED, dtype=torch.long)
        # Acquisition order and drawing probability of every labelled sample: what unbiased risk estimates need.
        self.acquisition_order = torch.full((size,), _UNLABELLED, dtype=torch.long)
        self.acquisition_probability = torch.full((size,), float("nan"), dtype=torch.float64)
        self._step = 0
        self._annotations: dict[int, int | float] = {}
        # Plain lists, not tensors: `ddp_spawn` cannot send empty tensors to its processes (torch shares them by
        # file descriptor, which fails for size 0).
        self._pending_query: list[int] = []
        self._pool_subset: list[int] = []
        self._pool_subset_step = -1
        self._checked_pool_determinism = False
        self._eval_targets: dict[str, Tensor] = {}

        check_non_negative_int("initial_labels", initial_labels)
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

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _make_pool_dataset(
        train_dataset: Dataset, pool_dataset: Dataset | None, pool_overrides: Mapping[str, Any] | None
    ) -> Dataset:
        if pool_dataset is not None:
            if len(pool_dataset) != len(train_dataset):  # type: ignore[arg-type]
                raise ValueError(
                    f"Expected argument `pool_dataset` to hold the same {len(train_dataset)} samples as"  # type: ignore[arg-type]
                    f" `train_dataset`, but got {len(pool_dataset)}."  # type: ignore[arg-type]
                )
            return pool_dataset
        if not pool_overrides:
            return train_dataset
        # A shallow copy, so the training loader keeps its augmentation while the pool reads without it.
        view = copy.copy(train_dataset)
        for name, value in pool_overrides.items():
            if not hasattr(view, name):
                raise ValueError(
                    f"Expected every key of `pool_overrides` to be an attribute of the train dataset,"
                    f" but {type(train_dataset).__name__} has no attribute {name!r}."
                )
            setattr(view, name, value)
        return view

    @staticmethod
    def _resolve_targets(targets: Any, dataset: Dataset, size: int) -> Tensor | None:
        if targets is None:
            targets = getattr(dataset, "targets", None)
        if targets is None:
            return None
        # A copy, not a view: memory borrowed from numpy or from the dataset's own tensor came back as garbage in
        # `ddp_spawn` processes (seen as a bincount of ~1e19 classes).
        tensor = torch.tensor(np.asarray(targets)).reshape(-1)
        if tensor.numel() != size:
            raise ValueError(
                f"Expected argument `targets` to have one label per sample ({size}), but got {tensor.numel()}."
            )
        if tensor.is_floating_point():
            raise TypeError(f"Expected argument `targets` to hold integer class labels, but got dtype {tensor.dtype}.")
        return tensor.long()

    def _require_targets(self, targets: Any) -> Tensor:
        resolved = self._resolve_targets(targets, self.train_dataset, len(self)) if targets is not None else None
        resolved = resolved if resolved is not None else self._targets
        if resolved is None:
            raise ValueError(
                "Expected argument `targets` (or a `targets` attribute on the train dataset) for balanced labelling,"
                " but got None."
            )
        return resolved

    # ------------------------------------------------------------------ derived views of the state
    def __len__(self) -> int:
        return int(self.acquired_at.numel())

    @property
    def step(self) -> int:
        """The current active learning step: new labels are recorded at this step (0 = initial labels)."""
        return self._step

    @property
    def labelled_indices(self) -> Tensor:
        """Dataset indices of D_L, ascending."""
        return torch.nonzero(self.acquired_at != _UNLABELLED).reshape(-1)

    @property
    def pool_indices(self) -> Tensor:
        """Dataset indices of D_U, ascending."""
        return torch.nonzero(self.acquired_at == _UNLABELLED).reshape(-1)

    @property
    def num_labelled(self) -> int:
        """Size of D_L."""
        return int((self.acquired_at != _UNLABELLED).sum())

    @property
    def num_pool(self) -> int:
        """Size of D_U."""
        return len(self) - self.num_labelled

    @property
    def annotations(self) -> dict[int, int | float]:
        """Labels given by an annotator, by dataset index; they take precedence over the dataset's own targets."""
        return dict(self._annotations)

    @property
    def pending_query(self) -> Tensor:
        """Dataset indices queried for a human annotator and not yet answered."""
        return torch.tensor(self._pending_query, dtype=torch.long)

    def labelled_targets(self) -> Tensor | None:
        """Class labels of D_L in ``labelled_indices`` order, or ``None`` when they are not integer classes.

        Annotator labels come first, then ``targets`` (or the dataset's ``targets``), else each item's own target.
        """
        labelled = self.labelled_indices
        if self._targets is not None:
            # Vectorised: this runs at every step for the class histogram, over a D_L that keeps growing.
            targets = self._targets[labelled].clone()
            annotated = [
                (position, self._annotations[index])
                for position, index in enumerate(labelled.tolist())
                if index in self._annotations
            ]
            for position, annotation in annotated:
                if isinstance(annotation, bool) or not isinstance(annotation, int):
                    return None
                targets[position] = annotation
            return targets
        values: list[int] = []
        for index in labelled.tolist():
            value: Any = self._annotations.get(index)
            if value is None:
                try:
                    value = target_of(self.train_dataset[index])
                except TypeError:
                    return None
            if isinstance(value, Tensor):
                if value.numel() != 1 or value.is_floating_point():
                    return None
                value = value.item()
            if not isinstance(value, int) or isinstance(value, bool):
                return None
            values.append(value)
        return torch.tensor(values, dtype=torch.long)

    # ------------------------------------------------------------------ labelling
    def _check_pool_members(self, name: str, indices: Tensor) -> None:
        out_of_range = indices[(indices < 0) | (indices >= len(self))]
        if out_of_range.numel():
            raise ValueError(
                f"Expected argument `{name}` to hold dataset indices in [0, {len(self)}),"
                f" but got {_describe(out_of_range)}."
            )
        unique, counts = torch.unique(indices, return_counts=True)
        if (counts > 1).any():
            raise ValueError(
                f"Expected argument `{name}` to hold distinct indices,"
                f" but got duplicates {_describe(unique[counts > 1])}."
            )
        already = indices[self.acquired_at[indices] != _UNLABELLED]
        if already.numel():
            raise ValueError(
                f"Expected argument `{name}` to hold pool indices, but {_describe(already)} are already labelled."
            )

    @staticmethod
    def _as_labels(labels: Any, expected: int) -> list[int | float]:
        if isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
            raise TypeError(f"Expected argument `labels` to be a sequence of numbers, but got {type(labels).__name__}.")
        values = labels.tolist() if isinstance(labels, (Tensor, np.ndarray)) else list(labels)
        if len(values) != expected:
            raise ValueError(
                f"Expected argument `labels` to have one label per index ({expected}), but got {len(values)}."
            )
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(
                    f"Expected argument `labels` to hold numbers, but got {value!r} of type {type(value).__name__}."
                )
        return values

    def label(
        self,
        dataset_indices: int | Sequence[int] | Tensor | np.ndarray,
        labels: Any = None,
        probabilities: Tensor | Sequence[float] | None = None,
    ) -> None:
        """Move ``dataset_indices`` from D_U to D_L at the current step, optionally with an annotator's ``labels``.

        ``probabilities``, when the indices were drawn at random in the given order, holds each one's drawing
        probability given the earlier draws, over the whole pool (e.g. ``Selection.probabilities`` of a stochastic
        heuristic): :meth:`risk_weights` needs them. Either every index is labelled or, on bad input, none is.

        Raises:
            TypeError: indices that are not integers, labels that are not numbers.
            ValueError: an index out of range, duplicated, or already labelled; labels of the wrong length.
        """
        indices = _as_index_tensor("dataset_indices", dataset_indices)
        self._check_pool_members("dataset_indices", indices)
        values = None if labels is None else self._as_labels(labels, indices.numel())
        drawn = None if probabilities is None else self._as_probabilities(probabilities, indices.numel())
        # Everything is validated above: from here on nothing can fail half-way.
        self.acquisition_order[indices] = self.num_labelled + torch.arange(indices.numel())
        if drawn is not None:
            self.acquisition_probability[indices] = drawn
        self.acquired_at[indices] = self._step
        if values is not None:
            self._annotations.update(zip(indices.tolist(), values, strict=True))
        if self._pending_query:
            answered = set(indices.tolist())
            self._pending_query = [i for i in self._pending_query if i not in answered]

    @staticmethod
    def _as_probabilities(probabilities: Any, expected: int) -> Tensor:
        values = torch.as_tensor(probabilities, dtype=torch.float64).reshape(-1)
        if values.numel() != expected:
            raise ValueError(
                f"Expected argument `probabilities` to have one value per index ({expected}), but got {values.numel()}."
            )
        if not bool(((values > 0) & (values <= 1)).all()):
            raise ValueError(f"Expected argument `probabilities` to lie in (0, 1], but got {values.tolist()}.")
        return values

    def risk_weights(self, estimator: Literal["lure", "pure"] = "lure") -> Tensor:
        r"""Importance weights of D_L for an unbiased estimate of the population risk (Farquhar et al., 2021).

        The mean of ``weights * losses`` over D_L estimates the mean loss over the whole dataset without the bias of
        active selection, when every sample was drawn at random with a recorded probability (``label_randomly``, or
        a stochastic heuristic scoring the whole pool). Returns float64 ``[N]``: a weight per labelled sample,
        ``nan`` in the pool.

        Raises:
            ValueError: if a labelled sample has no recorded drawing probability (deterministic acquisitions such as
                top-k, balanced or manual labels cannot be corrected).

        Example:
            >>> from torch.utils.data import TensorDataset
            >>> dm = ActiveDataModule(TensorDataset(torch.zeros(10, 1)), initial_labels=4, seed=0)
            >>> dm.risk_weights()[dm.labelled_indices].tolist()  # uniform draws need no correction
            [1.0, 1.0, 1.0, 1.0]
        """
        if estimator not in ("lure", "pure"):
            raise ValueError(f"Expected argument `estimator` to be 'lure' or 'pure', but got {estimator!r}.")
        labelled = self.labelled_indices
        in_order = labelled[torch.argsort(self.acquisition_order[labelled])]
        probabilities = self.acquisition_probability[in_order]
        missing = in_order[probabilities.isnan()]
        if missing.numel():
            raise ValueError(
                f"Expected every labelled sample to have a recorded drawing probability, but {_describe(missing)}"
                " have none: only random draws (`label_randomly`, stochastic heuristics over the whole pool) can be"
                " re-weighted."
            )
        compute = lure_weights if estimator == "lure" else pure_weights
        weights = torch.full((len(self),), float("nan"), dtype=torch.float64)
        weights[in_order] = compute(probabilities, len(self))
        return weights

    def label_randomly(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Label ``n`` pool samples drawn uniformly at random (their drawing probabilities are recorded)."""
        check_positive_int("n", n)
        pool = self.pool_indices
        if n > pool.numel():
            raise ValueError(f"Expected argument `n` to be at most the pool size {pool.numel()}, but got {n}.")
        chosen = pool[torch.randperm(pool.numel(), generator=generator or self.generator)[:n]]
        self.label(chosen, probabilities=1.0 / (pool.numel() - torch.arange(n, dtype=torch.float64)))
        return chosen

    def label_balanced(
        self, per_class: int, targets: Sequence[int] | Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Label ``per_class`` random pool samples of every class (the usual balanced initial set)."""
        check_positive_int("per_class", per_class)
        resolved = self._require_targets(targets)
        generator = generator or self.generator
        pool = self.pool_indices
        pool_targets = resolved[pool]
        chosen = []
        for cls in torch.unique(resolved).tolist():
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

    def acquire(
        self,
        dataset_indices: int | Sequence[int] | Tensor | np.ndarray,
        labels: Any = None,
        probabilities: Tensor | Sequence[float] | None = None,
    ) -> int:
        """Start the next active learning step and label ``dataset_indices`` at it; returns the new step.

        Validation comes first, so on bad input neither the step nor the labelled set changes.
        """
        indices = _as_index_tensor("dataset_indices", dataset_indices)
        self._check_pool_members("dataset_indices", indices)
        if labels is not None:
            self._as_labels(labels, indices.numel())
        if probabilities is not None:
            self._as_probabilities(probabilities, indices.numel())
        self._step += 1
        self.label(indices, labels, probabilities)
        return self._step

    def next_step(self) -> int:
        """Start the next active learning step (labels from now on are recorded at it); returns its number."""
        self._step += 1
        return self._step

    # ------------------------------------------------------------------ human annotators
    def query(self, dataset_indices: int | Sequence[int] | Tensor | np.ndarray) -> None:
        """Record ``dataset_indices`` as the pending query for a human annotator (they stay in the pool)."""
        indices = _as_index_tensor("dataset_indices", dataset_indices)
        self._check_pool_members("dataset_indices", indices)
        self._pending_query = indices.tolist()

    def export_queries(self, path: str | Path) -> Path:
        """Write the pending query (dataset index, step, empty label) to ``path`` (``.json`` or ``.csv``)."""
        return write_queries(path, self._pending_query, self._step)

    def import_labels(self, path: str | Path) -> Tensor:
        """Label the answered rows of a file written by :meth:`export_queries`; unanswered rows stay in the pool."""
        indices, labels = read_answers(path)
        tensor = torch.tensor(indices, dtype=torch.long)
        if indices:
            self.label(tensor, labels)
        return tensor

    # ------------------------------------------------------------------ pool subset and loaders
    def scoring_indices(self) -> Tensor:
        """Pool indices to score at this step: the whole pool, or a seeded random subset of ``max_pool_size``."""
        pool = self.pool_indices
        if self.max_pool_size is None or pool.numel() <= self.max_pool_size:
            return pool
        if self._pool_subset_step != self._step:
            chosen = torch.randperm(pool.numel(), generator=self.generator)[: self.max_pool_size]
            self._pool_subset = pool[chosen].sort().values.tolist()
            self._pool_subset_step = self._step
        subset = torch.tensor(self._pool_subset, dtype=torch.long)
        return subset[self.acquired_at[subset] == _UNLABELLED]

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sampler | None = None) -> DataLoader:
        # Its own generator for the workers' base seed: iterating the loader leaves the global RNG alone.
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers, generator=generator
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled loader over D_L (annotator labels included)."""
        if self.num_labelled == 0:
            raise RuntimeError("The labelled set is empty: label some samples (e.g. `initial_labels=20`) before fit.")
        weights = None if self.return_weights is None else self.risk_weights(self.return_weights)
        view = LabelledView(self.train_dataset, self.labelled_indices, self._annotations, weights)
        # The shuffle depends on the seed and the epoch only, not on the global RNG (which Lightning does not
        # checkpoint), so a resumed run sees the same batches as an uninterrupted one.
        sampler = EpochShuffleSampler(len(view), self.seed, self.train_samples_per_epoch)
        return self._loader(view, self.batch_size, sampler)

    def pool_dataloader(self, indices: Tensor | None = None) -> DataLoader:
        """Loader over pool ``indices`` (default :meth:`scoring_indices`) yielding ``(inputs, dataset_indices)``."""
        indices = self.scoring_indices() if indices is None else _as_index_tensor("indices", indices)
        view = PoolView(self.pool_dataset, indices, self.input_fn)
        if not self._checked_pool_determinism and len(view):
            self._checked_pool_determinism = True
            self._warn_if_nondeterministic(view)
        return self._loader(view, self.pool_batch_size)

    @staticmethod
    def _warn_if_nondeterministic(view: PoolView) -> None:
        first, second = view[0][0], view[0][0]
        same = (
            torch.equal(first, second) if isinstance(first, Tensor) and isinstance(second, Tensor) else first == second
        )
        if not same:
            rank_zero_warn(
                "Reading the same pool item twice gave different inputs: the pool is read with random augmentation,"
                " which adds noise to the acquisition scores. Pass `pool_dataset` or `pool_overrides` to read it"
                " without augmentation."
            )

    def inputs_dataloader(self, dataset: Dataset, indices: Tensor | None = None) -> DataLoader:
        """Loader over ``dataset`` (or its ``indices``) yielding ``(inputs, indices)``, read with ``input_fn``.

        For MC and evaluation passes over data outside the pool: the validation or test set, or EPIG's targets.
        """
        if indices is None:
            indices = torch.arange(len(dataset))  # type: ignore[arg-type]
        return self._loader(PoolView(dataset, indices, self.input_fn), self.eval_batch_size)

    def eval_dataset(self, split: Literal["val", "test"]) -> Dataset:
        """The validation or test dataset; a clear error when the datamodule was given none."""
        dataset = {"val": self.val_dataset, "test": self.test_dataset}[split]
        if dataset is None:
            raise RuntimeError(f"This needs a `{split}_dataset` in the `ActiveDataModule`, but none was given.")
        return dataset

    def eval_targets(self, split: Literal["val", "test"]) -> Tensor:
        """Class labels of the validation or test set, read once (``item[1]`` or ``item["target"]``)."""
        if split not in self._eval_targets:
            dataset = self.eval_dataset(split)
            size = len(dataset)  # type: ignore[arg-type]
            # A `targets` attribute spares decoding every item just for its label.
            known = self._resolve_targets(None, dataset, size)
            self._eval_targets[split] = (
                known
                if known is not None
                else torch.tensor([int(target_of(dataset[i])) for i in range(size)], dtype=torch.long)
            )
        return self._eval_targets[split]

    def val_dataloader(self) -> DataLoader | list:
        """Loader over the validation dataset, or no loader when none was given."""
        return [] if self.val_dataset is None else self._loader(self.val_dataset, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader | list:
        """Loader over the test dataset, or no loader when none was given."""
        return [] if self.test_dataset is None else self._loader(self.test_dataset, self.eval_batch_size)

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
        annotated = sorted(self._annotations)
        return {
            "acquired_at": self.acquired_at.clone(),
            "acquisition_order": self.acquisition_order.clone(),
            "acquisition_probability": self.acquisition_probability.clone(),
            "seed": self.seed,
            "step": self._step,
            "generator_state": self.generator.get_state(),
            "annotation_indices": torch.tensor(annotated, dtype=torch.long),
            "annotation_values": torch.tensor([float(self._annotations[i]) for i in annotated], dtype=torch.float64),
            "annotation_is_int": [isinstance(self._annotations[i], int) for i in annotated],
            "pending_query": torch.tensor(self._pending_query, dtype=torch.long),
            "pool_subset": torch.tensor(self._pool_subset, dtype=torch.long),
            "pool_subset_step": self._pool_subset_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the labelled set, annotator labels, pending query and generator; refuses another dataset size."""
        acquired_at = state_dict["acquired_at"]
        if not isinstance(acquired_at, Tensor) or acquired_at.numel() != len(self):
            got = acquired_at.numel() if isinstance(acquired_at, Tensor) else type(acquired_at).__name__
            raise ValueError(
                f"Expected a state dict for a dataset of {len(self)} samples,"
                f" but got one with `acquired_at` of size {got}."
            )
        values = state_dict["annotation_values"].tolist()
        is_int = state_dict["annotation_is_int"]
        self.acquired_at = acquired_at.clone().long()
        # Keys added after the first release: older checkpoints load with nothing recorded.
        self.acquisition_order = state_dict.get(
            "acquisition_order", torch.full_like(self.acquired_at, _UNLABELLED)
        ).clone()
        self.acquisition_probability = state_dict.get(
            "acquisition_probability", torch.full(self.acquired_at.shape, float("nan"), dtype=torch.float64)
        ).clone()
        self._step = int(state_dict["step"])
        self.seed = int(state_dict.get("seed", self.seed))
        self.generator.set_state(state_dict["generator_state"])
        self._annotations = {
            i: int(v) if as_int else v
            for i, v, as_int in zip(state_dict["annotation_indices"].tolist(), values, is_int, strict=True)
        }
        self._pending_query = state_dict["pending_query"].tolist()
        self._pool_subset = state_dict["pool_subset"].tolist()
        self._pool_subset_step = int(state_dict["pool_subset_step"])
