r"""Diversity by greedy selection on embeddings: BADGE's k-means++ seeding and Core-Set's greedy k-center.

Both keep one number per pool item (its distance to the nearest centre so far) and add one centre per pick, so a
pick costs O(N·D) and memory stays O(N·D): no N×N matrix. Both run unchanged across ranks: each rank keeps its own
shard of the embeddings and distances, and a pick needs only the best candidate of each rank
(:meth:`~lightning_bal.utilities.collective.Collective.argmax`) and the winner's row
(:meth:`~lightning_bal.utilities.collective.Collective.share`). Random draws are hashed from ``(seed, pick, dataset
index)``, so the selection does not depend on how the pool is sharded.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from lightning_bal.functional._embedding_checks import (
    check_centres,
    check_finite,
    check_objective,
    check_pool,
    check_seed,
)
from lightning_bal.utilities.collective import Collective
from lightning_bal.utilities.hashing import hash_uniform32

__all__ = [
    "GreedySelection",
    "covering_radius",
    "item_uniforms",
    "k_center_greedy",
    "kmeans_pp",
    "kmeans_potential",
    "min_sq_distances",
]

_M32 = 0xFFFFFFFF
#: Rows per chunk when distances are computed against many centres at once (bounds the temporary [rows, centres]).
_CHUNK = 4096
#: Items first brought up to date per k-center pick (see ``_LazyDistances``).
_LAZY_START = 64


class GreedySelection(NamedTuple):
    """Picks of a greedy selection, in order.

    Attributes:
        indices: int64 ``[q]`` dataset indices (positions when no ``indices`` were given), the same on every rank.
        scores: ``[q]`` the criterion of each pick when it was made: its squared distance to the nearest earlier
            centre for k-means++ (its squared norm for the first pick), its distance to the nearest centre for
            k-center (``inf`` for a first pick without centres).
    """

    indices: Tensor
    scores: Tensor


def item_uniforms(seed: int, counter: int, indices: Tensor) -> Tensor:
    """Uniform numbers in (0, 1), float64 ``[N]``, hashed from ``(seed, counter, dataset index)``: shard-independent.

    Example:
        >>> u = item_uniforms(0, 1, torch.arange(5))
        >>> bool(((u > 0) & (u < 1)).all()), torch.equal(u[3:], item_uniforms(0, 1, torch.tensor([3, 4])))
        (True, True)
    """
    check_seed(seed)
    if isinstance(counter, bool) or not isinstance(counter, int):
        raise TypeError(f"Expected argument `counter` to be an integer, but got {counter!r}.")
    if not isinstance(indices, Tensor) or indices.is_floating_point() or indices.is_complex():
        got = f"dtype {indices.dtype}" if isinstance(indices, Tensor) else type(indices).__name__
        raise TypeError(f"Expected argument `indices` to be an integer tensor of dataset indices, but got {got}.")
    idx = indices.to(torch.int64)
    h = torch.zeros_like(idx)
    for word in (seed & _M32, (seed >> 32) & _M32, counter & _M32):
        h = hash_uniform32(h.bitwise_xor_(word), 1)[..., 0]
    for column in (idx & _M32, idx >> 32):
        h = hash_uniform32(h.bitwise_xor_(column), 1)[..., 0]
    return (h.double() + 0.5) / 2.0**32


class _Points:
    """Pool embeddings with squared distances to one centre: Euclidean, or between factored gradient embeddings."""

    def __init__(self, embeddings: Tensor, num_classes: int | None) -> None:
        self.x = embeddings.flatten(1).float() if embeddings.ndim > 1 else embeddings.float().unsqueeze(1)
        self.num_classes = num_classes
        self.x2: Tensor | None = None
        if num_classes is not None and len(self) > 0:
            if not 0 < num_classes < self.x.shape[1]:
                raise ValueError(
                    f"Expected argument `num_classes` in [1, {self.x.shape[1] - 1}] for factored embeddings of"
                    f" {self.x.shape[1]} columns, but got {num_classes}."
                )
            self.a, self.h = self.x[:, :num_classes], self.x[:, num_classes:]
            self.a2, self.h2 = self.a.square().sum(1), self.h.square().sum(1)

    def __len__(self) -> int:
        return self.x.shape[0]

    def sq_norms(self) -> Tensor:
        if len(self) == 0:
            return self.x.new_empty(0)
        return self.a2 * self.h2 if self.num_classes is not None else self.x.square().sum(1)

    def sq_dist(self, centre: Tensor) -> Tensor:
        if len(self) == 0:
            return self.x.new_empty(0)
        if self.num_classes is not None:
            a, h = centre[: self.num_classes], centre[self.num_classes :]
            cross = (self.a @ a) * (self.h @ h)
            return (self.a2 * self.h2 + a.square().sum() * h.square().sum() - 2.0 * cross).clamp_min_(0.0)
        # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: one matrix-vector product, reading the embeddings once.
        if self.x2 is None:
            self.x2 = self.x.square().sum(1)
        return torch.addmv(self.x2 + centre.square().sum(), self.x, centre, alpha=-2.0).clamp_min_(0.0)


def min_sq_distances(points: Tensor, centres: Tensor) -> Tensor:
    """Squared Euclidean distance of each of ``points [N, D]`` to its nearest of ``centres [M, D]``, ``[N]``.

    Computed in chunks of rows and centres, so memory stays O((N + M) D); ``inf`` when there are no centres.

    Example:
        >>> min_sq_distances(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 1.0]]))
        tensor([ 1., 18.])
    """
    if not isinstance(points, Tensor) or points.ndim < 2:
        got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"Expected argument `points` to be a tensor [N, D], but got {got}.")
    if not isinstance(centres, Tensor):
        raise TypeError(f"Expected argument `centres` to be a tensor [M, D], but got {type(centres).__name__}.")
    points = points.flatten(1).float()
    out = torch.full((points.shape[0],), float("inf"), device=points.device)
    if centres.numel() == 0:
        return out
    if centres.ndim < 2 or centres[0].numel() != points.shape[1]:
        raise ValueError(
            f"Expected argument `centres` to be a tensor [M, {points.shape[1]}] like `points`, but got"
            f" {tuple(centres.shape)}."
        )
    centres = centres.flatten(1).float().to(points.device)
    centre_norms = centres.square().sum(1)
    for start in range(0, points.shape[0], _CHUNK):
        rows = points[start : start + _CHUNK]
        row_norms = rows.square().sum(1, keepdim=True)
        best = out[start : start + _CHUNK]
        for c_start in range(0, centres.shape[0], _CHUNK):
            block = centres[c_start : c_start + _CHUNK]
            # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: one GEMM per block.
            d2 = torch.addmm(row_norms + centre_norms[c_start : c_start + _CHUNK], rows, block.T, alpha=-2.0)
            torch.minimum(best, d2.clamp_min_(0.0).min(1).values, out=best)
    return out


def _pick(collective: Collective, keys: Tensor, indices: Tensor) -> tuple[float, int, int]:
    """The best key over all ranks with its dataset index (ties: the lower index), and the rank that holds it."""
    if keys.numel() == 0:
        return collective.argmax(float("-inf"), 2**53)
    best = keys.max()
    return collective.argmax(best, indices[keys == best].min())


def _total_items(collective: Collective, n: int) -> int:
    return int(collective.sum(n))


def kmeans_pp(
    embeddings: Tensor,
    query_size: int,
    *,
    seed: int = 0,
    indices: Tensor | None = None,
    num_classes: int | None = None,
    collective: Collective | None = None,
    include_origin: bool = False,
    first: Literal["largest", "random"] = "largest",
) -> GreedySelection:
    r"""k-means++ seeding (Arthur and Vassilvitskii, 2007), as BADGE uses it (Ash et al., 2020).

    The first pick is the item of largest norm (BADGE's choice, and scikit-activeml's); each next pick is drawn
    with probability proportional to :math:`D(x)^2`, its squared distance to the nearest pick so far. The draw is
    an exponential race, :math:`\arg\max_i D(x_i)^2 / E_i` with :math:`E_i = -\log u_i` and :math:`u_i` hashed from
    ``(seed, pick, dataset index)``: an exact draw from :math:`D^2 / \sum D^2` that each rank runs on its own shard.
    If every remaining :math:`D^2` is zero, the pick is uniform among the items not yet picked.

    Args:
        embeddings: ``[N, D]`` this rank's pool embeddings; factored ``[N, C + D]`` gradient embeddings (from
            :func:`gradient_embedding`) with ``num_classes=C``.
        query_size: number of picks (over all ranks).
        seed: seeds the draws.
        indices: ``[N]`` dataset indices of the rows (default: positions); they make the draws shard-independent.
        num_classes: C for factored gradient embeddings; ``None`` for plain Euclidean embeddings.
        collective: cross-rank decisions; ``None`` for one process.
        include_origin: also count the origin as a centre, so :math:`D(x)^2 \le \lVert x \rVert^2` (what
            scikit-activeml 1.0.1's ``Badge`` does); the default follows the BADGE paper and its code.
        first: the first pick is the item of ``"largest"`` norm (BADGE), or ``"random"`` (uniform, as in
            k-means++ proper; the start of :func:`~lightning_bal.functional.typiclust.kmeans`).

    Returns:
        :class:`GreedySelection` of dataset indices and each pick's :math:`D^2` (the first: its squared norm).

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 0.1], [0.0, 9.0]])
        >>> kmeans_pp(x, 3, seed=0).indices
        tensor([1, 3, 0])
    """
    positions = indices is None
    indices = check_pool(embeddings, query_size, indices)
    check_seed(seed)
    if first not in ("largest", "random"):
        raise ValueError(f"Expected argument `first` to be 'largest' or 'random', but got {first!r}.")
    if not isinstance(include_origin, bool):
        raise TypeError(f"Expected argument `include_origin` to be a bool, but got {include_origin!r}.")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)):
        raise TypeError(f"Expected argument `num_classes` to be an integer or None, but got {num_classes!r}.")
    collective = collective or Collective()
    points = _Points(embeddings, num_classes)
    check_finite("embeddings", points.x, None if positions else indices, collective)
    if query_size > _total_items(collective, len(points)):
        raise ValueError(f"Expected argument `query_size` to be at most the pool size, but got {query_size}.")
    min_d2 = points.sq_norms()
    picked = torch.zeros(len(points), dtype=torch.bool, device=points.x.device)
    picks, scores = [], []
    for t in range(query_size):
        if t == 0:
            keys = min_d2.double().clone() if first == "largest" else item_uniforms(seed, 0, indices).to(min_d2.device)
        else:
            weights = min_d2.double().masked_fill(picked, 0.0)
            if collective.sum(weights.sum()) <= 0.0:
                weights = (~picked).double()
            keys = weights / -torch.log(item_uniforms(seed, t, indices).to(weights.device))
        keys.masked_fill_(picked, float("-inf"))
        _, index, owner = _pick(collective, keys, indices)
        row = None
        if owner == collective.rank:
            position = int(torch.nonzero(indices == index)[0, 0])
            picked[position] = True
            row = torch.cat([points.x[position], min_d2[position].reshape(1)])
        shared = collective.share(row, owner).to(points.x.device)
        centre, score = shared[:-1], shared[-1]
        replace = t == 0 and not include_origin
        min_d2 = points.sq_dist(centre) if replace else torch.minimum(min_d2, points.sq_dist(centre))
        picks.append(index)
        scores.append(float(score))
    return GreedySelection(torch.tensor(picks, dtype=torch.int64), torch.tensor(scores))


def k_center_greedy(
    embeddings: Tensor,
    query_size: int,
    *,
    centres: Tensor | None = None,
    seed: int = 0,
    indices: Tensor | None = None,
    collective: Collective | None = None,
) -> GreedySelection:
    r"""Greedy k-center (Sener and Savarese, 2018, Core-Set): each pick is the item farthest from every centre.

    .. math:: x^\star = \arg\max_{x \in \text{pool}} \min_{c \in D_L \cup \text{picks}} \lVert x - c \rVert

    a 2-approximation of the minimax facility location (the covering radius). The labelled set's embeddings are the
    initial centres; without any, the first pick is uniform (hashed from ``seed`` and the dataset index). Ties go
    to the lower dataset index.

    Args:
        embeddings: ``[N, D]`` this rank's pool embeddings.
        query_size: number of picks (over all ranks).
        centres: ``[M, D]`` embeddings of D_L, the same on every rank; ``None`` or empty for none.
        seed: seeds the first pick when there are no centres.
        indices: ``[N]`` dataset indices of the rows (default: positions).
        collective: cross-rank decisions; ``None`` for one process.

    Returns:
        :class:`GreedySelection` of dataset indices and each pick's distance to its nearest centre.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [9.0, 0.0]])
        >>> k_center_greedy(x, 2, centres=torch.tensor([[0.0, 0.0]]))
        GreedySelection(indices=tensor([3, 2]), scores=tensor([9., 4.]))
    """
    positions = indices is None
    indices = check_pool(embeddings, query_size, indices)
    check_seed(seed)
    collective = collective or Collective()
    x = embeddings.flatten(1).float() if embeddings.ndim > 1 else embeddings.float().unsqueeze(1)
    initial = x[:0] if centres is None else check_centres(centres, x)
    check_finite("embeddings", x, None if positions else indices, collective)
    if query_size > _total_items(collective, x.shape[0]):
        raise ValueError(f"Expected argument `query_size` to be at most the pool size, but got {query_size}.")
    distances = _LazyDistances(x, initial, query_size)
    picked = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    picks, scores = [], []
    for t in range(query_size):
        if t == 0 and collective.sum(initial.shape[0]) == 0:
            keys = item_uniforms(seed, 0, indices).to(x.device).masked_fill(picked, float("-inf"))
            _, index, owner = _pick(collective, keys, indices)
        else:
            value, index = distances.best(picked, indices)
            _, index, owner = collective.argmax(value, index)
        row = None
        if owner == collective.rank:
            position = int(torch.nonzero(indices == index)[0, 0])
            picked[position] = True
            row = torch.cat([x[position], distances.value[position].reshape(1)])
        shared = collective.share(row, owner).to(x.device)
        distances.add(shared[:-1])
        picks.append(index)
        scores.append(float(shared[-1].sqrt()))
    return GreedySelection(torch.tensor(picks, dtype=torch.int64), torch.tensor(scores))


class _LazyDistances:
    """Each item's squared distance to its nearest centre, brought up to date only where it can decide a pick.

    Adding a centre can only lower a distance, so an out-of-date value is an upper bound of the true one. A pick
    needs the largest true value: bring the ``size`` largest values up to date (against the centres added since
    each was last updated, one GEMM); if the best of them is still above the next value, it is the largest true
    value (every other true value is at most its bound), else try 4× as many. Greedy k-center on spread-out
    embeddings moves few items' nearest centre per pick, so a pick reads a few rows instead of all N; in the worst
    case (everything out of date and tied) it updates everything, like the eager update, in blocks. The picks are
    those of the eager update: the winner is the largest true value, ties to the lower dataset index.
    """

    def __init__(self, x: Tensor, centres: Tensor, query_size: int) -> None:
        self.x = x
        self.sq_norms = x.square().sum(1)
        self.centres = x.new_empty(centres.shape[0] + query_size, x.shape[1])
        self.centres[: centres.shape[0]] = centres
        self.centre_sq_norms = self.centres.square().sum(1)
        self.count = centres.shape[0]
        self.value = min_sq_distances(x, centres)
        self.seen = torch.full((x.shape[0],), self.count, dtype=torch.int64, device=x.device)

    def add(self, centre: Tensor) -> None:
        self.centres[self.count] = centre
        self.centre_sq_norms[self.count] = centre.square().sum()
        self.count += 1

    def refresh(self, rows: Tensor) -> None:
        """Bring ``rows`` up to date against every centre added since the oldest of them was."""
        for start in range(0, rows.numel(), _CHUNK):
            block = rows[start : start + _CHUNK]
            first = int(self.seen[block].min())
            centres = self.centres[first : self.count]
            # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: one GEMM against the new centres.
            d2 = torch.addmm(
                self.sq_norms[block, None] + self.centre_sq_norms[None, first : self.count],
                self.x[block],
                centres.T,
                alpha=-2.0,
            )
            self.value[block] = torch.minimum(self.value[block], d2.clamp_min_(0.0).min(1).values)
            self.seen[block] = self.count

    def best(self, picked: Tensor, indices: Tensor) -> tuple[float, int]:
        """The largest true distance among the items not picked, and its dataset index (ties: the lower one)."""
        free = int((~picked).sum())
        if free == 0:
            return float("-inf"), 2**53
        size = _LAZY_START
        while True:
            keys = self.value.masked_fill(picked, float("-inf"))
            if size + 1 >= free:
                self.refresh(torch.nonzero((self.seen < self.count) & ~picked).squeeze(1))
                keys = self.value.masked_fill(picked, float("-inf"))
                best = keys.max()
                return float(best), int(indices[keys == best].min())
            top = torch.topk(keys, size + 1)
            candidates, bound = top.indices[:size], top.values[size]
            out_of_date = candidates[self.seen[candidates] < self.count]
            if out_of_date.numel():
                self.refresh(out_of_date)
            values = self.value[candidates]
            best = values.max()
            if best > bound:
                return float(best), int(indices[candidates][values == best].min())
            size *= 4


def covering_radius(points: Tensor, centres: Tensor) -> Tensor:
    """The k-center objective: the largest distance of a point to its nearest centre.

    Example:
        >>> covering_radius(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0]]))
        tensor(5.)
    """
    check_objective(points, centres)
    return min_sq_distances(points, centres).max().sqrt()


def kmeans_potential(points: Tensor, centres: Tensor) -> Tensor:
    """The k-means potential: the sum of squared distances of the points to their nearest centre.

    Example:
        >>> kmeans_potential(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0]]))
        tensor(25.)
    """
    check_objective(points, centres)
    return min_sq_distances(points, centres).sum()
