r"""Diversity by greedy selection on embeddings: BADGE's k-means++ seeding and Core-Set's greedy k-center.

Each takes this rank's ``[N, D]`` rows, ``query_size`` picks over all ranks, a ``seed``, their ``[N]`` dataset
``indices`` (default: positions) and a ``collective`` (``None`` for one process); draws are hashed from the dataset
indices, so the selection does not depend on the sharding (see docs/diversity.md). No N×N matrix is formed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from lightning_bal.functional._embedding_checks import check_finite, check_indices, check_rows
from lightning_bal.utilities.checks import check_bool, check_one_of, check_python_int, is_integer_tensor
from lightning_bal.utilities.collective import Collective
from lightning_bal.utilities.hashing import hash_uniform32
from lightning_bal.utilities.seeding import check_seed

__all__ = [
    "GreedySelection",
    "count_within",
    "covering_radius",
    "item_uniforms",
    "k_center_greedy",
    "kmeans_pp",
    "kmeans_potential",
    "min_sq_distances",
    "sq_distance_blocks",
]

_M32 = 0xFFFFFFFF
#: Rows (and centres) per block of distances: bounds the temporary [rows, centres].
_CHUNK = 2048
#: Items first brought up to date per k-center pick (see ``_LazyDistances``).
_LAZY_START = 64


def _check_pool(
    embeddings: Tensor, query_size: int, indices: Tensor | None, collective: Collective | None
) -> tuple[Tensor, Collective]:
    """A greedy selection's checked ``embeddings`` and ``query_size``; returns its dataset indices and collective."""
    if not isinstance(embeddings, Tensor) or embeddings.ndim < 1:
        raise ValueError(f"Expected argument `embeddings` to be a tensor [N, D], but got {type(embeddings).__name__}.")
    check_python_int("query_size", query_size, 0)
    numbers = check_indices(indices, embeddings.shape[0], embeddings.device)
    collective = collective or Collective()
    check_finite("embeddings", _float_rows(embeddings), indices, collective)
    if query_size > int(collective.sum(len(embeddings))):
        raise ValueError(f"Expected argument `query_size` to be at most the pool size, but got {query_size}.")
    return numbers, collective


def _float_rows(tensor: Tensor) -> Tensor:
    """``tensor`` ``[N, ...]`` (or ``[N]``) as float32 rows ``[N, D]``."""
    return tensor.flatten(1).float() if tensor.ndim > 1 else tensor.float().unsqueeze(1)


def _check_objective(points: Tensor, centres: Tensor) -> None:
    """An objective of NaN or inf rows would be NaN or inf itself: refuse them, naming the row."""
    check_finite("points", check_rows("points", points))
    check_finite("centres", check_rows("centres", centres))


class GreedySelection(NamedTuple):
    """Picks of a greedy selection in order: int64 dataset ``indices``, the same on every rank, and their ``scores``."""

    indices: Tensor
    scores: Tensor


def item_uniforms(seed: int, counter: int, indices: Tensor) -> Tensor:
    """Uniform numbers in (0, 1), float64 ``[N]``, hashed from ``(seed, counter, dataset index)``: shard-independent."""
    check_seed("seed", seed, optional=False)
    if isinstance(counter, bool) or not isinstance(counter, int):
        raise TypeError(f"Expected argument `counter` to be an integer, but got {counter!r}.")
    if not is_integer_tensor(indices):
        got = f"dtype {indices.dtype}" if isinstance(indices, Tensor) else type(indices).__name__
        raise TypeError(f"Expected argument `indices` to be an integer tensor of dataset indices, but got {got}.")
    idx = indices.to(torch.int64)
    h = torch.zeros_like(idx)
    for word in (seed & _M32, (seed >> 32) & _M32, counter & _M32, idx & _M32, idx >> 32):
        h = hash_uniform32(h.bitwise_xor_(word), 1)[..., 0]
    return (h.double() + 0.5) / 2.0**32


class _Points:
    """Pool embeddings ``x`` and their squared norms ``x2``, or factored ones as ``a`` and ``h``.

    ``a`` holds the first ``num_classes`` columns and ``h`` the rest: their outer product is the gradient embedding.
    """

    def __init__(self, embeddings: Tensor, num_classes: int | None) -> None:
        self.x = _float_rows(embeddings)
        self.num_classes = num_classes
        if num_classes is None:
            self.x2 = self.x.square().sum(1)
            return
        if len(self) > 0 and not 0 < num_classes < self.x.shape[1]:
            raise ValueError(
                f"Expected argument `num_classes` in [1, {self.x.shape[1] - 1}] for factored embeddings of"
                f" {self.x.shape[1]} columns, but got {num_classes}."
            )
        self.a, self.h = self.x[:, :num_classes], self.x[:, num_classes:]
        self.x2 = self.a.square().sum(1) * self.h.square().sum(1)

    def __len__(self) -> int:
        return self.x.shape[0]

    def sq_dist(self, centre: Tensor) -> Tensor:
        if len(self) == 0:
            return self.x.new_empty(0)
        if self.num_classes is not None:
            a, h = centre[: self.num_classes], centre[self.num_classes :]
            cross = (self.a @ a) * (self.h @ h)
            return (self.x2 + a.square().sum() * h.square().sum() - 2.0 * cross).clamp_min_(0.0)
        return torch.addmv(self.x2 + centre.square().sum(), self.x, centre, alpha=-2.0).clamp_min_(0.0)


