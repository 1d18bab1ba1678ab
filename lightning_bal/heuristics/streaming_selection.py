"""Selection over a rank's scores a chunk at a time: top-k and Gumbel-top-k draws in memory bounded by the chunk.

A top-k of the union is the top-k of the union of top-k's, so a running top-k merged with each chunk, then across
ranks, picks what one ``top_k`` over every score picks. A draw without replacement is a top-k too, of
``log w_i + G_i`` with Gumbel noise ``G_i`` (Gumbel-top-k), so weights that depend on an item's own score alone (power,
softmax, uniform) stream the same way. See docs/scale.md#selection-at-scale.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lightning_bal.functional.stochastic import draw_probabilities, gumbel_noise
from lightning_bal.utilities.checks import check_python_int
from lightning_bal.utilities.collective import Collective

__all__ = ["CHUNK", "draw_sharded", "streaming_top_k", "top_k"]

#: Scores per chunk: 2^20 float32 scores and their float64 keys and noise stay within a few tens of MiB.
CHUNK = 1 << 20


def _check_vector(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor) or value.ndim != 1:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"Expected argument `{name}` to be a tensor of shape [N], but got {got}.")
    return value


def _chunk(chunk: object) -> int:
    return CHUNK if chunk is None else check_python_int("chunk", chunk, 1, expected="a positive integer or None")


def top_k(scores: Tensor, query_size: int, higher_is_better: bool = True) -> Tensor:
    """Indices of the ``query_size`` best scores, best first, in O(N); equal scores go to the lower index.

    Examples:
        >>> top_k(torch.tensor([0.5, 0.9, 0.5, 0.1, 0.9]), 3)
        tensor([1, 4, 0])
    """
    if query_size == 0:
        return torch.empty(0, dtype=torch.int64, device=scores.device)
    keys = scores if higher_is_better else -scores
    cutoff = torch.topk(keys, query_size).values[-1]
    above = torch.nonzero(keys > cutoff).squeeze(1)
    tied = torch.nonzero(keys == cutoff).squeeze(1)[: query_size - above.numel()]
    chosen = torch.cat([above, tied])
    order = torch.sort(keys[chosen], descending=True, stable=True).indices
    return chosen[order]


def streaming_top_k(scores: Tensor, query_size: int, higher_is_better: bool = True, chunk: int | None = None) -> Tensor:
    """What ``top_k(scores, query_size, higher_is_better)`` returns, reading ``scores`` ``chunk`` at a time.

    Memory beyond ``scores``: ``O(chunk + query_size)``; best first, equal scores to the lower position.
    ``chunk=None`` reads :data:`CHUNK`.

    Examples:
        >>> streaming_top_k(torch.tensor([0.5, 0.9, 0.5, 0.1, 0.9]), 3, chunk=2)
        tensor([1, 4, 0])
    """
    check_python_int("query_size", query_size, 0, _check_vector("scores", scores).numel())
    chunk = _chunk(chunk)
    if scores.numel() <= chunk:
        return top_k(scores, min(query_size, scores.numel()), higher_is_better)
    best = torch.empty(0, dtype=torch.int64, device=scores.device)
    for start in range(0, scores.numel(), chunk):
        stop = min(start + chunk, scores.numel())
        # The kept positions come first and in ascending order, so a tie still goes to the lower position.
        kept = best.sort().values
        positions = torch.cat([kept, torch.arange(start, stop, device=scores.device)])
        candidates = torch.cat([scores[kept], scores[start:stop]])
        best = positions[top_k(candidates, min(query_size, candidates.numel()), higher_is_better)]
    return best


def _logaddexp(*values: Tensor) -> Tensor:
    return torch.cat([value.reshape(-1) for value in values]).logsumexp(0)


def draw_sharded(
    indices: Tensor,
    scores: Tensor,
    log_weights_fn: Callable[[Tensor], Tensor],
    query_size: int,
    generator: torch.Generator,
    collective: Collective,
    *,
    fill_uniformly: bool = False,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The draw of ``sample_without_replacement(log_weights_fn(all scores), query_size, generator, fill_uniformly)``.

    A collective. Each rank holds the strided shard ``rank::world_size`` of the pool in ascending dataset-index order
    (as the pool pass scores it); noise is drawn for every pool position in that order, a chunk at a time, so the
    draw is the one over all the scores in one array. Only ``O(query_size)`` rows per rank cross ranks, against every
    score when the scores are gathered; probabilities may differ from the gathered draw's in the last bits (sums in
    another order).

    Args:
        indices: this rank's dataset indices ``[n]``, ascending.
        scores: their scores ``[n]``.
        log_weights_fn: the float64 log weight of each score, from that score alone (``-inf``: weight zero).
        query_size: how many to draw (at most the pool's size).
        generator: the draw's generator, in the same state on every rank.
        collective: the ranks.
        fill_uniformly: once no item of positive weight is left, draw the zero-weight ones uniformly.
        chunk: pool positions per chunk (``None``: :data:`CHUNK`).

    Returns:
        ``(dataset indices [q], their scores [q], probabilities [q])`` in drawing order, alike on every rank.
    """
    if _check_vector("indices", indices).shape != _check_vector("scores", scores).shape:
        raise ValueError(
            f"Expected arguments `indices` and `scores` of one shape, but got {tuple(indices.shape)} and"
            f" {tuple(scores.shape)}."
        )
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"Expected argument `generator` to be a torch.Generator, but got {generator!r}.")
    chunk = _chunk(chunk)
    rank, world_size = collective.rank, collective.world_size
    device = scores.device
    total = int(collective.all_sum(torch.tensor([scores.numel()], dtype=torch.int64))[0])
    check_python_int("query_size", query_size, 0, total)
    if scores.numel() != len(range(rank, total, world_size)):
        raise ValueError(
            f"Expected rank {rank} to hold the strided shard `{rank}::{world_size}` of a pool of {total} items,"
            f" but it holds {scores.numel()} scores."
        )
    chunk = max(world_size, chunk - chunk % world_size)  # every chunk starts at a multiple of the world size
    # First pass: the largest log weight and how many are positive, for the shift and the fill.
    local_max, drawable = torch.tensor(-torch.inf, dtype=torch.float64), 0
    for start in range(0, scores.numel(), chunk // world_size):
        log_weights = log_weights_fn(scores[start : start + chunk // world_size])
        drawable += int((log_weights > -torch.inf).sum())
        if log_weights.numel():
            local_max = torch.maximum(local_max, log_weights.max().cpu())
    num_drawable = int(collective.all_sum(torch.tensor([drawable], dtype=torch.int64))[0])
    shift = collective.gather_rows(local_max.reshape(1)).max()
    if num_drawable < query_size and not fill_uniformly:
        raise ValueError(
            f"Expected argument `log_weights` to give at least `query_size`={query_size} items a non-zero"
            f" probability, but got {num_drawable}."
        )
    num_weighted, num_fill = min(query_size, num_drawable), query_size - min(query_size, num_drawable)

    # Second pass: a running top of the keys (log w + G), the log-sum of the weights left behind, and the
    # zero-weight items with the largest noise for the fill.
    empty_float = torch.empty(0, dtype=torch.float64, device=device)
    empty_long = torch.empty(0, dtype=torch.int64, device=device)
    keys, kept_weights, kept = empty_float, empty_float, empty_long  # kept: local positions
    noise_zero, kept_zero = empty_float, empty_long
    left_behind = torch.tensor(-torch.inf, dtype=torch.float64, device=device)
    for start in range(0, total, chunk):
        uniform = torch.rand(min(chunk, total - start), dtype=torch.float64, generator=generator)
        noise = gumbel_noise(uniform[rank::world_size]).to(device)
        first = start // world_size
        positions = torch.arange(first, first + noise.numel(), device=device)
        log_weights = log_weights_fn(scores[first : first + noise.numel()])
        if num_drawable:
            log_weights = log_weights - shift.to(device)
        positive = log_weights > -torch.inf
        keys = torch.cat([keys, (log_weights + noise)[positive]])
        kept_weights = torch.cat([kept_weights, log_weights[positive]])
        kept = torch.cat([kept, positions[positive]])
        if keys.numel() > num_weighted:
            order = torch.topk(keys, num_weighted).indices
            dropped = torch.ones(keys.numel(), dtype=torch.bool, device=device)
            dropped[order] = False
            left_behind = _logaddexp(left_behind, kept_weights[dropped])
            keys, kept_weights, kept = keys[order], kept_weights[order], kept[order]
        if num_fill:
            noise_zero = torch.cat([noise_zero, noise[~positive]])
            kept_zero = torch.cat([kept_zero, positions[~positive]])
            if noise_zero.numel() > num_fill:
                order = torch.topk(noise_zero, num_fill).indices
                noise_zero, kept_zero = noise_zero[order], kept_zero[order]

    # Across ranks: every rank's top, then the top of those, as one array's top would be.
    floats = collective.gather_rows(torch.stack([keys, kept_weights, scores[kept].double()], dim=1))
    dataset_indices = collective.gather_rows(indices[kept])
    order = torch.topk(floats[:, 0], num_weighted).indices
    undrawn = torch.ones(floats.shape[0], dtype=torch.bool, device=floats.device)
    undrawn[order] = False
    log_undrawn = _logaddexp(collective.gather_rows(left_behind.reshape(1)), floats[undrawn, 1])
    probabilities = draw_probabilities(floats[order, 1], log_undrawn)
    chosen, chosen_scores = dataset_indices[order], floats[order, 2]
    if num_fill:
        zero_noise = collective.gather_rows(noise_zero)
        zero_indices = collective.gather_rows(indices[kept_zero])
        zero_scores = collective.gather_rows(scores[kept_zero].double())
        filled = torch.topk(zero_noise, num_fill).indices
        num_zero = total - num_drawable
        left = torch.arange(num_zero, num_zero - num_fill, -1, dtype=torch.float64, device=probabilities.device)
        chosen = torch.cat([chosen, zero_indices[filled]])
        chosen_scores = torch.cat([chosen_scores, zero_scores[filled]])
        probabilities = torch.cat([probabilities, left.reciprocal()])
    return chosen, chosen_scores.to(scores.dtype), probabilities
