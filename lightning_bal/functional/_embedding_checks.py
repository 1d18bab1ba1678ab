"""Input checks of the selections (k-means++, k-center, TypiClust, ProbCover, BatchBALD, ICAL)."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_bal.functional._validation import check_log_probs
from lightning_bal.utilities.checks import check_int_in_range, is_integer_tensor
from lightning_bal.utilities.collective import Collective

__all__ = [
    "check_batch_inputs",
    "check_finite",
    "check_generator",
    "check_indices",
    "check_rows",
]


def check_generator(generator: torch.Generator | None) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"Expected argument `generator` to be a torch.Generator or None, but got {generator!r}.")


def check_batch_inputs(log_probs: Tensor, query_size: int, generator: torch.Generator | None) -> int:
    """A batch-aware selection's ``[N, K, C]`` log-probabilities and generator; returns ``query_size`` as an int."""
    check_log_probs(log_probs, needs_mc_samples=True)
    if log_probs.ndim != 3:
        raise ValueError(
            f"Expected argument `log_probs` to have shape [N, K, C], but got shape {tuple(log_probs.shape)}."
        )
    check_generator(generator)
    return check_int_in_range("query_size", query_size, 0, log_probs.shape[0])


def check_indices(indices: Tensor | None, rows: int, device: torch.device | None = None) -> Tensor:
    """One distinct non-negative dataset index per row as int64 on ``device`` (default: theirs; positions: the CPU)."""
    if indices is None:
        return torch.arange(rows, device=device or torch.device("cpu"))
    if not is_integer_tensor(indices) or indices.dtype == torch.bool:
        got = f"dtype {indices.dtype}" if isinstance(indices, Tensor) else type(indices).__name__
        raise TypeError(f"Expected argument `indices` to be an integer tensor of dataset indices, but got {got}.")
    if indices.shape != (rows,):
        raise ValueError(
            f"Expected argument `indices` to have shape [{rows}] like `embeddings`, but got {tuple(indices.shape)}."
        )
    if rows and int(indices.min()) < 0:
        raise ValueError(
            f"Expected argument `indices` to be non-negative dataset indices, but got {int(indices.min())}."
        )
    values, counts = torch.unique(indices, return_counts=True)
    if bool((counts > 1).any()):
        repeated = values[counts > 1][:5].tolist()
        raise ValueError(f"Expected argument `indices` to be distinct dataset indices, but got {repeated} repeated.")
    return indices.to(device=device, dtype=torch.int64)


def check_finite(
    name: str, rows: Tensor, indices: Tensor | None = None, collective: Collective | None = None, what: str = ""
) -> None:
    """Refuse ``rows`` ``[N, D]`` holding NaN or inf, naming the first such row (its dataset index with ``indices``)."""
    bad = ~torch.isfinite(rows.flatten(1) if rows.ndim > 1 else rows.unsqueeze(1)).all(1)
    numbers = torch.arange(rows.shape[0], device=rows.device) if indices is None else indices.to(rows.device)
    first = int(numbers[bad].min()) if bool(bad.any()) else 2**53
    # Every rank agrees on the error: one raising alone would leave the others waiting in a collective.
    collective = collective or Collective()
    found, first, _ = collective.argmax(1.0 if first < 2**53 else 0.0, first)
    if found > 0:
        count = int(collective.sum(int(bad.sum())))
        where = "row" if indices is None else "the row of dataset index"
        raise ValueError(
            f"Expected argument `{name}`{f' ({what})' if what else ''} to be finite, but {where} {first} holds NaN or"
            f" inf ({count} such rows)."
        )


def check_rows(name: str, points: Tensor) -> Tensor:
    """Refuse ``points`` (named ``name``) unless a tensor ``[N, D, ...]``; return it as it is."""
    if not isinstance(points, Tensor) or points.ndim < 2:
        got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"Expected argument `{name}` to be a tensor [N, D], but got {got}.")
    return points