def sq_distance_blocks(points: Tensor, others: Tensor) -> Iterator[tuple[int, Tensor]]:
    """``(row_start, squared distances [rows, M])`` of blocks of ``points`` to all ``others``."""
    other_norms = others.square().sum(1)
    for start in range(0, points.shape[0], _CHUNK):
        rows = points[start : start + _CHUNK]
        d2 = torch.addmm(rows.square().sum(1, keepdim=True) + other_norms, rows, others.T, alpha=-2.0)
        yield start, d2.clamp_min_(0.0)


def _blocks_of_both(points: Tensor, others: Tensor) -> Iterator[tuple[int, Tensor]]:
    for start in range(0, len(others), _CHUNK):
        yield from sq_distance_blocks(points, others[start : start + _CHUNK])


def count_within(points: Tensor, others: Tensor, delta: float) -> Tensor:
    """For each of ``points``, how many of ``others`` lie within ``delta`` ``[N]`` (blocked: no N×M matrix)."""
    counts = torch.zeros(len(points), dtype=torch.float64)
    for row, d2 in _blocks_of_both(points, others):
        counts[row : row + d2.shape[0]] += (d2 <= delta**2).sum(1)
    return counts


def min_sq_distances(points: Tensor, centres: Tensor) -> Tensor:
    """Squared distance ``[N]`` of each of ``points [N, D]`` to its nearest of ``centres [M, D]`` (``inf`` if none)."""
    points = check_rows("points", points).flatten(1).float()
    if not isinstance(centres, Tensor):
        raise TypeError(f"Expected argument `centres` to be a tensor [M, D], but got {type(centres).__name__}.")
    out = torch.full((points.shape[0],), float("inf"), device=points.device)
    if centres.numel() == 0:
        return out
    if centres.ndim < 2 or centres[0].numel() != points.shape[1]:
        raise ValueError(
            f"Expected argument `centres` to be a tensor [M, {points.shape[1]}] like `points`, but got"
            f" {tuple(centres.shape)}."
        )
    for row, d2 in _blocks_of_both(points, centres.flatten(1).float().to(points.device)):
        best = out[row : row + d2.shape[0]]
        torch.minimum(best, d2.min(1).values, out=best)
    return out


def pick_best(collective: Collective, keys: Tensor, indices: Tensor) -> tuple[float, int, int]:
    """The best key over all ranks with its dataset index (ties: the lower index), and the rank that holds it."""
    if keys.numel() == 0:
        return collective.argmax(float("-inf"), 2**53)
    best = keys.max()
    return collective.argmax(best, indices[keys == best].min())


