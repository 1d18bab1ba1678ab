"""Dataset views and samplers the datamodule hands to dataloaders: D_L with annotator labels, D_U with dataset indices.

See docs/scale.md#reading-the-pool-a-batch-at-a-time for a pool read a batch per indexing op.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, TensorDataset

from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = [
    "BatchedPoolView",
    "ChunkSampler",
    "EpochShuffleSampler",
    "LabelledView",
    "PoolView",
    "ResumableLoader",
    "batched_inputs",
    "batched_loader",
    "default_input_fn",
    "item_layout",
    "map_style_size",
    "pool_view_of",
    "replace_target",
    "target_of",
    "warn_if_nondeterministic",
]


def map_style_size(name: str, dataset: Any) -> int:
    """The length of a map-style dataset, refusing anything else (a string has ``__len__`` and ``__getitem__``)."""
    if isinstance(dataset, (str, bytes)) or not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"Expected argument `{name}` to be a map-style dataset with `__len__` and `__getitem__`, but got"
            f" {type(dataset).__name__}."
        )
    return len(dataset)


def default_input_fn(item: Any) -> Any:
    """Pick the model input out of a dataset item: the first element of a tuple/list, ``item["input"]`` of a mapping."""
    if isinstance(item, (tuple, list)):
        return item[0]
    if isinstance(item, Mapping):
        return item["input"]
    return item


def item_layout(value: Any, shapes: bool = True) -> str:
    """What items must share to be batched together: the structure, and the kind, dtype and shape of each part.

    Tuples and lists are alike, and so are all mappings; without ``shapes`` (a custom ``collate_fn`` may pad parts of
    different shapes) tensors and arrays show only their dtype.
    """
    if isinstance(value, (Tensor, np.ndarray)):
        kind = "tensor" if isinstance(value, Tensor) else "ndarray"
        return f"{kind}{list(value.shape) if shapes else ''} {value.dtype}"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, numbers.Real):
        return "float"
    if isinstance(value, (tuple, list)):
        return f"({', '.join(item_layout(part, shapes) for part in value)})"
    if isinstance(value, Mapping):
        parts = ", ".join(f"{key!r}: {item_layout(value[key], shapes)}" for key in sorted(value, key=str))
        return f"{{{parts}}}"
    return type(value).__name__


def target_of(item: Any) -> Any:
    """Pick the target out of a dataset item: the second element of a tuple/list, ``item["target"]`` of a mapping."""
    if isinstance(item, (tuple, list)) and len(item) > 1:
        return item[1]
    if isinstance(item, Mapping):
        return item["target"]
    raise TypeError(f"Expected a dataset item `(input, target, ...)` or a mapping with a `target`, but got {item!r}.")


def replace_target(item: Any, target: Any) -> Any:
    """``item`` with its target (position 1, or ``"target"``) replaced; a bare input becomes ``(input, target)``."""

    def like(original: Any) -> Any:
        # Match the dataset's own target type so batches that mix both collate into one tensor.
        return torch.as_tensor(target, dtype=original.dtype) if isinstance(original, Tensor) else target

    if isinstance(item, Mapping):
        return {**item, "target": like(item.get("target"))}
    if not isinstance(item, (tuple, list)):
        return (item, target)
    replaced = [item[0], like(item[1]) if len(item) > 1 else target, *item[2:]]
    return type(item)(replaced) if isinstance(item, list) else tuple(replaced)


class LabelledView(Dataset):
    """D_L: ``indices`` of ``dataset``, annotator labels first; with ``weights`` (``[N]``) items are ``(*item, w)``."""

    def __init__(
        self, dataset: Dataset, indices: Tensor, annotations: Mapping[int, Any], weights: Tensor | None = None
    ) -> None:
        self.dataset = dataset
        self.indices = indices.tolist()
        self.annotations = dict(annotations)
        self.weights = None if weights is None else weights.float()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> Any:
        index = self.indices[position]
        item = self.dataset[index]
        if index in self.annotations:
            item = replace_target(item, self.annotations[index])
        if self.weights is None:
            return item
        weight = self.weights[index]
        if isinstance(item, Mapping):
            return {**item, "weight": weight}
        return (*item, weight) if isinstance(item, (tuple, list)) else (item, weight)


class PoolView(Dataset):
    """The pool D_U (or a shard of it): yields ``(input, dataset_index)`` so every score keeps its absolute index."""

    def __init__(self, dataset: Dataset, indices: Tensor, input_fn: Callable[[Any], Any]) -> None:
        self.dataset = dataset
        self.indices = indices.tolist()
        self.input_fn = input_fn

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[Any, Tensor]:
        index = self.indices[position]
        return self.input_fn(self.dataset[index]), torch.tensor(index, dtype=torch.long)


def pool_view_of(
    train_dataset: Dataset, pool_dataset: Dataset | None, pool_overrides: Mapping[str, Any] | None
) -> Dataset:
    """The dataset the pool is read from: ``pool_dataset``, else ``train_dataset`` with ``pool_overrides`` set."""
    if pool_dataset is not None:
        size, pool_size = len(train_dataset), map_style_size("pool_dataset", pool_dataset)  # type: ignore[arg-type]
        if pool_size != size:
            raise ValueError(
                f"Expected argument `pool_dataset` to hold the same {size} samples as `train_dataset`, but got"
                f" {pool_size}."
            )
        return pool_dataset
    if pool_overrides is not None and not isinstance(pool_overrides, Mapping):
        raise TypeError(
            f"Expected argument `pool_overrides` to be a mapping of attribute names to values, but got"
            f" {type(pool_overrides).__name__}."
        )
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


def warn_if_nondeterministic(view: PoolView) -> None:
    """Warn once if reading the same pool item twice gives different inputs (random augmentation)."""
    first, second = view[0][0], view[0][0]
    same = torch.equal(first, second) if isinstance(first, Tensor) and isinstance(second, Tensor) else first == second
    if not same:
        rank_zero_warn(
            "Reading the same pool item twice gave different inputs: the pool is read with random augmentation,"
            " which adds noise to the acquisition scores. Pass `pool_dataset` or `pool_overrides` to read it"
            " without augmentation."
        )


class ChunkSampler(Sampler[slice]):
    """Consecutive ``slice`` objects of at most ``batch_size`` positions covering ``range(length)`` once, in order."""

    def __init__(self, length: int, batch_size: int) -> None:
        self.length = length
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-self.length // self.batch_size)

    def __iter__(self) -> Iterator[slice]:
        return (
            slice(start, min(start + self.batch_size, self.length)) for start in range(0, self.length, self.batch_size)
        )


def batched_inputs(dataset: Dataset, input_fn: Callable[[Any], Any]) -> Tensor | np.ndarray | None:
    """The one tensor or array whose rows are the inputs of ``dataset``, or ``None`` (also for a custom input_fn)."""
    if input_fn is not default_input_fn:
        return None
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0]
    if isinstance(dataset, (Tensor, np.ndarray)) and dataset.ndim >= 1:
        return dataset
    return None


class BatchedPoolView(Dataset):
    """Rows ``indices`` of ``inputs`` (tensor, array or memmap): ``view[slice]`` is ``(inputs [B, ...], indices [B])``.

    Examples:
        >>> view = BatchedPoolView(torch.arange(10.0).reshape(5, 2), torch.tensor([4, 1, 3]))
        >>> view[0:2]
        (tensor([[8., 9.],
                [2., 3.]]), tensor([4, 1]))
    """

    def __init__(self, inputs: Tensor | np.ndarray, indices: Tensor, dataset: Dataset | None = None) -> None:
        self.inputs = inputs
        self.indices = indices.to(torch.int64)
        self.dataset = dataset

    def __len__(self) -> int:
        return self.indices.numel()

    def __getitem__(self, position: int | slice) -> tuple[Tensor, Tensor]:
        indices = self.indices[position]
        if isinstance(self.inputs, Tensor):
            return self.inputs[indices], indices
        rows = self.inputs[indices.numpy()]
        return torch.from_numpy(np.ascontiguousarray(rows)), indices


def _as_is(batch: Any) -> Any:
    return batch


def batched_loader(
    dataset: Dataset,
    indices: Tensor,
    input_fn: Callable[[Any], Any],
    batch_size: int,
    num_workers: int = 0,
    generator: torch.Generator | None = None,
) -> DataLoader | None:
    """A loader of ``(inputs [B, ...], dataset_indices [B])`` over ``indices``, each batch in one read, or ``None``."""
    inputs = batched_inputs(dataset, input_fn)
    if inputs is None:
        return None
    view = BatchedPoolView(inputs, indices, dataset)
    return DataLoader(
        view,
        sampler=ChunkSampler(len(view), batch_size),
        batch_size=None,
        collate_fn=_as_is,
        num_workers=num_workers,
        generator=generator,
    )


class EpochShuffleSampler(Sampler[int]):
    """Shuffle ``range(length)`` anew each epoch from ``(seed, epoch)`` only, optionally to a fixed epoch size.

    With ``num_samples`` above ``length`` an epoch chains fresh permutations (``RandomSampler``'s draw).

    Examples:
        >>> drawn = list(EpochShuffleSampler(2, seed=0, num_samples=5))
        >>> len(drawn), sorted(set(drawn)), drawn == list(EpochShuffleSampler(2, seed=0, num_samples=5))
        (5, [0, 1], True)
    """

    def __init__(self, length: int, seed: int, num_samples: int | None = None, epoch: int = 0) -> None:
        self.length = length
        self.seed = seed
        self.num_samples = max(length, num_samples or 0)
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        # Not a plain `RandomSampler(generator=...)`: that one draws each epoch from wherever its generator stopped,
        # a state no checkpoint holds, so a resumed run would shuffle differently. A generator seeded from
        # (seed, epoch) at every iteration makes the order a function of those two alone.
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, Stream.SHUFFLE))
        return iter(RandomSampler(range(self.length), num_samples=self.num_samples, generator=generator))


class ResumableLoader(DataLoader):
    """A ``DataLoader`` that Lightning can resume in the middle of an epoch, skipping the ``trained_batches()``.

    Examples:
        >>> loader = ResumableLoader(list(range(6)), batch_size=2, trained_batches=lambda: 2)
        >>> state = loader.state_dict()
        >>> loader.load_state_dict(state)
        >>> [b.tolist() for b in loader], len([b for b in loader])
        ([[4, 5]], 3)
    """

    def __init__(self, *args: Any, trained_batches: Callable[[], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trained_batches = trained_batches
        self._skip = 0

    def state_dict(self) -> dict[str, int]:
        """How many batches of the current epoch have been trained (0 once the epoch's batches are all trained)."""
        trained = 0 if self.trained_batches is None else int(self.trained_batches())
        # After the last batch Lightning starts the next epoch, whose new loader must not skip anything.
        return {"trained_batches": trained if trained < len(self) else 0}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Skip the trained batches in the next iteration."""
        self._skip = int(state_dict.get("trained_batches", 0))

    def __iter__(self) -> Any:
        iterator = super().__iter__()
        skip, self._skip = self._skip, 0
        # The skipped batches are read and dropped: any sampler (a distributed one included) keeps its own order.
        for _ in range(skip):
            next(iterator, None)
        return iterator
