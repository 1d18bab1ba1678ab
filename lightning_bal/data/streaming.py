"""Pools streamed from litdata chunks: stable global indices, each rank reading a contiguous range of chunks.

A ``litdata.StreamingDataset`` is an iterable that shards itself over the ranks it detects, and its ``len`` is the
share of the calling rank. The datamodule needs the opposite: one index per item, the same on every rank (the
ledger's ids), and the pool split over ranks by the callback. :class:`StreamedDataset` gives that view: its length
is the number of items in the chunks, ``dataset[i]`` reads item ``i`` wherever it runs, and :func:`chunk_shard`
hands each rank a contiguous block of the pool, so that a rank reads its own chunks, in order, and no other.
See docs/multi_node.md#streamed-pools.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from lightning_bal.utilities.checks import as_index_tensor, check_int_in_range, check_positive_int, describe

__all__ = ["StreamedDataset", "as_streamed", "chunk_shard", "is_streamed", "is_streaming_dataset"]


def is_streaming_dataset(dataset: Any) -> bool:
    """Whether ``dataset`` is a ``litdata.StreamingDataset`` (checked without importing litdata)."""
    return any(
        cls.__name__ == "StreamingDataset" and cls.__module__.startswith("litdata") for cls in type(dataset).__mro__
    )


class StreamedDataset(Dataset):
    """A ``litdata.StreamingDataset`` read by global item index, the same on every rank.

    Args:
        source: a ``litdata.StreamingDataset``, or the directory or URL of chunks written by ``litdata.optimize``
            (read with ``litdata.StreamingDataset(source)``).

    Attributes:
        chunk_starts: ``[C + 1]`` the first index of every chunk, then the length: chunk ``c`` holds the items
            ``chunk_starts[c]`` to ``chunk_starts[c + 1] - 1``.
    """

    def __init__(self, source: Any) -> None:
        if isinstance(source, str):
            if not source.strip():
                raise ValueError("Expected argument `source` to be a litdata folder or URL, but got an empty string.")
            try:
                from litdata import StreamingDataset
            except ImportError as err:
                raise ImportError("A streamed pool needs litdata: `pip install 'lightning_bal[streaming]'`.") from err
            try:
                source = StreamingDataset(source)
            except (FileNotFoundError, ValueError) as err:
                raise FileNotFoundError(
                    f"Expected argument `source` to name a folder of litdata chunks (with its index.json), but"
                    f" {source!r} holds none: {err}"
                ) from err
        if not is_streaming_dataset(source):
            raise TypeError(
                "Expected argument `source` to be a litdata.StreamingDataset or the directory of its chunks, but got"
                f" {type(source).__name__}."
            )
        if getattr(source, "window_direct_io", False):
            raise ValueError(
                "Expected argument `source` to read items one at a time, but it was built with `window_direct_io=True`,"
                " which litdata reads only by window."
            )
        self.dataset = source
        # The region of interest is each chunk's (first, end) item: subsampled datasets keep part of a chunk.
        sizes = [end - start for start, end in source.region_of_interest]
        self.chunk_starts = torch.tensor([0, *sizes], dtype=torch.long).cumsum(0)
        # A plain int: every read checks its index against it.
        self._length = int(self.chunk_starts[-1])

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Any:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"Expected an item index (an integer), but got {index!r}.")
        if not 0 <= index < len(self):
            raise IndexError(f"Expected an item index in [0, {len(self)}), but got {index}.")
        return self.dataset[int(index)]

    def chunk_of(self, indices: Any) -> Tensor:
        """The chunk holding each of ``indices`` (item indices)."""
        indices = as_index_tensor("indices", indices)
        outside = indices[(indices < 0) | (indices >= len(self))]
        if outside.numel():
            raise ValueError(
                f"Expected argument `indices` to hold item indices in [0, {len(self)}), but got {describe(outside)}."
            )
        return torch.searchsorted(self.chunk_starts, indices, right=True) - 1

    def __repr__(self) -> str:
        return f"StreamedDataset({len(self)} items in {self.chunk_starts.numel() - 1} chunks)"


def as_streamed(dataset: Any) -> Any:
    """``dataset`` as a map-style dataset of all its items: a ``StreamingDataset`` is wrapped, anything else kept."""
    return StreamedDataset(dataset) if is_streaming_dataset(dataset) else dataset


def is_streamed(dataset: Dataset) -> bool:
    """Whether ``dataset`` reads items from chunks: a :class:`StreamedDataset`, or a concatenation holding one."""
    if isinstance(dataset, ConcatDataset):
        return any(is_streamed(part) for part in dataset.datasets)
    return isinstance(dataset, StreamedDataset)


def chunk_shard(indices: Tensor, rank: int, world_size: int) -> Tensor:
    """The ``rank``-th of ``world_size`` contiguous blocks of ascending ``indices``, sized as the strided shards.

    Rank ``r`` gets as many items as ``indices[r::world_size]`` holds (so both splits balance alike), but in one
    block: over a streamed pool the ranks read disjoint ranges of chunks, each in chunk order.

    Examples:
        >>> [chunk_shard(torch.arange(5), r, 2).tolist() for r in range(2)]
        [[0, 1, 2], [3, 4]]
    """
    world_size = check_positive_int("world_size", world_size)
    rank = check_int_in_range("rank", rank, 0, world_size - 1)
    if (
        not isinstance(indices, Tensor)
        or indices.ndim != 1
        or indices.is_floating_point()
        or indices.dtype == torch.bool
    ):
        raise TypeError(f"Expected argument `indices` to be a 1-D integer tensor, but got {_describe(indices)}.")
    if indices.numel() > 1 and bool((indices[1:] < indices[:-1]).any()):
        raise ValueError("Expected argument `indices` to be ascending (chunk order), but it is not sorted.")
    return torch.tensor_split(indices, world_size)[rank]


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {value.ndim}-D tensor of {value.dtype}"
    return type(value).__name__
