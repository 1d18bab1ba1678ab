"""The train loader's order: a shuffle that depends only on the seed and the epoch, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler, Sampler

from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = ["EpochShuffleSampler", "ResumableLoader"]


class EpochShuffleSampler(Sampler[int]):
    """Shuffle ``range(length)`` anew each epoch from ``(seed, epoch)`` only, optionally to a fixed epoch size.

    With ``num_samples`` above ``length`` an epoch chains fresh permutations (``RandomSampler``'s draw).

    Example:
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

    Example:
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
