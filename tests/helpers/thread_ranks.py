"""Several ranks as threads of one process, for testing sharded selections without spawning processes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch

from lightning_bal.utilities.collective import Collective


class ThreadRanks:
    """``world_size`` ranks as threads: ``all_gather`` and ``broadcast`` through shared slots and a barrier."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=60)
        self.slots: list[Any] = [None] * world_size

    def strategy(self, rank: int) -> Any:
        ranks = self

        class Strategy:
            def all_gather(self, tensor):
                ranks.slots[rank] = tensor
                ranks.barrier.wait()
                out = torch.stack(list(ranks.slots))
                ranks.barrier.wait()
                return out

            def broadcast(self, obj, src):
                if rank == src:
                    ranks.slots[src] = obj
                ranks.barrier.wait()
                out = ranks.slots[src]
                ranks.barrier.wait()
                return out

        return Strategy()

    def run(self, fn: Callable[[int, Collective], Any]) -> list[Any]:
        """``fn(rank, collective)`` on every rank at once; the results in rank order (a rank's error is raised)."""
        results: list[Any] = [None] * self.world_size
        errors: list[BaseException] = []

        def target(rank: int) -> None:
            try:
                results[rank] = fn(rank, Collective(self.strategy(rank), rank, self.world_size))
            except BaseException as err:  # surfaced in the test's thread below
                errors.append(err)
                self.barrier.abort()

        threads = [threading.Thread(target=target, args=(rank,)) for rank in range(self.world_size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results
