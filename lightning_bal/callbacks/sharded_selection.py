"""Selecting a batch from scores spread over ranks, with nothing O(N) crossing ranks.

Each rank holds the scores of its own shard of the pool. What crosses ranks is bounded by the world size times the
query size (plus a few scalars per rank):

- top-k: each rank keeps its own top ``q`` (equal scores go to the lower dataset index); the merged ``world x q``
  rows hold the global top ``q``, so the selection equals the one-process selection exactly;
- power and softmax sampling: a Gumbel-top-k whose noise is a hash of ``(seed, dataset index)``, so it does not depend
  on the sharding; the ``world x q`` best keys are merged, and the recorded drawing probabilities take the mass of the
  undrawn items from an all-reduced log-sum-exp;
- softrank sampling: the weights depend only on the rank positions ``1..N``, so the Gumbel-top-k draws positions
  (noise keyed on the position), and the items at the drawn positions are found by a 64-round bisection that
  all-reduces ``q`` counts per round;
- pool statistics: sum, count, max and min all-reduced, and a bounded strided sample of the scores for the histogram.

Every function takes a ``strategy`` with ``all_gather`` (a Lightning strategy, or a stand-in in tests) and the world
size; with one process nothing is communicated and the same code runs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from lightning_bal.functional.stochastic import sampling_log_weights
from lightning_bal.heuristics.base import Heuristic, top_k
from lightning_bal.heuristics.stochastic import StochasticHeuristic
from lightning_bal.utilities.distributed import gather_rows, stack_ranks
from lightning_bal.utilities.hashing import hash_uniform32

__all__ = [
    "PoolStatistics",
    "ShardedSelection",
    "gumbel_noise",
    "pool_statistics",
    "select_stochastic",
    "select_top_k",
    "selection_rule",
    "sort_by_index",
]

_M32 = 0xFFFFFFFF
#: Rows processed at once where a per-item temporary would otherwise be [N] (Gumbel keys, positions).
_CHUNK = 2**20
#: Scores per pool kept for the logged histogram, over all ranks together.
HISTOGRAM_SAMPLE = 10_000


class ShardedSelection(NamedTuple):
    """A selection made from sharded scores, the same on every rank.

    Attributes:
        indices: dataset indices, in selection order.
        scores: the score of each selected item.
        probabilities: float64 drawing probabilities given the earlier draws (stochastic rules), else ``None``.
    """

    indices: Tensor
    scores: Tensor
    probabilities: Tensor | None = None


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


def selection_rule(heuristic: Heuristic) -> str:
    """How ``heuristic`` selects, as far as sharding is concerned: ``"top_k"``, ``"stochastic"`` or ``"custom"``.

    Only the library's own rules are known to be mergeable from per-rank candidates: a heuristic that overrides
    ``select_from_scores`` with a rule of its own is ``"custom"`` and needs all the scores in one place.

    Example:
        >>> from lightning_bal.heuristics import BALD, PowerBALD
        >>> selection_rule(BALD()), selection_rule(PowerBALD())
        ('top_k', 'stochastic')
    """
    method = type(heuristic).select_from_scores
    if method is Heuristic.select_from_scores:
        return "top_k"
    if isinstance(heuristic, StochasticHeuristic) and method is StochasticHeuristic.select_from_scores:
        return "stochastic"
    return "custom"


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


# ---------------------------------------------------------------------------------------------------------- top-k
def select_top_k(
    strategy: Any,
    world_size: int,
    indices: Tensor,
    scores: Tensor,
    query_size: int,
    heuristic: Heuristic,
    device: torch.device | None = None,
) -> ShardedSelection:
    """The ``query_size`` best items over every rank's ``(indices, scores)``; equal scores go to the lower index.

    Each rank sends only its own best ``query_size`` rows: any item of the global top ``q`` is in its rank's top
    ``q`` under the same order (score, then lower index), so the merged rows select exactly what one process would.

    Args:
        strategy: has ``all_gather`` (unused with one process).
        world_size: number of ranks.
        indices: this rank's dataset indices ``[n]``.
        scores: their scores ``[n]``.
        query_size: how many to select over all ranks.
        heuristic: selects among the merged rows (``select_from_scores``, a top-k rule).
        device: where the collectives run (the model's device).

    Example:
        >>> from lightning_bal.heuristics import BALD
        >>> select_top_k(None, 1, torch.tensor([4, 1, 7]), torch.tensor([0.5, 0.9, 0.5]), 2, BALD()).indices
        tensor([1, 4])
    """
    device = device or torch.device("cpu")
    indices, scores = sort_by_index(indices, scores)
    local = top_k(scores, min(query_size, scores.numel()), heuristic.higher_is_better)
    merged_indices = gather_rows(strategy, indices[local], world_size, device)
    merged_scores = gather_rows(strategy, scores[local], world_size, device)
    by_index = torch.argsort(merged_indices)
    merged_indices, merged_scores = merged_indices[by_index], merged_scores[by_index]
    selection = heuristic.select_from_scores(merged_scores, query_size)
    return ShardedSelection(merged_indices[selection.indices], selection.scores)


# ---------------------------------------------------------------------------------------------------------- Gumbel
def gumbel_noise(seed: int, ids: Tensor) -> Tensor:
    """Standard Gumbel noise for each id (a dataset index or a rank position): a pure function of ``(seed, id)``.

    53 random bits per id from the counter-based hash of the MC masks, so the noise of an item is the same whichever
    rank holds it and however the pool was sharded.

    Example:
        >>> noise = gumbel_noise(0, torch.arange(100_000))
        >>> bool(torch.equal(noise[5:7], gumbel_noise(0, torch.tensor([5, 6])))), round(float(noise.mean()), 1)
        (True, 0.6)
    """
    ids = ids.to(torch.int64)
    key = torch.full_like(ids, (seed ^ (seed >> 32)) & _M32)
    key = hash_uniform32(key.bitwise_xor_(ids & _M32), 1).squeeze(-1)
    key = hash_uniform32(key.bitwise_xor_((ids >> 32) & _M32), 2)
    bits = (key[..., 0] << 21) | (key[..., 1] >> 11)  # 53 bits
    uniform = (bits.to(torch.float64) + 0.5) / 2.0**53
    return -torch.log(-torch.log(uniform))


def _keys(seed: int, ids: Tensor, log_weights: Tensor | None) -> Tensor:
    """Gumbel keys ``log_weights + noise`` (noise alone without weights), a chunk at a time to bound temporaries."""
    parts = [gumbel_noise(seed, ids[i : i + _CHUNK]) for i in range(0, ids.numel(), _CHUNK)]
    noise = torch.cat(parts) if parts else torch.empty(0, dtype=torch.float64)
    return noise if log_weights is None else noise.add_(log_weights)


class _Draw(NamedTuple):
    ids: Tensor
    probabilities: Tensor


def _gumbel_top_k(
    strategy: Any,
    world_size: int,
    ids: Tensor,
    log_weights: Tensor,
    query_size: int,
    seed: int,
    device: torch.device,
) -> _Draw:
    """Draw ``query_size`` distinct ids over every rank, each in proportion to its weight (zero weights last).

    The draw and its probabilities are those of :func:`~lightning_bal.functional.sample_without_replacement` with
    ``fill_uniformly=True``, computed from each rank's best ``query_size`` Gumbel keys and a few all-reduced scalars.
    """
    drawable = log_weights > -torch.inf
    ids_d, log_w_d, ids_z = ids[drawable], log_weights[drawable], ids[~drawable]
    keys_d = _keys(seed, ids_d, log_w_d)
    best_d = torch.topk(keys_d, min(query_size, keys_d.numel())).indices
    keys_z = _keys(seed, ids_z, None)
    best_z = torch.topk(keys_z, min(query_size, keys_z.numel())).indices
    local_max = log_w_d.max() if log_w_d.numel() else torch.tensor(-torch.inf, dtype=torch.float64)
    figures = torch.stack([local_max.double(), torch.tensor(float(ids_d.numel())), torch.tensor(float(ids_z.numel()))])
    figures = stack_ranks(strategy, figures.to(device), world_size).cpu()
    shift = float(figures[:, 0].max())
    num_drawable, num_zero = int(figures[:, 1].sum()), int(figures[:, 2].sum())

    cand_ids = gather_rows(strategy, ids_d[best_d], world_size, device)
    cand_keys = gather_rows(strategy, keys_d[best_d], world_size, device)
    cand_log_w = gather_rows(strategy, log_w_d[best_d], world_size, device)
    by_id = torch.argsort(cand_ids)
    cand_ids, cand_keys, cand_log_w = cand_ids[by_id], cand_keys[by_id], cand_log_w[by_id]
    drawn = top_k(cand_keys, min(query_size, num_drawable))
    drawn_ids, drawn_log_w = cand_ids[drawn], cand_log_w[drawn] - shift

    # The mass not drawn: each rank's own items, less those drawn, summed in log space (no subtraction).
    local_left = (log_w_d - shift).masked_fill(torch.isin(ids_d, drawn_ids), -torch.inf)
    local_lse = local_left.logsumexp(0) if local_left.numel() else torch.tensor(-torch.inf, dtype=torch.float64)
    log_undrawn = stack_ranks(strategy, local_lse.reshape(1).to(device), world_size).cpu().logsumexp(0)[0]
    log_left = torch.logaddexp(drawn_log_w.flip(0).logcumsumexp(0).flip(0), log_undrawn)
    probabilities = (drawn_log_w - log_left).exp()
    num_fill = query_size - drawn_ids.numel()
    if num_fill <= 0:
        return _Draw(drawn_ids, probabilities)
    # Zero-weight phase: the Gumbel keys alone order the zero-weight items uniformly at random.
    fill_ids = gather_rows(strategy, ids_z[best_z], world_size, device)
    fill_keys = gather_rows(strategy, keys_z[best_z], world_size, device)
    by_id = torch.argsort(fill_ids)
    fill_ids, fill_keys = fill_ids[by_id], fill_keys[by_id]
    filled = fill_ids[top_k(fill_keys, num_fill)]
    left = torch.arange(num_zero, num_zero - num_fill, -1, dtype=torch.float64)
    return _Draw(torch.cat([drawn_ids, filled]), torch.cat([probabilities, left.reciprocal()]))


def select_stochastic(
    strategy: Any,
    world_size: int,
    indices: Tensor,
    scores: Tensor,
    query_size: int,
    heuristic: StochasticHeuristic,
    seed: int,
    device: torch.device | None = None,
) -> ShardedSelection:
    """Draw ``query_size`` items over every rank as ``heuristic`` (power, softmax or softrank sampling) would.

    The selection distribution and the recorded probabilities are those of ``heuristic.select_from_scores``; the
    random draw itself is a function of ``seed`` and the dataset indices only, so one process and any number of ranks
    draw the same items with the same probabilities.

    Args:
        strategy: has ``all_gather`` (unused with one process).
        world_size: number of ranks.
        indices: this rank's dataset indices ``[n]``.
        scores: their scores ``[n]``.
        query_size: how many to draw over all ranks.
        heuristic: gives the sampling mode, ``beta`` and the score direction.
        seed: seeds the Gumbel noise (the same on every rank).
        device: where the collectives run (the model's device).

    Example:
        >>> from lightning_bal.heuristics import PowerBALD
        >>> scores = torch.tensor([0.0, 2.0, 0.0, 0.0])
        >>> selection = select_stochastic(None, 1, torch.arange(4), scores, 2, PowerBALD(), seed=0)
        >>> selection.indices[0].item(), selection.probabilities  # item 1 surely, then one of the 3 zero-score items
        (1, tensor([1.0000, 0.3333], dtype=torch.float64))
    """
    device = device or torch.device("cpu")
    higher = heuristic.base_heuristic.higher_is_better
    if heuristic.mode != "softrank":
        log_weights = sampling_log_weights(scores, heuristic.mode, heuristic.beta, higher)
        draw = _gumbel_top_k(strategy, world_size, indices, log_weights, query_size, seed, device)
        position = torch.argsort(indices)
        found = position[torch.searchsorted(indices[position], draw.ids).clamp_max(max(indices.numel() - 1, 0))]
        local = torch.zeros(draw.ids.numel(), dtype=torch.float64)
        if indices.numel():
            mine = indices[found] == draw.ids
            local[mine] = scores[found[mine]].double()
        # Each drawn item is held by exactly one rank: the sum over ranks is its score.
        drawn_scores = stack_ranks(strategy, local.to(device), world_size).cpu().sum(0).to(scores.dtype)
        return ShardedSelection(draw.ids, drawn_scores, draw.probabilities)
    # Softrank: draw rank positions 0..N-1 (weight (position + 1) ** -beta), then find the items at those positions.
    rank = _rank(strategy, world_size)
    total = int(stack_ranks(strategy, torch.tensor([indices.numel()], device=device), world_size).sum())
    positions = torch.arange(rank, total, world_size, dtype=torch.int64)
    log_weights = (positions + 1).double().log() * -heuristic.beta
    draw = _gumbel_top_k(strategy, world_size, positions, log_weights, query_size, seed, device)
    keys = _composite_keys(scores, indices, higher)
    found = _order_statistics(strategy, world_size, keys.sort().values, draw.ids, device)
    drawn_indices, drawn_scores = _decode(found, higher)
    return ShardedSelection(drawn_indices, drawn_scores.to(scores.dtype), draw.probabilities)


def _rank(strategy: Any, world_size: int) -> int:
    return 0 if world_size == 1 else int(strategy.global_rank)


def _composite_keys(scores: Tensor, indices: Tensor, higher_is_better: bool) -> Tensor:
    """int64 keys ordered as the ranking is: larger for a better float32 score, then for a lower dataset index."""
    if bool((indices >= 2**32).any()):
        raise ValueError("Expected dataset indices below 2**32 for softrank sampling, but got larger ones.")
    values = scores.float() if higher_is_better else -scores.float()
    bits = (values + 0.0).view(torch.int32).to(torch.int64)  # + 0.0 makes -0.0 equal to 0.0
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return (ordered << 32) | (_M32 - indices.to(torch.int64))


def _decode(keys: Tensor, higher_is_better: bool) -> tuple[Tensor, Tensor]:
    indices = _M32 - (keys & _M32)
    ordered = keys >> 32
    bits = (ordered ^ ((ordered >> 31) & 0x7FFFFFFF)).to(torch.int32)
    values = bits.view(torch.float32)
    return indices, values if higher_is_better else -values


def _order_statistics(
    strategy: Any, world_size: int, sorted_keys: Tensor, positions: Tensor, device: torch.device
) -> Tensor:
    """The key at each 0-based ``position`` of the descending order of every rank's keys together.

    Bisection on the int64 key space: the answer is the largest ``v`` with ``#(keys >= v) > position``. Each of the
    64 rounds all-reduces one count per position.
    """
    low = [-(2**63)] * positions.numel()
    high = [2**63 - 1] * positions.numel()
    targets = positions.tolist()
    while any(lo < hi for lo, hi in zip(low, high, strict=True)):
        middle = [lo + (hi - lo + 1) // 2 for lo, hi in zip(low, high, strict=True)]
        at_least = sorted_keys.numel() - torch.searchsorted(sorted_keys, torch.tensor(middle, dtype=torch.int64))
        counts = stack_ranks(strategy, at_least.to(device), world_size).sum(0).tolist()
        for t, (count, mid) in enumerate(zip(counts, middle, strict=True)):
            if low[t] >= high[t]:
                continue
            if count > targets[t]:
                low[t] = mid
            else:
                high[t] = mid - 1
    return torch.tensor(low, dtype=torch.int64)


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
