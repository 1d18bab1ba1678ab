"""Cold-start selection from embeddings alone: TypiClust (Hacohen et al., 2022) and ProbCover (Yehuda et al., 2022).

Both run on the ranks' shards with distances in blocks of rows, so no rank holds the pool or an N×N matrix. The
arguments they share with :mod:`~lightning_bal.functional.diversity` mean the same; ``labelled`` ``[M, D]`` holds the
embeddings of D_L, the same on every rank (``None`` or empty at a cold start). See docs/diversity.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from lightning_bal.functional._embedding_checks import check_finite, check_indices, check_rows
from lightning_bal.functional.diversity import (
    GreedySelection,
    count_within,
    item_uniforms,
    kmeans_pp,
    min_sq_distances,
    pick_best,
    sq_distance_blocks,
)
from lightning_bal.utilities.checks import check_python_int, is_integer_tensor
from lightning_bal.utilities.collective import Collective
from lightning_bal.utilities.seeding import check_seed

__all__ = ["coverage", "kmeans", "probcover", "purity", "purity_radius", "typicality", "typiclust"]

#: D_L's rows in TypiClust's clustering are numbered from here: past any dataset index, exact in float64.
_LABELLED_NUMBERS = 2**40


def _as_points(name: str, points: Tensor) -> Tensor:
    """``points`` ``[N, ...]`` (named ``name`` in errors) as float64 rows ``[N, D]``."""
    # Float64: the |x|^2 + |y|^2 - 2 x.y expansion loses digits for near points in float32, and typicality and the
    # δ-ball graph are made of near points.
    return check_rows(name, points).flatten(1).double()


def _check_cold_start(
    points: Tensor, query_size: int, labelled: Tensor | None, indices: Tensor | None, collective: Collective | None
) -> tuple[Tensor, Tensor, Tensor, Collective]:
    """A cold-start selection's checked inputs on this rank: float64 points and D_L, dataset indices, the collective."""
    points = _as_points("points", points)
    collective = collective or Collective()
    positions = indices is None
    indices = check_indices(indices, len(points))
    if labelled is not None and not isinstance(labelled, Tensor):
        raise TypeError(
            f"Expected argument `labelled` to be a tensor [M, D] or None, but got {type(labelled).__name__}."
        )
    labelled = points[:0] if labelled is None or labelled.numel() == 0 else _as_points("labelled", labelled)
    if labelled.shape[1] != points.shape[1]:
        raise ValueError(
            f"Expected argument `labelled` to have {points.shape[1]} columns like `points`, but got"
            f" {labelled.shape[1]}."
        )
    check_finite("labelled", labelled, what="the embeddings of D_L")
    check_python_int("query_size", query_size, 0, int(collective.sum(len(points))))
    check_finite("points", points, None if positions else indices, collective, "the pool embeddings")
    return points, labelled, indices, collective


def _with_labelled(points: Tensor, labelled: Tensor, indices: Tensor, collective: Collective) -> tuple[Tensor, Tensor]:
    """This rank's rows with D_L appended on rank zero only (so it counts once), numbered past any dataset index."""
    extra = labelled if collective.rank == 0 else labelled[:0]
    return torch.cat([points, extra]), torch.cat([indices, _LABELLED_NUMBERS + torch.arange(len(extra))])


def _check_deltas(deltas: Tensor) -> Tensor:
    """Candidate radii ``[R]`` as float64, in their order: at least one, each finite and positive."""
    if not isinstance(deltas, Tensor) or deltas.ndim != 1 or deltas.numel() == 0 or deltas.is_complex():
        got = tuple(deltas.shape) if isinstance(deltas, Tensor) else type(deltas).__name__
        raise ValueError(f"Expected argument `deltas` to be a non-empty tensor [R] of radii, but got {got}.")
    radii = deltas.double()
    if not bool((torch.isfinite(radii) & (radii > 0)).all()):
        raise ValueError(f"Expected argument `deltas` to be finite positive radii, but got {deltas.tolist()}.")
    return radii


def _check_delta(delta: float) -> None:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < float("inf"):
        raise ValueError(f"Expected argument `delta` to be a finite positive radius, but got {delta!r}.")


