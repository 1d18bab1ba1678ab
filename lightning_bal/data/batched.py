"""Reading a pool a whole batch at a time: one indexing op per batch for tensor- and array-backed datasets.

Item-by-item reading and collating costs more than the model for 10^6 small inputs. A memmap is read only where the
batch's rows lie, so a pool larger than memory streams from disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from lightning_bal.data.views import default_input_fn

__all__ = ["BatchedPoolView", "ChunkSampler", "batched_inputs", "batched_loader"]


class ChunkSampler(Sampler[slice]):
    """Consecutive ``slice`` objects of at most ``batch_size`` positions covering ``range(length)`` once, in order.

    Example:
        >>> list(ChunkSampler(5, 2))
        [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """

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
    """The one tensor or array whose rows are the inputs of ``dataset``, or ``None`` when there is none.

    Only with the default ``input_fn``: a custom one may compute the input from the item, which needs the item.

    Example:
        >>> inputs = torch.randn(4, 3)
        >>> batched_inputs(TensorDataset(inputs, torch.zeros(4)), default_input_fn) is inputs
        True
        >>> batched_inputs([(1, 2)], default_input_fn) is None
        True
    """
    if input_fn is not default_input_fn:
        return None
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[0]
    if isinstance(dataset, (Tensor, np.ndarray)) and dataset.ndim >= 1:
        return dataset
    return None


class BatchedPoolView(Dataset):
    """Rows ``indices`` of ``inputs`` read a batch at a time: ``view[slice]`` is ``(inputs [B, ...], indices [B])``.

    ``view[position]`` reads one row (as the item-by-item views do), so the view also works with a plain loader.

    Args:
        inputs: the input rows of the whole dataset: a tensor, a numpy array or a numpy memmap.
        indices: int64 dataset indices of the rows to read, in reading order.
        dataset: the dataset the rows belong to (kept as :attr:`dataset`, as the item-by-item view does).

    Example:
        >>> view = BatchedPoolView(torch.arange(10.0).reshape(5, 2), torch.tensor([4, 1, 3]))
        >>> view[0:2]
        (tensor([[8., 9.],
                [2., 3.]]), tensor([4, 1]))
        >>> len(view), view[2][1]
        (3, tensor(3))
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
    """A loader of ``(inputs [B, ...], dataset_indices [B])`` over ``indices`` reading each batch in one op.

    Returns ``None`` when the inputs of ``dataset`` are not one tensor or array (see :func:`batched_inputs`): the
    caller then reads item by item.

    Example:
        >>> data = TensorDataset(torch.arange(10.0).reshape(5, 2), torch.zeros(5))
        >>> [idx.tolist() for _, idx in batched_loader(data, torch.tensor([0, 2, 4]), default_input_fn, 2)]
        [[0, 2], [4]]
    """
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
