"""TypiClust (Hacohen et al., 2022): the most typical item of each of the largest clusters that D_L leaves uncovered.

It needs only embeddings, and runs on the ranks' shards: k-means by per-cluster sums, one cluster gathered per pick.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightning_bal.functional._embedding_checks import (
    as_points,
    check_cold_start,
    check_finite,
    check_k,
    check_seed,
    pool_indices,
    with_labelled,
)
from lightning_bal.functional.diversity import GreedySelection, item_uniforms, kmeans_pp, sq_distance_blocks
from lightning_bal.utilities.collective import Collective

__all__ = ["kmeans", "typicality", "typiclust"]


def kmeans(
    points: Tensor,
    num_clusters: int,
    *,
    seed: int = 0,
    max_iter: int = 100,
    indices: Tensor | None = None,
    collective: Collective | None = None,
) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means from a k-means++ start: ``(labels [N], centres [k, D])``, seeded and deterministic.

    Under DDP each rank passes its shard of ``points``, their dataset ``indices`` and a ``collective``; every rank
    gets its own rows' labels and the same centres.

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
        >>> labels, centres = kmeans(x, 2)
        >>> labels[0] == labels[1] != labels[2] == labels[3]
        tensor(True)
    """
    points = as_points("points", points)
    collective = collective or Collective()
    positions = indices is None
    indices = pool_indices(indices, len(points))
    check_seed(seed)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"Expected argument `max_iter` to be a positive integer, but got {max_iter!r}.")
    total = int(collective.sum(len(points)))
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, int) or not 1 <= num_clusters <= total:
        raise ValueError(
            f"Expected argument `num_clusters` to be an integer in [1, {total}], but got {num_clusters!r}."
        )
    check_finite("points", points, None if positions else indices, collective, "the pool embeddings")
    start = kmeans_pp(points, num_clusters, seed=seed, indices=indices, first="random", collective=collective).indices
    centres = _rows_by_index(points, indices, start, collective)
    labels = torch.full((len(points),), -1, dtype=torch.int64)
    for _ in range(max_iter):
        new = torch.cat([d2.argmin(1) for _, d2 in sq_distance_blocks(points, centres)] or [labels])
        if collective.sum(int((new != labels).sum())) == 0:
            break
        labels = new
        sums = collective.all_sum(torch.zeros_like(centres).index_add_(0, labels, points))
        counts = collective.all_sum(torch.bincount(labels, minlength=num_clusters).double())
        filled = counts > 0  # an empty cluster keeps its centre
        centres[filled] = sums[filled] / counts[filled].unsqueeze(1)
    return labels, centres


def _rows_by_index(points: Tensor, indices: Tensor, wanted: Tensor, collective: Collective) -> Tensor:
    """The rows of dataset indices ``wanted``, in that order, on every rank (each held by one rank)."""
    mine = torch.isin(indices, wanted)
    rows, held = collective.gather_rows(points[mine]), collective.gather_rows(indices[mine])
    return rows[torch.argsort(held)][torch.argsort(torch.argsort(wanted))]


def typicality(points: Tensor, k: int = 20) -> Tensor:
    r"""TypiClust's typicality: the inverse mean distance to the ``k`` nearest neighbours, ``[N]``.

    .. math:: \mathrm{Typicality}(x) = \Big(\frac1k \sum_{x_i \in \mathrm{kNN}(x)} \lVert x - x_i \rVert\Big)^{-1}

    With fewer than ``k + 1`` points, ``k`` is the number of other points; a lone point has typicality 1.

    Example:
        >>> typicality(torch.tensor([[0.0], [1.0], [3.0]]), k=1)
        tensor([1.0000, 1.0000, 0.5000])
    """
    points = as_points("points", points)
    check_k(k)
    check_finite("points", points)
    if len(points) == 1:
        return torch.ones(1)
    k = min(k, len(points) - 1)
    out = torch.empty(len(points))
    for start, d2 in sq_distance_blocks(points, points):
        rows = torch.arange(d2.shape[0])
        d2[rows, rows + start] = float("inf")  # the point itself is not its own neighbour
        nearest = torch.topk(d2, k, dim=1, largest=False).values.sqrt().sum(1)
        out[start : start + d2.shape[0]] = (1.0 / (nearest / k + 1e-7)).float()
    return out