def kmeans(
    points: Tensor,
    num_clusters: int,
    *,
    seed: int = 0,
    max_iter: int = 100,
    indices: Tensor | None = None,
    collective: Collective | None = None,
) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means from a k-means++ start: ``(labels [N], centres [k, D])``, the same centres on every rank.

    Examples:
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
        >>> labels, centres = kmeans(x, 2)
        >>> labels[0] == labels[1] != labels[2] == labels[3]
        tensor(True)
    """
    points = _as_points("points", points)
    collective = collective or Collective()
    positions = indices is None
    indices = check_indices(indices, len(points))
    check_seed("seed", seed, optional=False)
    check_python_int("max_iter", max_iter, 1)
    check_python_int("num_clusters", num_clusters, 1, int(collective.sum(len(points))))
    check_finite("points", points, None if positions else indices, collective, "the pool embeddings")
    start = kmeans_pp(points, num_clusters, seed=seed, indices=indices, first="random", collective=collective).indices
    # The start's rows on every rank, in the order of `start` (each row is held by one rank).
    mine = torch.isin(indices, start)
    rows, held = collective.gather_rows(points[mine]), collective.gather_rows(indices[mine])
    centres = rows[torch.argsort(held)][torch.argsort(torch.argsort(start))]
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


def typicality(points: Tensor, k: int = 20) -> Tensor:
    r"""TypiClust's typicality: the inverse mean distance to the ``k`` nearest neighbours, ``[N]``.

    With fewer than ``k + 1`` points, ``k`` is the number of other points; a lone point has typicality 1.

    Examples:
        >>> typicality(torch.tensor([[0.0], [1.0], [3.0]]), k=1)
        tensor([1.0000, 1.0000, 0.5000])
    """
    points = _as_points("points", points)
    check_python_int("k", k, 1)
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

    Typicality is :func:`typicality` with ``k`` neighbours within the cluster; scores are the picks' typicalities. Ties
    go to the lower cluster number and dataset index (docs/diversity.md#cold-start-typiclust-and-probcover).

    Examples:
        >>> x = torch.tensor([[0.0], [0.2], [0.3], [0.35], [5.0], [5.1]])
        >>> typiclust(x, 2, k=1).indices
        tensor([2, 4])
    """
    points, labelled, indices, collective = _check_cold_start(points, query_size, labelled, indices, collective)
    check_python_int("k", k, 1)
    check_seed("seed", seed, optional=False)
    if query_size == 0:
        return GreedySelection(torch.empty(0, dtype=torch.int64), torch.empty(0))
    rows, row_indices = _with_labelled(points, labelled, indices, collective)
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
            _, index, _ = pick_best(collective, item_uniforms(seed, t, indices).masked_fill(picked, -1.0), indices)
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


def purity(points: Tensor, pseudo_labels: Tensor, deltas: Tensor, *, collective: Collective | None = None) -> Tensor:
    r"""ProbCover's purity of each radius: the share of points whose δ-ball holds only their own pseudo-label, ``[R]``.

    Examples:
        >>> purity(torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([0, 0, 1]), torch.tensor([0.5, 1.5, 2.5]))
        tensor([1.0000, 1.0000, 0.3333])
    """
    points = _as_points("points", points)
    if not is_integer_tensor(pseudo_labels) or pseudo_labels.shape != (len(points),):
        got: object = pseudo_labels
        if isinstance(pseudo_labels, Tensor):
            got = f"{tuple(pseudo_labels.shape)} {pseudo_labels.dtype}"
        raise ValueError(
            f"Expected argument `pseudo_labels` to be an integer tensor [{len(points)}] like `points`, but got {got}."
        )
    deltas = _check_deltas(deltas)
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
    fails, it is returned (as scikit-activeml does).

    Examples:
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
        >>> purity_radius(x, 2, deltas=torch.tensor([0.2, 1.0, 6.0]))
        1.0
    """
    num_classes, deltas = _check_radius_args(num_classes, alpha, deltas)
    points = _as_points("points", points)
    collective = collective or Collective()
    clusters = min(num_classes, int(collective.sum(len(points))))
    pseudo, _ = kmeans(points, clusters, seed=seed, indices=indices, collective=collective)
    failing = torch.nonzero(purity(points, pseudo, deltas, collective=collective) < alpha)
    last = (int(failing[0]) if failing.numel() else len(deltas)) - 1
    return float(deltas[max(last, 0)])


def _check_radius_args(num_classes: int | None, alpha: float, deltas: Tensor | None) -> tuple[int, Tensor]:
    classes = check_python_int("num_classes", num_classes, 2, expected="an integer >= 2 when `delta` is None")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        raise ValueError(f"Expected argument `alpha` to be a purity in (0, 1], but got {alpha!r}.")
    radii = torch.arange(1, 11, dtype=torch.float64) * 0.2 if deltas is None else _check_deltas(deltas).sort().values
    return classes, radii


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

    Without ``delta``, the radius is :func:`purity_radius` of the pool and D_L, with ``num_classes``, ``alpha``,
    ``deltas`` and ``seed``. Scores are the numbers of newly covered points; ties go to the lower dataset index.

    Examples:
        >>> x = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]])
        >>> probcover(x, 2, delta=0.15)
        GreedySelection(indices=tensor([1, 3]), scores=tensor([3., 2.]))
    """
    points, labelled, indices, collective = _check_cold_start(points, query_size, labelled, indices, collective)
    check_seed("seed", seed, optional=False)
    if delta is not None:
        _check_delta(delta)
    else:
        _check_radius_args(num_classes, alpha, deltas)
        everything, numbers = _with_labelled(points, labelled, indices, collective)
        delta = purity_radius(
            everything, num_classes, alpha=alpha, deltas=deltas, seed=seed, indices=numbers, collective=collective
        )
    covered = min_sq_distances(points, labelled) <= delta**2  # nothing is covered without D_L: distances are inf
    counts = torch.zeros(len(points), dtype=torch.float64)
    for others, _ in _each_rank(collective, points[~covered], indices[~covered]):
        counts += count_within(points, others, delta)
    picked = torch.zeros(len(points), dtype=torch.bool)
    picks, scores = [], []
    for _ in range(query_size):
        _, index, owner = pick_best(collective, counts.masked_fill(picked, -1.0), indices)
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

    Examples:
        >>> coverage(torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([[0.5]]), 0.5)
        tensor(0.6667)
    """
    points = _as_points("points", points)
    check_finite("points", points)
    check_finite("centres", _as_points("centres", centres))
    _check_delta(delta)
    return (min_sq_distances(points, centres) <= delta**2).float().mean()
