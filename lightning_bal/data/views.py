"""Dataset views the datamodule hands to dataloaders: D_L with annotator labels, and D_U with dataset indices."""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "LabelledView",
    "PoolView",
    "default_input_fn",
    "item_layout",
    "pool_view_of",
    "replace_target",
    "target_of",
    "warn_if_nondeterministic",
]


def default_input_fn(item: Any) -> Any:
    """Pick the model input out of a dataset item: the first element of a tuple/list, ``item["input"]`` of a mapping.

    Example:
        >>> default_input_fn((torch.tensor([1.0]), 3))
        tensor([1.])
    """
    if isinstance(item, (tuple, list)):
        return item[0]
    if isinstance(item, Mapping):
        return item["input"]
    return item


def item_layout(value: Any, shapes: bool = True) -> str:
    """What items must share to be batched together: the structure, and the kind, dtype and shape of each part.

    Numbers are ``int``, ``float`` or ``bool`` (numpy scalars included); tensors and arrays show their dtype and,
    with ``shapes``, their shape (a custom ``collate_fn`` may pad parts of different shapes). Tuples and lists are
    alike, and so are all mappings: the default collate batches them alike.

    Example:
        >>> item_layout((torch.zeros(2, 3), 1))
        '(tensor[2, 3] torch.float32, int)'
        >>> item_layout({"input": np.zeros(4, dtype=np.float32)}, shapes=False)
        "{'input': ndarray float32}"
    """
    if isinstance(value, Tensor):
        return f"tensor{list(value.shape) if shapes else ''} {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"ndarray{list(value.shape) if shapes else ''} {value.dtype}"
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
    """Pick the target out of a dataset item: the second element of a tuple/list, ``item["target"]`` of a mapping.

    Example:
        >>> target_of((torch.tensor([1.0]), 3))
        3
    """
    if isinstance(item, (tuple, list)) and len(item) > 1:
        return item[1]
    if isinstance(item, Mapping):
        return item["target"]
    raise TypeError(f"Expected a dataset item `(input, target, ...)` or a mapping with a `target`, but got {item!r}.")


def replace_target(item: Any, target: Any) -> Any:
    """Return ``item`` with its target replaced by an annotator's label.

    A ``(input, target, ...)`` tuple gets ``target`` in position 1, a mapping under ``"target"``; a bare input (a pool
    read from unlabelled data) becomes ``(input, target)``.

    Example:
        >>> replace_target((torch.tensor([1.0]), -1), 7)
        (tensor([1.]), 7)
    """
    if isinstance(item, (tuple, list)):
        if len(item) < 2:
            return type(item)([item[0], target]) if isinstance(item, list) else (item[0], target)
        replaced = list(item)
        # Match the dataset's own target type so batches that mix both collate into one tensor.
        original = replaced[1]
        replaced[1] = torch.as_tensor(target, dtype=original.dtype) if isinstance(original, Tensor) else target
        return type(item)(replaced) if isinstance(item, list) else tuple(replaced)
    if isinstance(item, Mapping):
        original = item.get("target")
        return {
            **item,
            "target": torch.as_tensor(target, dtype=original.dtype) if isinstance(original, Tensor) else target,
        }
    return (item, target)


class LabelledView(Dataset):
    """The labelled set D_L: ``indices`` of ``dataset``, with annotator labels taking precedence over the dataset's.

    With ``weights`` (float ``[N]``, by dataset index) each item is followed by its weight: ``(*item, weight)``.
    """

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
        if isinstance(pool_dataset, (str, bytes)) or not hasattr(pool_dataset, "__len__"):
            raise TypeError(
                "Expected argument `pool_dataset` to be a map-style dataset with `__len__` and `__getitem__`, but got"
                f" {type(pool_dataset).__name__}."
            )
        if len(pool_dataset) != len(train_dataset):  # type: ignore[arg-type]
            raise ValueError(
                f"Expected argument `pool_dataset` to hold the same {len(train_dataset)} samples as"  # type: ignore[arg-type]
                f" `train_dataset`, but got {len(pool_dataset)}."
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