def _share_pick(
    collective: Collective, owner: int, index: int, indices: Tensor, picked: Tensor, x: Tensor, values: Tensor
) -> Tensor:
    row = None
    if owner == collective.rank:
        position = int(torch.nonzero(indices == index)[0, 0])
        picked[position] = True
        row = torch.cat([x[position], values[position].reshape(1)])
    return collective.share(row, owner).to(x.device)


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

    Picks are scored by their squared distance to the nearest earlier pick; the ``first`` is the item of ``"largest"``
    norm (BADGE) or a ``"random"`` one. ``num_classes=C`` reads factored ``[N, C + D]`` gradient embeddings
    (:func:`gradient_embedding`); ``include_origin`` also counts the origin as a centre (see docs/diversity.md).

    Examples:
        >>> x = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 0.1], [0.0, 9.0]])
        >>> kmeans_pp(x, 3, seed=0).indices
        tensor([1, 3, 0])
    """
    indices, collective = _check_pool(embeddings, query_size, indices, collective)
    check_seed("seed", seed, optional=False)
    check_one_of("first", first, ("largest", "random"))
    check_bool("include_origin", include_origin)
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)):
        raise TypeError(f"Expected argument `num_classes` to be an integer or None, but got {num_classes!r}.")
    points = _Points(embeddings, num_classes)
    min_d2 = points.x2
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
        _, index, owner = pick_best(collective, keys, indices)
        shared = _share_pick(collective, owner, index, indices, picked, points.x, min_d2)
        distances = points.sq_dist(shared[:-1])
        min_d2 = distances if t == 0 and not include_origin else torch.minimum(min_d2, distances)
        picks.append(index)
        scores.append(float(shared[-1]))
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

    ``centres`` ``[M, D]`` are D_L's embeddings, the same on every rank; without any, the first pick is uniform (score
    ``inf``). Ties go to the lower dataset index. Scores are each pick's distance to its nearest centre.

    Examples:
        >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [9.0, 0.0]])
        >>> k_center_greedy(x, 2, centres=torch.tensor([[0.0, 0.0]]))
        GreedySelection(indices=tensor([3, 2]), scores=tensor([9., 4.]))
    """
    indices, collective = _check_pool(embeddings, query_size, indices, collective)
    check_seed("seed", seed, optional=False)
    x = _float_rows(embeddings)
    if centres is not None and not isinstance(centres, Tensor):
        raise TypeError(f"Expected argument `centres` to be a tensor [M, D] or None, but got {type(centres).__name__}.")
    initial = x[:0] if centres is None or centres.numel() == 0 else _float_rows(centres).to(x.device)
    if initial.shape[1] != x.shape[1]:
        raise ValueError(
            f"Expected argument `centres` to have {x.shape[1]} columns like `embeddings`, but got {initial.shape[1]}."
        )
    check_finite("centres", initial)
    distances = _LazyDistances(x, initial, query_size)
    picked = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    picks, scores = [], []
    for t in range(query_size):
        if t == 0 and collective.sum(initial.shape[0]) == 0:
            _, index, owner = pick_best(collective, item_uniforms(seed, 0, indices).to(x.device), indices)
        else:
            value, index = distances.best(picked, indices)
            _, index, owner = collective.argmax(value, index)
        shared = _share_pick(collective, owner, index, indices, picked, x, distances.value)
        distances.add(shared[:-1])
        picks.append(index)
        scores.append(float(shared[-1].sqrt()))
    return GreedySelection(torch.tensor(picks, dtype=torch.int64), torch.tensor(scores))


class _LazyDistances:
    """Squared distances to the nearest centre, updated only where they can decide a pick (docs/diversity.md)."""

    def __init__(self, x: Tensor, centres: Tensor, query_size: int) -> None:
        self.x = x
        self.centres = x.new_empty(centres.shape[0] + query_size, x.shape[1])
        self.centres[: centres.shape[0]] = centres
        self.count = centres.shape[0]
        self.value = min_sq_distances(x, centres)
        self.seen = torch.full((x.shape[0],), self.count, dtype=torch.int64, device=x.device)

    def add(self, centre: Tensor) -> None:
        self.centres[self.count] = centre
        self.count += 1

    def refresh(self, rows: Tensor) -> None:
        for start in range(0, rows.numel(), _CHUNK):
            block = rows[start : start + _CHUNK]
            nearest = min_sq_distances(self.x[block], self.centres[int(self.seen[block].min()) : self.count])
            self.value[block] = torch.minimum(self.value[block], nearest)
            self.seen[block] = self.count

    def best(self, picked: Tensor, indices: Tensor) -> tuple[float, int]:
        free = int((~picked).sum())
        if free == 0:
            return float("-inf"), 2**53
        size = _LAZY_START
        while size + 1 < free:
            keys = self.value.masked_fill(picked, float("-inf"))
            top = torch.topk(keys, size + 1)
            candidates, bound = top.indices[:size], top.values[size]
            self.refresh(candidates[self.seen[candidates] < self.count])
            values = self.value[candidates]
            best = values.max()
            if best > bound:
                return float(best), int(indices[candidates][values == best].min())
            size *= 4
        self.refresh(torch.nonzero((self.seen < self.count) & ~picked).squeeze(1))
        keys = self.value.masked_fill(picked, float("-inf"))
        best = keys.max()
        return float(best), int(indices[keys == best].min())


def covering_radius(points: Tensor, centres: Tensor) -> Tensor:
    """The k-center objective: the largest distance of a point to its nearest centre.

    Examples:
        >>> covering_radius(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0]]))
        tensor(5.)
    """
    _check_objective(points, centres)
    return min_sq_distances(points, centres).max().sqrt()


def kmeans_potential(points: Tensor, centres: Tensor) -> Tensor:
    """The k-means potential: the sum of squared distances of the points to their nearest centre.

    Examples:
        >>> kmeans_potential(torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0]]))
        tensor(25.)
    """
    _check_objective(points, centres)
    return min_sq_distances(points, centres).sum()
