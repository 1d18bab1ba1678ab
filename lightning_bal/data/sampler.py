"""A shuffling sampler whose order depends only on a seed and the epoch Lightning sets on it."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = ["EpochShuffleSampler"]


class EpochShuffleSampler(Sampler[int]):
    """Shuffle ``range(length)`` anew each epoch from ``(seed, epoch)`` only, optionally to a fixed epoch size.

    With ``num_samples`` larger than ``length``, an epoch chains fresh permutations until ``num_samples`` indices are
    drawn: a labelled set of 20 samples still gets enough optimiser steps per epoch (BatchBALD's experiments train
    on a fixed 5,056 samples per epoch the same way).

    The datamodule builds it with the trainer's current epoch, and Lightning calls ``set_epoch`` before every
    training epoch (as for a ``DistributedSampler``), so a run resumed from a checkpoint sees the same batches as an
    uninterrupted one, whatever the global RNG did in between.

    Example:
        >>> sampler = EpochShuffleSampler(5, seed=0)
        >>> first = list(sampler)
        >>> sorted(first), first == list(sampler)
        ([0, 1, 2, 3, 4], True)
        >>> sampler.set_epoch(1)
        >>> sorted(sampler) == sorted(first)
        True
        >>> drawn = list(EpochShuffleSampler(2, seed=0, num_samples=5))
        >>> len(drawn), sorted(set(drawn))
        (5, [0, 1])
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
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch, Stream.SHUFFLE))
        rounds = -(-self.num_samples // self.length)
        order = torch.cat([torch.randperm(self.length, generator=generator) for _ in range(rounds)])
        return iter(order[: self.num_samples].tolist())
