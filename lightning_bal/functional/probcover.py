"""ProbCover (Yehuda et al., 2022): greedy maximum coverage of the pool by δ-balls, with its radius and objective.

It needs only embeddings. No rank holds the δ-ball graph: each counts its items' neighbours one shard at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from lightning_bal.functional._embedding_checks import (
    as_points,
    check_alpha,
    check_cold_start,
    check_delta,
    check_deltas,
    check_finite,
    check_seed,
    with_labelled,
)
from lightning_bal.functional.diversity import GreedySelection, count_within, min_sq_distances, sq_distance_blocks
from lightning_bal.functional.typiclust import kmeans
from lightning_bal.utilities.collective import Collective

__all__ = ["coverage", "probcover", "purity", "purity_radius"]


def purity(points: Tensor, pseudo_labels: Tensor, deltas: Tensor, *, collective: Collective | None = None) -> Tensor:
    r"""ProbCover's purity of each radius: the share of points whose δ-ball holds only their own pseudo-label, ``[R]``.

    A ball is pure iff the nearest point of another pseudo-label is farther than δ: one blocked pass for all radii.
    Under DDP each rank passes its shard and a ``collective``.

    Example:
        >>> purity(torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([0, 0, 1]), torch.tensor([0.5, 1.5, 2.5]))
        tensor([1.0000, 1.0000, 0.3333])
    """
    points = as_points("points", points)
    if (
        not isinstance(pseudo_labels, Tensor)
        or pseudo_labels.shape != (len(points),)
        or pseudo_labels.is_floating_point()
        or pseudo_labels.is_complex()
    ):
        got = (
            f"{tuple(pseudo_labels.shape)} {pseudo_labels.dtype}"
            if isinstance(pseudo_labels, Tensor)
            else pseudo_labels
        )
        raise ValueError(
            f"Expected argument `pseudo_labels` to be an integer tensor [{len(points)}] like `points`, but got {got}."
        )
    deltas = check_deltas(deltas)
    collective = collective or Collective()
    impure = torch.full((len(points),), float("inf"), dtype=torch.float64)
    for others, other_labels in _each_rank(collective, points, pseudo_labels):
        for start, d2 in sq_distance_blocks(points, others):
            same = pseudo_labels[start : start + d2.shape[0]].unsqueeze(1) == other_labels.unsqueeze(0)
            nearest = d2.masked_fill(same, float("inf")).min(1).values.sqrt() if d2.shape[1] else impure[:0]
            rows = slice(start, start + d2.shape[0])
            impure[rows] = torch.minimum(impure[rows], nearest)
    pure = (impure.unsqueeze(0) > deltas.double().unsqueeze(1)).double().sum(1)
    return (collective.all_sum(pure) / collective.sum(len(points))).float()


def purity_radius(
    points: Tensor,
    num_classes: int | None,
    *,
    alpha: float = 0.95,
    deltas: Tensor | None = None,
    seed: int = 0,
    indices: Tensor | None = None,
    collective: Collective | None = None,
) -> float:
    """ProbCover's radius: the largest of ``deltas`` (ascending, up to the first that fails) with purity >= ``alpha``.

    Purity is w.r.t. a k-means clustering of ``points`` into ``num_classes`` clusters; if even the smallest radius
    fails, it is returned (as scikit-activeml does). Under DDP, pass this rank's shard, ``indices`` and a collective.

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
        >>> purity_radius(x, 2, deltas=torch.tensor([0.2, 1.0, 6.0]))
        1.0
    """
    num_classes, deltas = _check_radius_args(num_classes, alpha, deltas)
    points = as_points("points", points)
    collective = collective or Collective()
    clusters = min(num_classes, int(collective.sum(len(points))))
    pseudo, _ = kmeans(points, clusters, seed=seed, indices=indices, collective=collective)
    failing = torch.nonzero(purity(points, pseudo, deltas, collective=collective) < alpha)
    last = (int(failing[0]) if failing.numel() else len(deltas)) - 1
    return float(deltas[max(last, 0)])


def _check_radius_args(num_classes: int | None, alpha: float, deltas: Tensor | None) -> tuple[int, Tensor]:
    """The purity test's checked ``num_classes`` and radii, ascending (default: scikit-activeml's)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"Expected argument `num_classes` to be an integer >= 2 when `delta` is None, but got {num_classes!r}."
        )
    check_alpha(alpha)
    radii = torch.arange(1, 11, dtype=torch.float64) * 0.2 if deltas is None else check_deltas(deltas).sort().values
    return num_classes, radii


