"""A shuffling sampler whose order depends only on a seed and the epoch Lightning sets on it."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["EpochShuffleSampler"]


class EpochShuffleSampler(Sampler[int]):
    """Shuffle ``range(length)`` anew each epoch from ``(seed, epoch)`` only.

    Lightning calls ``set_epoch`` before every training epoch (as for a ``DistributedSampler``), so a run resumed from
    a checkpoint sees the same batches as an uninterrupted one, whatever the global RNG did in between.

    Example:
        >>> sampler = EpochShuffleSampler(5, seed=0)
        >>> first = list(sampler)
        >>> sorted(first), first == list(sampler)
        ([0, 1, 2, 3, 4], True)
        >>> sampler.set_epoch(1)
        >>> sorted(sampler) == sorted(first)
        True
    """

    def __init__(self, length: int, seed: int) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % 2**62)
        return iter(torch.randperm(self.length, generator=generator).tolist())
