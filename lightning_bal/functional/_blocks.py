"""Squared distances between two sets of points in blocks of rows, so that no N×M matrix is held."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["count_within", "sq_distance_blocks"]

_CHUNK = 2048


def sq_distance_blocks(points: Tensor, others: Tensor) -> Iterator[tuple[int, Tensor]]:
    """``(row_start, squared distances [rows, M])`` of blocks of ``points`` to all ``others``."""
    other_norms = others.square().sum(1)
    for start in range(0, points.shape[0], _CHUNK):
        rows = points[start : start + _CHUNK]
        d2 = torch.addmm(rows.square().sum(1, keepdim=True) + other_norms, rows, others.T, alpha=-2.0)
        yield start, d2.clamp_min_(0.0)


def count_within(points: Tensor, others: Tensor, delta: float) -> Tensor:
    """For each of ``points``, how many of ``others`` lie within ``delta`` ``[N]`` (blocked: no N×M matrix)."""
    counts = torch.zeros(len(points), dtype=torch.float64)
    for start in range(0, len(others), _CHUNK):
        for row, d2 in sq_distance_blocks(points, others[start : start + _CHUNK]):
            counts[row : row + d2.shape[0]] += (d2 <= delta**2).sum(1)
    return counts