def _each_rank(collective: Collective, rows: Tensor, labels: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """Every rank's ``(rows, labels)`` in turn, on every rank: one shard held at a time, never the whole pool."""
    for owner in range(collective.world_size):
        mine = owner == collective.rank
        shared = collective.share(torch.cat([rows, labels.double().unsqueeze(1)], 1) if mine else None, owner)
        yield shared[:, :-1], shared[:, -1].long()


def probcover(
    points: Tensor,
    query_size: int,
    *,
    labelled: Tensor | None = None,
    delta: float | None = None,
    num_classes: int | None = None,
    alpha: float = 0.95,
    deltas: Tensor | None = None,
    seed: int = 0,
    indices: Tensor | None = None,
    collective: Collective | None = None,
) -> GreedySelection:
    r"""ProbCover: greedy maximum coverage of the pool by δ-balls around the picks.

    Each pick is the item whose δ-ball holds the most points not yet covered by a ball of D_L or of an earlier
    pick (ties: the lower dataset index). Without ``delta``, the radius is :func:`purity_radius` of the pool and D_L.
    Under DDP a pick is the best count over ranks, and only its ball is gathered; counts are integers, so one process
    and several pick the same.

    Args:
        points: ``[N, D]`` pool embeddings (this rank's shard under DDP).
        query_size: number of picks (over all ranks).
        labelled: ``[M, D]`` embeddings of D_L, the same on every rank (``None`` or empty at a cold start).
        delta: the ball radius; ``None`` to choose it by purity.
        num_classes: clusters of the purity test (needed when ``delta`` is ``None``).
        alpha: the purity required.
        deltas: candidate radii (default ``0.2, 0.4, ..., 2.0``, scikit-activeml's).
        seed: seeds the k-means of the purity test.
        indices: ``[N]`` dataset indices of the rows (default: positions).
        collective: cross-rank decisions; ``None`` for one process.

    Returns:
        :class:`~lightning_bal.functional.diversity.GreedySelection` of dataset indices and the number of newly
        covered points of each pick.

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]])
        >>> probcover(x, 2, delta=0.15)
        GreedySelection(indices=tensor([1, 3]), scores=tensor([3., 2.]))
    """
    points, labelled, indices, collective = check_cold_start(points, query_size, labelled, indices, collective)
    check_seed(seed)
    if delta is not None:
        check_delta(delta)
    else:
        _check_radius_args(num_classes, alpha, deltas)
        everything, numbers = with_labelled(points, labelled, indices, collective)
        delta = purity_radius(
            everything, num_classes, alpha=alpha, deltas=deltas, seed=seed, indices=numbers, collective=collective
        )
    covered = (
        min_sq_distances(points, labelled) <= delta**2 if len(labelled) else torch.zeros(len(points), dtype=torch.bool)
    )
    counts = torch.zeros(len(points), dtype=torch.float64)
    for others, _ in _each_rank(collective, points[~covered], indices[~covered]):
        counts += count_within(points, others, delta)
    picked = torch.zeros(len(points), dtype=torch.bool)
    picks, scores = [], []
    for _ in range(query_size):
        keys = counts.masked_fill(picked, -1.0)
        best = keys.max() if len(keys) else torch.tensor(float("-inf"))
        number = indices[keys == best].min() if len(keys) else torch.tensor(0)
        _, index, owner = collective.argmax(best, number)
        mine = indices == index
        centre = collective.share(points[mine][0] if owner == collective.rank else None, owner)
        new = ~covered & (min_sq_distances(points, centre.unsqueeze(0)) <= delta**2)
        ball = collective.gather_rows(points[new])
        scores.append(float(len(ball)))
        covered |= new
        counts -= count_within(points, ball, delta)
        picked |= mine
        picks.append(index)
    return GreedySelection(torch.tensor(picks, dtype=torch.int64), torch.tensor(scores))


def coverage(points: Tensor, centres: Tensor, delta: float) -> Tensor:
    """ProbCover's objective: the share of ``points`` within ``delta`` of a centre.

    Example:
        >>> coverage(torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([[0.5]]), 0.5)
        tensor(0.6667)
    """
    points = as_points("points", points)
    check_finite("points", points)
    check_finite("centres", as_points("centres", centres))
    check_delta(delta)
    return (min_sq_distances(points, centres) <= delta**2).float().mean()
