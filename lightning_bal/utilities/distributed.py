"""Sharding the pool over ranks and gathering per-rank results of uneven length, through ``trainer.strategy``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["gather_rows", "gather_uneven", "shard", "stack_ranks"]


def shard(indices: Tensor, rank: int, world_size: int) -> Tensor:
    """The ``rank``-th of ``world_size`` disjoint strided shards of ``indices``; together they cover it exactly once.

    Unlike a ``DistributedSampler``, nothing is repeated to even out the shards, so no sample is scored twice.

    Examples:
        >>> [shard(torch.arange(5), r, 2).tolist() for r in range(2)]
        [[0, 2, 4], [1, 3]]
    """
    return indices[rank::world_size]


_MAX_DIMS = 8


def gather_uneven(strategy: Any, tensor: Tensor, world_size: int) -> Tensor:
    """Concatenate ``tensor`` (rows may differ per rank) from every rank, in rank order, on every rank.

    Rows are padded to the longest for ``all_gather``; an empty rank takes the trailing shape of one with rows.
    """
    # Not torchmetrics' `gather_all_tensors`: it uses torch.distributed's default group, not `strategy` (the
    # thread-ranks test harness has none), needs equal dims on every rank (an empty `torch.zeros(0)` shard aborts
    # gloo), and was not faster (`python -m benchmarks.gather`).
    if world_size == 1:
        return tensor
    if not 1 <= tensor.ndim <= _MAX_DIMS:
        raise ValueError(f"Expected a tensor with 1 to {_MAX_DIMS} dims to gather, but got {tensor.ndim}.")
    shape = torch.zeros(_MAX_DIMS + 1, dtype=torch.long, device=tensor.device)
    shape[0] = tensor.ndim
    shape[1 : tensor.ndim + 1] = torch.tensor(tensor.shape)
    shapes = strategy.all_gather(shape).reshape(world_size, -1).tolist()
    lengths = [rank_shape[1] for rank_shape in shapes]
    longest = max(lengths)
    if longest == 0:
        return tensor
    reference = next(rank_shape for rank_shape in shapes if rank_shape[1] > 0)
    trailing = tuple(reference[2 : reference[0] + 1])
    if tensor.shape[0] == 0:
        tensor = tensor.new_zeros((0, *trailing))
    padded = tensor.new_zeros((longest, *trailing))
    padded[: tensor.shape[0]] = tensor
    gathered = strategy.all_gather(padded)
    return torch.cat([gathered[r, :n] for r, n in enumerate(lengths)])


def stack_ranks(strategy: Any, tensor: Tensor, world_size: int) -> Tensor:
    """``[world_size, ...]``: ``tensor`` (same shape on every rank) from every rank, in rank order."""
    if world_size == 1:
        return tensor.unsqueeze(0)
    return strategy.all_gather(tensor).reshape(world_size, *tensor.shape)


def gather_rows(strategy: Any, tensor: Tensor, world_size: int, device: torch.device) -> Tensor:
    """Rows of every rank (uneven lengths allowed), concatenated in rank order, back on the CPU."""
    return gather_uneven(strategy, tensor.to(device), world_size).cpu()
