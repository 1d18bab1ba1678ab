"""Sharding the pool over ranks and gathering per-rank results of uneven length, through ``trainer.strategy``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["gather_uneven", "shard"]


def shard(indices: Tensor, rank: int, world_size: int) -> Tensor:
    """The ``rank``-th of ``world_size`` disjoint strided shards of ``indices``; together they cover it exactly once.

    Unlike a ``DistributedSampler``, nothing is repeated to even out the shards, so no sample is scored twice.

    Example:
        >>> [shard(torch.arange(5), r, 2).tolist() for r in range(2)]
        [[0, 2, 4], [1, 3]]
    """
    return indices[rank::world_size]


def gather_uneven(strategy: Any, tensor: Tensor, world_size: int) -> Tensor:
    """Concatenate ``tensor`` (rows may differ per rank) from every rank, in rank order, on every rank.

    ``strategy.all_gather`` needs equal shapes, so each rank pads its rows to the longest and the padding is dropped
    after the gather using the gathered lengths. With one process this returns ``tensor`` unchanged.
    """
    if world_size == 1:
        return tensor
    length = torch.tensor([tensor.shape[0]], device=tensor.device)
    lengths = strategy.all_gather(length).reshape(-1).tolist()
    longest = max(lengths)
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = strategy.all_gather(padded)
    return torch.cat([gathered[r, :n] for r, n in enumerate(lengths)])
