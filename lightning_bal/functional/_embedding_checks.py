"""Input checks of the selections (k-means++, k-center, TypiClust, ProbCover, BatchBALD, ICAL) and objectives."""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_bal.functional._validation import check_log_probs
from lightning_bal.utilities.checks import check_int_in_range, check_python_int, is_integer_tensor
from lightning_bal.utilities.collective import Collective

__all__ = [
    "as_points",
    "check_batch_inputs",
    "check_bool",
    "check_cold_start",
    "check_delta",
    "check_deltas",
    "check_finite",
    "check_generator",
    "check_indices",
    "check_objective",
    "check_pool",
    "check_rows",
    "check_seed",
    "float_rows",
    "with_labelled",
]

#: D_L's rows in TypiClust's clustering are numbered from here: past any dataset index, exact in float64.
_LABELLED_NUMBERS = 2**40


def check_bool(name: str, value: bool) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"Expected argument `{name}` to be a bool, but got {value!r}.")


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


def check_seed(seed: int) -> None:
    """Refuse a ``seed`` that is not an integer (the draws hash its bits)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"Expected argument `seed` to be an integer, but got {seed!r}.")


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


def check_pool(
    embeddings: Tensor, query_size: int, indices: Tensor | None, collective: Collective | None
) -> tuple[Tensor, Collective]:
    """A greedy selection's checked ``embeddings`` and ``query_size``; returns its dataset indices and collective."""
    if not isinstance(embeddings, Tensor) or embeddings.ndim < 1:
        raise ValueError(f"Expected argument `embeddings` to be a tensor [N, D], but got {type(embeddings).__name__}.")
    check_python_int("query_size", query_size, 0)
    numbers = check_indices(indices, embeddings.shape[0], embeddings.device)
    collective = collective or Collective()
    check_finite("embeddings", float_rows(embeddings), indices, collective)
    if query_size > int(collective.sum(len(embeddings))):
        raise ValueError(f"Expected argument `query_size` to be at most the pool size, but got {query_size}.")
    return numbers, collective


def float_rows(tensor: Tensor) -> Tensor:
    """``tensor`` ``[N, ...]`` (or ``[N]``) as float32 rows ``[N, D]``."""
    return tensor.flatten(1).float() if tensor.ndim > 1 else tensor.float().unsqueeze(1)


def check_objective(points: Tensor, centres: Tensor) -> None:
    """An objective of NaN or inf rows would be NaN or inf itself: refuse them, naming the row."""
    check_finite("points", check_rows("points", points))
    check_finite("centres", check_rows("centres", centres))


def check_rows(name: str, points: Tensor) -> Tensor:
    """Refuse ``points`` (named ``name``) unless a tensor ``[N, D, ...]``; return it as it is."""
    if not isinstance(points, Tensor) or points.ndim < 2:
        got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"Expected argument `{name}` to be a tensor [N, D], but got {got}.")
    return points


def as_points(name: str, points: Tensor) -> Tensor:
    """``points`` ``[N, ...]`` (named ``name`` in errors) as float64 rows ``[N, D]``."""
    # Float64: the |x|^2 + |y|^2 - 2 x.y expansion loses digits for near points in float32, and typicality and the
    # δ-ball graph are made of near points.
    return check_rows(name, points).flatten(1).double()


def check_cold_start(
    points: Tensor, query_size: int, labelled: Tensor | None, indices: Tensor | None, collective: Collective | None
) -> tuple[Tensor, Tensor, Tensor, Collective]:
    """A cold-start selection's checked inputs on this rank: float64 points and D_L, dataset indices, the collective."""
    points = as_points("points", points)
    collective = collective or Collective()
    positions = indices is None
    indices = check_indices(indices, len(points))
    if labelled is not None and not isinstance(labelled, Tensor):
        raise TypeError(
            f"Expected argument `labelled` to be a tensor [M, D] or None, but got {type(labelled).__name__}."
        )
    labelled = points[:0] if labelled is None or labelled.numel() == 0 else as_points("labelled", labelled)
    if labelled.shape[1] != points.shape[1]:
        raise ValueError(
            f"Expected argument `labelled` to have {points.shape[1]} columns like `points`, but got"
            f" {labelled.shape[1]}."
        )
    check_finite("labelled", labelled, what="the embeddings of D_L")
    check_python_int("query_size", query_size, 0, int(collective.sum(len(points))))
    check_finite("points", points, None if positions else indices, collective, "the pool embeddings")
    return points, labelled, indices, collective


def with_labelled(points: Tensor, labelled: Tensor, indices: Tensor, collective: Collective) -> tuple[Tensor, Tensor]:
    """This rank's rows with D_L appended on rank zero only (so it counts once), numbered past any dataset index."""
    extra = labelled if collective.rank == 0 else labelled[:0]
    return torch.cat([points, extra]), torch.cat([indices, _LABELLED_NUMBERS + torch.arange(len(extra))])


def check_deltas(deltas: Tensor) -> Tensor:
    """Candidate radii ``[R]`` as float64, in their order: at least one, each finite and positive."""
    if not isinstance(deltas, Tensor) or deltas.ndim != 1 or deltas.numel() == 0 or deltas.is_complex():
        got = tuple(deltas.shape) if isinstance(deltas, Tensor) else type(deltas).__name__
        raise ValueError(f"Expected argument `deltas` to be a non-empty tensor [R] of radii, but got {got}.")
    radii = deltas.double()
    if not bool((torch.isfinite(radii) & (radii > 0)).all()):
        raise ValueError(f"Expected argument `deltas` to be finite positive radii, but got {deltas.tolist()}.")
    return radii


def check_delta(delta: float) -> None:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < float("inf"):
        raise ValueError(f"Expected argument `delta` to be a finite positive radius, but got {delta!r}.")
