"""The few collectives a greedy selection needs per pick: the best candidate over ranks, and one row from its owner."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_bal.utilities.distributed import gather_rows

__all__ = ["Collective"]


class Collective:
    """Cross-rank decisions through a strategy's ``all_gather`` and ``broadcast``; every rank calls every method.

    With ``strategy=None`` or one process the methods return their inputs, so both cases take one code path.

    Examples:
        >>> Collective().argmax(torch.tensor(2.5), torch.tensor(7))
        (2.5, 7, 0)
    """

    def __init__(self, strategy: Any = None, rank: int = 0, world_size: int = 1) -> None:
        if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"Expected argument `world_size` to be a positive integer, but got {world_size!r}.")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"Expected argument `rank` to be an integer in [0, {world_size}), but got {rank!r}.")
        if world_size > 1 and strategy is None:
            raise ValueError("Expected argument `strategy` for more than one process, but got None.")
        self.strategy = strategy
        self.rank = rank
        self.world_size = world_size

    @property
    def device(self) -> torch.device:
        """Where the strategy's collectives run."""
        return getattr(self.strategy, "root_device", torch.device("cpu"))

    def argmax(self, value: Tensor | float, index: Tensor | int) -> tuple[float, int, int]:
        """The largest ``value`` over ranks, with its ``index``; ties go to the lower index: ``(value, index, rank)``.

        A rank with no candidate passes ``value=-inf``. Values travel as float64, indices exactly up to 2**53.
        """
        local = torch.tensor([float(value), float(index), float(self.rank)], dtype=torch.float64)
        if self.world_size == 1:
            return float(local[0]), int(local[1]), 0
        rows = self.strategy.all_gather(local.to(self.device)).reshape(self.world_size, 3).cpu()
        best = rows[:, 0].max()
        tied = rows[rows[:, 0] == best]
        row = tied[torch.argmin(tied[:, 1])]
        return float(row[0]), int(row[1]), int(row[2])

    def sum(self, value: Tensor | float) -> float:
        """The sum of a scalar over ranks (float64)."""
        if self.world_size == 1:
            return float(value)
        local = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        return float(self.strategy.all_gather(local).sum())

    def all_sum(self, tensor: Tensor) -> Tensor:
        """The element-wise sum of a same-shape ``tensor`` over ranks, on every rank (for per-cluster sums)."""
        if self.world_size == 1:
            return tensor
        gathered = self.strategy.all_gather(tensor.to(self.device))
        return gathered.reshape(self.world_size, *tensor.shape).sum(0).to(tensor.device)

    def share(self, row: Tensor | None, owner: int) -> Tensor:
        """``row`` of rank ``owner`` on every rank (other ranks pass ``None``)."""
        if self.world_size == 1:
            if row is None:
                raise ValueError("Expected argument `row` on its owner rank, but got None.")
            return row
        shared = self.strategy.broadcast(row.cpu() if row is not None else None, src=owner)
        if not isinstance(shared, Tensor):
            raise RuntimeError(f"Expected rank {owner} to broadcast a tensor, but got {type(shared).__name__}.")
        return shared

    def gather_rows(self, rows: Tensor) -> Tensor:
        """Rows of every rank concatenated in rank order (uneven counts allowed): for small sets such as D_L."""
        return rows if self.world_size == 1 else gather_rows(self.strategy, rows, self.world_size, self.device)
