r"""Cold-start selection when D_L is empty or tiny: TypiClust (Hacohen et al., 2022), ProbCover (Yehuda et al., 2022).

Both need no model predictions, only embeddings (the model's features, or self-supervised embeddings the user
supplies). Distances are computed in blocks of rows, so no N×N matrix is held; ProbCover keeps its δ-ball graph as
an edge list (memory O(edges)). TypiClust runs on the ranks' shards (k-means by per-cluster sums over ranks, one
cluster's rows gathered per pick); ProbCover's graph spans the whole pool, which the callback gathers for it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from lightning_bal.functional.diversity import (
    GreedySelection,
    check_finite,
    check_indices,
    check_seed,
    item_uniforms,
    kmeans_pp,
    min_sq_distances,
)
from lightning_bal.utilities.collective import Collective

__all__ = ["coverage", "kmeans", "probcover", "purity", "purity_radius", "typicality", "typiclust"]

_CHUNK = 2048
#: D_L's rows in TypiClust's clustering are numbered from here: past any dataset index, exact in float64.
_LABELLED_NUMBERS = 2**40


def _blocks(points: Tensor, others: Tensor) -> Iterator[tuple[int, Tensor]]:
    """``(row_start, squared distances [rows, M])`` of blocks of ``points`` to all ``others``."""
    other_norms = others.square().sum(1)
    for start in range(0, points.shape[0], _CHUNK):
        rows = points[start : start + _CHUNK]
        d2 = torch.addmm(rows.square().sum(1, keepdim=True) + other_norms, rows, others.T, alpha=-2.0)
        yield start, d2.clamp_min_(0.0)


def _as_points(name: str, points: Tensor) -> Tensor:
    if not isinstance(points, Tensor) or points.ndim < 2:
        got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"Expected argument `{name}` to be a tensor [N, D], but got {got}.")
    # Float64: distances from the |x|^2 + |y|^2 - 2 x.y expansion lose digits for near points in float32, and
    # typicality and the δ-ball graph are made of near points.
    return points.flatten(1).double()


def _indices(indices: Tensor | None, rows: int) -> Tensor:
    """Checked dataset indices on their own device (positions on the CPU, where the selections keep their books)."""
    return check_indices(indices, rows, indices.device if isinstance(indices, Tensor) else torch.device("cpu"))


def _checked(
    points: Tensor, query_size: int, labelled: Tensor | None, indices: Tensor | None, collective: Collective | None
) -> tuple[Tensor, Tensor, Tensor, Collective]:
    """A cold-start selection's checked inputs on this rank: float64 points and D_L, dataset indices, the collective."""
    points = _as_points("points", points)
    collective = collective or Collective()
    positions = indices is None
    indices = _indices(indices, len(points))
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
    total = int(collective.sum(len(points)))
    if isinstance(query_size, bool) or not isinstance(query_size, int) or not 0 <= query_size <= total:
        raise ValueError(f"Expected argument `query_size` to be an integer in [0, {total}], but got {query_size!r}.")
    check_finite("points", points, None if positions else indices, collective, "the pool embeddings")
    return points, labelled, indices, collective