def typiclust(
    points: Tensor,
    query_size: int,
    *,
    labelled: Tensor | None = None,
    k: int = 20,
    seed: int = 0,
    indices: Tensor | None = None,
    collective: Collective | None = None,
) -> GreedySelection:
    r"""TypiClust (TPC-RP): the most typical item of each of the largest clusters that hold no labelled item.

    The pool and D_L are clustered by k-means into :math:`|D_L| + B` clusters, those holding a labelled item are
    covered, then B times the largest uncovered cluster gives its most typical item (:func:`typicality` within the
    cluster) and becomes covered. Ties go to the lower cluster number and the lower dataset index.

    Args:
        points: ``[N, D]`` pool embeddings (this rank's shard under DDP).
        query_size: B, the number of picks (over all ranks).
        labelled: ``[M, D]`` embeddings of D_L, the same on every rank (``None`` or empty at a cold start).
        k: neighbours in the typicality (20 in the paper; scikit-activeml's default is 5).
        seed: seeds the k-means start.
        indices: ``[N]`` dataset indices of the rows (default: positions).
        collective: cross-rank decisions; ``None`` for one process.

    Returns:
        :class:`~lightning_bal.functional.diversity.GreedySelection` of dataset indices and their typicality.

    Example:
        >>> x = torch.tensor([[0.0], [0.2], [0.3], [0.35], [5.0], [5.1]])
        >>> typiclust(x, 2, k=1).indices
        tensor([2, 4])
    """
    points, labelled, indices, collective = check_cold_start(points, query_size, labelled, indices, collective)
    check_k(k)
    check_seed(seed)
    if query_size == 0:
        return GreedySelection(torch.empty(0, dtype=torch.int64), torch.empty(0))
    rows, row_indices = with_labelled(points, labelled, indices, collective)
    num_clusters = len(labelled) + query_size  # at most the rows clustered: query_size <= the pool
    labels, _ = kmeans(rows, num_clusters, seed=seed, indices=row_indices, collective=collective)
    pool_labels = labels[: len(points)]
    sizes = collective.all_sum(torch.bincount(labels, minlength=num_clusters).double())
    covered = collective.all_sum(torch.bincount(labels[len(points) :], minlength=num_clusters).double()) > 0
    sizes[covered] = 0.0
    picked = torch.zeros(len(points), dtype=torch.bool)
    picks, scores = [], []
    for t in range(query_size):
        cluster = int(torch.argmax(sizes))
        mine = (pool_labels == cluster) & ~picked
        members, member_indices = collective.gather_rows(points[mine]), collective.gather_rows(indices[mine])
        if sizes[cluster] <= 0 or member_indices.numel() == 0:
            # No uncovered cluster left (empty clusters): a uniform pick among the rest.
            keys = item_uniforms(seed, t, indices).masked_fill(picked, -1.0)
            best = int(keys.argmax()) if len(keys) else None
            key, number = (float("-inf"), 0) if best is None else (keys[best], indices[best])
            _, index, _ = collective.argmax(key, number)
            score = float("nan")
        else:
            order = torch.argsort(member_indices)  # as with one process: typicality's ties go to the lower index
            typical = typicality(members[order], k)
            best = int(torch.argmax(typical))
            index, score = int(member_indices[order][best]), float(typical[best])
        sizes[cluster] = 0.0
        picked |= indices == index
        picks.append(index)
        scores.append(score)
    return GreedySelection(torch.tensor(picks, dtype=torch.int64), torch.tensor(scores))
