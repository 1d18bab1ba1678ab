"""Splitting a pool batch into runs of items whose K-sample outputs ``[b, K, ...]`` fit a memory budget."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lightning_utilities import apply_to_collection
from torch import Tensor

from lightning_bal.tasks import Task

__all__ = ["ItemChunker", "output_bytes", "slice_items"]


def slice_items(inputs: Any, start: int, stop: int, rows: int) -> Any:
    """Items ``start:stop`` of a batch of ``rows`` items: every tensor whose dim 0 is ``rows`` is sliced (nested).

    Example:
        >>> import torch
        >>> slice_items({"x": torch.arange(4), "scale": torch.tensor(2.0)}, 1, 3, 4)
        {'x': tensor([1, 2]), 'scale': tensor(2.)}
    """
    return apply_to_collection(inputs, Tensor, lambda x: x[start:stop] if x.dim() > 0 and x.shape[0] == rows else x)


def output_bytes(outputs: Any) -> int:
    """Bytes held by the tensors of a model's outputs (a tensor, or a collection of them).

    Example:
        >>> import torch
        >>> output_bytes((torch.zeros(2, 3), {"m": torch.zeros(4, dtype=torch.bool)}))
        28
    """
    sizes: list[int] = []
    apply_to_collection(outputs, Tensor, lambda x: sizes.append(x.numel() * x.element_size()))
    return sum(sizes)


class ItemChunker:
    """Runs a batch's K samples a few items at a time, so that no ``[b, K, ...]`` output exceeds ``budget`` bytes.

    The first item is run alone to measure one item's outputs (the floor: one item per run). A batch that fits is
    yielded whole, its runs joined by ``task.cat_items``. Masks depend on the sample, not on the batch, so results
    do not change.

    Example:
        >>> import torch
        >>> chunker = ItemChunker(budget=64)  # 64 bytes: two items of 8 float32 outputs each
        >>> run = lambda x, idx: x[:, None].expand(-1, 8).float()  # one "sample" row of 8 floats per item
        >>> [idx.tolist() for idx, _ in chunker.run(run, torch.arange(5), torch.arange(5))]
        [[0], [1, 2], [3, 4]]
    """

    def __init__(self, budget: int, task: Task | None = None) -> None:
        self.budget = budget
        self.task = Task() if task is None else task
        self.bytes_per_item: float | None = None

    def _items(self) -> int:
        assert self.bytes_per_item is not None
        return max(1, int(self.budget // max(1.0, self.bytes_per_item)))

    def run(self, sample: Callable[[Any, Tensor], Any], inputs: Any, indices: Tensor) -> Iterator[tuple[Tensor, Any]]:
        """Yield ``(indices [b], sample(inputs[b], indices[b]))`` over the batch, ``b`` items at a time."""
        rows = int(indices.shape[0])
        start, parts = 0, []
        if self.bytes_per_item is None:
            probe = sample(slice_items(inputs, 0, 1, rows), indices[:1])
            self.bytes_per_item = float(output_bytes(probe))
            if rows == 1 or self._items() < rows:
                yield indices[:1], probe
            else:
                parts.append(probe)
            start = 1 if rows else 0
        if start == 0 and self._items() >= rows:
            yield indices, sample(inputs, indices)
            return
        while start < rows:
            stop = min(rows, start + self._items())
            out = sample(slice_items(inputs, start, stop, rows), indices[start:stop])
            if parts:
                parts.append(out)
            else:
                yield indices[start:stop], out
            start = stop
        if parts:
            yield indices, self.task.cat_items(parts)