def _with_labelled(points: Tensor, labelled: Tensor, indices: Tensor, collective: Collective) -> tuple[Tensor, Tensor]:
    """This rank's rows with D_L appended on rank zero only (so it counts once), numbered past any dataset index."""
    extra = labelled if collective.rank == 0 else labelled[:0]
    return torch.cat([points, extra]), torch.cat([indices, _LABELLED_NUMBERS + torch.arange(len(extra))])


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

    Under DDP each rank passes its shard of ``points`` (with their dataset ``indices``) and a ``collective``: the
    start is drawn by :func:`~lightning_bal.functional.diversity.kmeans_pp` over all ranks, and each iteration sums
    the clusters' rows over ranks (``k x D`` numbers); every rank gets its own rows' labels and the same centres.

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
        >>> labels, centres = kmeans(x, 2)
        >>> labels[0] == labels[1] != labels[2] == labels[3]
        tensor(True)
    """
    points = _as_points("points", points)
    collective = collective or Collective()
    positions = indices is None
    indices = _indices(indices, len(points))
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
        new = torch.cat([d2.argmin(1) for _, d2 in _blocks(points, centres)] or [labels])
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


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"Expected argument `k` to be a positive integer, but got {k!r}.")


def typicality(points: Tensor, k: int = 20) -> Tensor:
    r"""TypiClust's typicality: the inverse mean distance to the ``k`` nearest neighbours, ``[N]``.

    .. math:: \mathrm{Typicality}(x) = \Big(\frac1k \sum_{x_i \in \mathrm{kNN}(x)} \lVert x - x_i \rVert\Big)^{-1}

    With fewer than ``k + 1`` points, ``k`` is the number of other points; a lone point has typicality 1.

    Example:
        >>> typicality(torch.tensor([[0.0], [1.0], [3.0]]), k=1)
        tensor([1.0000, 1.0000, 0.5000])
    """
    points = _as_points("points", points)
    _check_k(k)
    check_finite("points", points)
    if len(points) == 1:
        return torch.ones(1)
    k = min(k, len(points) - 1)
    out = torch.empty(len(points))
    for start, d2 in _blocks(points, points):
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

    The pool and D_L are clustered by k-means into :math:`|D_L| + B` clusters; the clusters holding a labelled
    item are covered; then B times: the largest uncovered cluster gives its most typical item (:func:`typicality`
    within the cluster) and becomes covered. Ties go to the lower cluster number and the lower dataset index.

    Under DDP no rank holds the pool: k-means runs over the shards (:func:`kmeans`), and each pick gathers only the
    chosen cluster's rows, on which every rank computes the same typicalities.

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
    points, labelled, indices, collective = _checked(points, query_size, labelled, indices, collective)
    _check_k(k)
    check_seed(seed)
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


def purity(
    points: Tensor,
    pseudo_labels: Tensor,
    deltas: Tensor,
    *,
    collective: Collective | None = None,
) -> Tensor:
    r"""ProbCover's purity of each radius: the share of points whose δ-ball holds only their own pseudo-label, ``[R]``.

    Computed from each point's distance to the nearest point of another pseudo-label (the ball is pure iff that
    distance exceeds δ), in one blocked pass for all radii. Under DDP each rank passes its shard and a
    ``collective``: the shards visit every rank in turn, and the share is summed over ranks.

    Example:
        >>> purity(torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([0, 0, 1]), torch.tensor([0.5, 1.5, 2.5]))
        tensor([1.0000, 1.0000, 0.3333])
    """
    points = _as_points("points", points)
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
    deltas = _checked_deltas(deltas)
    collective = collective or Collective()
    impure = torch.full((len(points),), float("inf"), dtype=torch.float64)
    for others, other_labels in _each_rank(collective, points, pseudo_labels):
        for start, d2 in _blocks(points, others):
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

    Purity is taken w.r.t. a k-means clustering of ``points`` into ``num_classes`` clusters; if even the smallest
    radius fails, it is returned (as scikit-activeml does, which warns). Under DDP, ``points`` is this rank's shard
    (numbered by ``indices``), with a ``collective``.

    Example:
        >>> x = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
        >>> purity_radius(x, 2, deltas=torch.tensor([0.2, 1.0, 6.0]))
        1.0
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"Expected argument `num_classes` to be an integer >= 2 when `delta` is None, but got {num_classes!r}."
        )
    _check_alpha(alpha)
    points = _as_points("points", points)
    collective = collective or Collective()
    deltas = torch.arange(1, 11, dtype=torch.float64) * 0.2 if deltas is None else _checked_deltas(deltas).sort().values
    clusters = min(num_classes, int(collective.sum(len(points))))
    pseudo, _ = kmeans(points, clusters, seed=seed, indices=indices, collective=collective)
    failing = torch.nonzero(purity(points, pseudo, deltas, collective=collective) < alpha)
    last = (int(failing[0]) if failing.numel() else len(deltas)) - 1
    return float(deltas[max(last, 0)])


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        raise ValueError(f"Expected argument `alpha` to be a purity in (0, 1], but got {alpha!r}.")


def _checked_deltas(deltas: Tensor) -> Tensor:
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


def _each_rank(collective: Collective, rows: Tensor, labels: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """Every rank's ``(rows, labels)`` in turn, on every rank: one shard held at a time, never the whole pool."""
    for owner in range(collective.world_size):
        mine = owner == collective.rank
        shared = collective.share(torch.cat([rows, labels.double().unsqueeze(1)], 1) if mine else None, owner)
        yield shared[:, :-1], shared[:, -1].long()


def _count_within(points: Tensor, others: Tensor, delta: float) -> Tensor:
    """For each of ``points``, how many of ``others`` lie within ``delta`` ``[N]`` (blocked: no N×M matrix)."""
    counts = torch.zeros(len(points), dtype=torch.float64)
    for start in range(0, len(others), _CHUNK):
        for row, d2 in _blocks(points, others[start : start + _CHUNK]):
            counts[row : row + d2.shape[0]] += (d2 <= delta**2).sum(1)
    return counts


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
    pick (ties: the lower dataset index). Without ``delta``, the radius is the largest of ``deltas`` (ascending,
    stopping at the first failure) whose :func:`purity` w.r.t. a k-means clustering into ``num_classes`` clusters
    is at least ``alpha``, as in the paper and scikit-activeml.

    Under DDP no rank holds the pool: each rank counts its items' uncovered neighbours shard by shard (one shard
    held at a time), a pick is the best count over ranks, and only the points it newly covers (its ball) are
    gathered, so every rank can lower its counts. Counts are integers: one process and several pick the same.

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
    points, labelled, indices, collective = _checked(points, query_size, labelled, indices, collective)
    check_seed(seed)
    if delta is not None:
        _check_delta(delta)
    elif isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(
            f"Expected argument `num_classes` to be an integer >= 2 when `delta` is None, but got {num_classes!r}."
        )
    else:
        _check_alpha(alpha)
        if deltas is not None:
            _checked_deltas(deltas)
    if delta is None:
        # The radius is chosen on the pool and D_L together.
        everything, numbers = _with_labelled(points, labelled, indices, collective)
        delta = purity_radius(
            everything,
            num_classes,
            alpha=alpha,
            deltas=deltas,
            seed=seed,
            indices=numbers,
            collective=collective,
        )
    covered = (
        min_sq_distances(points, labelled) <= delta**2 if len(labelled) else torch.zeros(len(points), dtype=torch.bool)
    )
    counts = torch.zeros(len(points), dtype=torch.float64)
    for others, _ in _each_rank(collective, points[~covered], indices[~covered]):
        counts += _count_within(points, others, delta)
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
        counts -= _count_within(points, ball, delta)
        picked |= mine
        picks.append(index)
    return GreedySelection(torch.tensor(picks, dtype=torch.int64), torch.tensor(scores))


def coverage(points: Tensor, centres: Tensor, delta: float) -> Tensor:
    """ProbCover's objective: the share of ``points`` within ``delta`` of a centre.

    Example:
        >>> coverage(torch.tensor([[0.0], [1.0], [3.0]]), torch.tensor([[0.5]]), 0.5)
        tensor(0.6667)
    """
    points = _as_points("points", points)
    check_finite("points", points)
    check_finite("centres", _as_points("centres", centres))
    _check_delta(delta)
    return (min_sq_distances(points, centres) <= delta**2).float().mean()
