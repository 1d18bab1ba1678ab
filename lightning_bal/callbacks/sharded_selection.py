"""What the pool pass reduces over ranks besides the selection: statistics of the pool's scores.

Each rank holds the scores of its own shard of the pool; the selection over ranks belongs to the heuristic
(:meth:`~lightning_bal.heuristics.Heuristic.select_sharded`). For logging and stopping, sum, count, max and min are
all-reduced, and a bounded strided sample of the scores is gathered for the histogram. Every function takes a
``strategy`` with ``all_gather`` (a Lightning strategy, or a stand-in in tests) and the world size; with one process
nothing is communicated and the same code runs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from lightning_bal.utilities.distributed import gather_rows, stack_ranks

__all__ = ["HISTOGRAM_SAMPLE", "PoolStatistics", "pool_statistics", "sort_by_index"]

#: Scores per pool kept for the logged histogram, over all ranks together.
HISTOGRAM_SAMPLE = 10_000


class PoolStatistics(NamedTuple):
    """Statistics of the scores of the whole pool, from all-reduced per-rank figures.

    Attributes:
        mean: mean score over every scored item.
        max: largest score.
        min: smallest score.
        sample: a bounded, strided sample of the scores (at most about ``HISTOGRAM_SAMPLE``) for a histogram.
    """

    mean: float
    max: float
    min: float
    sample: Tensor


def sort_by_index(indices: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """``(indices, scores)`` in ascending index order; no copy when they already are (the pool loader's order).

    Example:
        >>> sort_by_index(torch.tensor([3, 1]), torch.tensor([0.5, 0.25]))
        (tensor([1, 3]), tensor([0.2500, 0.5000]))
    """
    if indices.numel() < 2 or bool((indices[1:] > indices[:-1]).all()):
        return indices, scores
    order = torch.argsort(indices)
    return indices[order], scores[order]


# ---------------------------------------------------------------------------------------------------------- logging
def pool_statistics(
    strategy: Any, world_size: int, scores: Tensor, device: torch.device | None = None, sample: int = HISTOGRAM_SAMPLE
) -> PoolStatistics | None:
    """Mean, max and min of the scores of every rank (all-reduced), and a strided sample of them for a histogram.

    Returns ``None`` when no rank scored anything.

    Example:
        >>> stats = pool_statistics(None, 1, torch.arange(100.0), sample=10)
        >>> stats.mean, stats.max, stats.min, stats.sample.numel()
        (49.5, 99.0, 0.0, 10)
    """
    device = device or torch.device("cpu")
    empty = scores.numel() == 0
    figures = torch.tensor(
        [
            float(scores.sum(dtype=torch.float64)),
            float(scores.numel()),
            -torch.inf if empty else float(scores.max()),
            torch.inf if empty else float(scores.min()),
        ],
        dtype=torch.float64,
    )
    stacked = stack_ranks(strategy, figures.to(device), world_size).cpu()
    count = float(stacked[:, 1].sum())
    if count == 0:
        return None
    per_rank = -(-sample // world_size)
    stride = max(1, -(-scores.numel() // per_rank))
    kept = gather_rows(strategy, scores[::stride].float(), world_size, device)
    return PoolStatistics(
        float(stacked[:, 0].sum()) / count, float(stacked[:, 2].max()), float(stacked[:, 3].min()), kept
    )
