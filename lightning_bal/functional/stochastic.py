"""Stochastic batch acquisition: sample a batch in proportion to a score (Kirsch et al., 2023)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lightning_bal.functional._embedding_checks import check_generator
from lightning_bal.utilities.checks import check_finite_number, check_python_int

__all__ = [
    "SamplingMode",
    "SAMPLING_MODES",
    "draw_probabilities",
    "gumbel_noise",
    "sampling_log_weights",
    "sample_without_replacement",
]

SamplingMode = Literal["power", "softmax", "softrank"]
SAMPLING_MODES: tuple[str, ...] = ("power", "softmax", "softrank")


def sampling_log_weights(
    scores: Tensor, mode: SamplingMode = "power", beta: float = 1.0, higher_is_better: bool = True
) -> Tensor:
    r"""Unnormalised log sampling weights of each item, from its acquisition score.

    ``beta log s`` (power), ``beta s`` (softmax) or ``-beta log rank`` (softrank, see docs/heuristics.md), where
    ``rank`` is 1 for the best score (ties broken by position). For ``higher_is_better=False`` softmax uses
    :math:`-s_i` and softrank ranks ascending; power needs non-negative scores where higher is better. The coldness
    ``beta >= 0`` gives uniform sampling at 0 and nears top-k as it grows. Float64, ``-inf`` for a zero power score.

    Examples:
        >>> sampling_log_weights(torch.tensor([1.0, 4.0]), "power", beta=0.5).exp()
        tensor([1., 2.], dtype=torch.float64)
    """
    if mode not in SAMPLING_MODES:
        raise ValueError(f"Expected argument `mode` to be one of {SAMPLING_MODES}, but got {mode!r}.")
    check_finite_number("beta", beta, 0)
    if not isinstance(scores, Tensor) or scores.ndim != 1:
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores)
        raise ValueError(f"Expected argument `scores` to be a tensor of shape [N], but got {got}.")
    scores = scores.to(torch.float64)
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("Expected argument `scores` to contain finite values, but got NaN or inf.")
    if mode == "power":
        if not higher_is_better:
            raise ValueError(
                "Expected argument `higher_is_better` to be True for power sampling (it needs non-negative scores"
                " where higher is better), but got False."
            )
        if bool((scores < 0).any()):
            raise ValueError(
                f"Expected argument `scores` to be >= 0 for power sampling, but got {float(scores.min())}."
            )
        return scores.log() * beta if beta > 0 else torch.zeros_like(scores)
    if mode == "softmax":
        return scores * (beta if higher_is_better else -beta)
    order = torch.argsort(scores, descending=higher_is_better, stable=True)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=scores.dtype, device=scores.device)
    return ranks.log() * -beta


def sample_without_replacement(
    log_weights: Tensor, query_size: int, generator: torch.Generator | None = None, fill_uniformly: bool = False
) -> tuple[Tensor, Tensor]:
    r"""Draw ``query_size`` distinct items one after another, each with probability proportional to its weight.

    One Gumbel-top-k draw of ``[N]`` unnormalised ``log_weights``. Items of weight zero (``-inf``) are drawn only with
    ``fill_uniformly=True``, once no other is left, uniformly. Returns ``(indices, probabilities)`` in drawing order,
    each probability conditional on the earlier draws.

    Examples:
        >>> indices, probabilities = sample_without_replacement(torch.zeros(4), 2, torch.Generator().manual_seed(0))
        >>> probabilities
        tensor([0.2500, 0.3333], dtype=torch.float64)
    """
    if not isinstance(log_weights, Tensor) or log_weights.ndim != 1:
        got = tuple(log_weights.shape) if isinstance(log_weights, Tensor) else type(log_weights).__name__
        raise ValueError(f"Expected argument `log_weights` to be a tensor of shape [N], but got {got}.")
    if not log_weights.is_floating_point():
        raise TypeError(
            f"Expected argument `log_weights` to be a floating point tensor, but got dtype {log_weights.dtype}."
        )
    check_generator(generator)
    check_python_int("query_size", query_size, 0, log_weights.numel())
    log_weights = log_weights.to(torch.float64)
    if bool((log_weights.isnan() | (log_weights == torch.inf)).any()):
        raise ValueError("Expected argument `log_weights` to hold no NaN or +inf, but got some.")
    if bool((log_weights > -torch.inf).any()):
        # Shifting by the largest weight changes no probability and keeps the Gumbel keys far from overflow; a
        # weight that becomes zero by it (e^-inf) is zero relative to the largest in float64 too.
        log_weights = log_weights - log_weights.max()
    drawable = log_weights > -torch.inf
    num_drawable = int(drawable.sum())
    if num_drawable < query_size and not fill_uniformly:
        raise ValueError(
            f"Expected argument `log_weights` to give at least `query_size`={query_size} items a non-zero"
            f" probability, but got {num_drawable}."
        )
    uniform = torch.rand(log_weights.shape, dtype=torch.float64, device=log_weights.device, generator=generator)
    gumbel = gumbel_noise(uniform)
    weighted = torch.topk(log_weights + gumbel, min(query_size, num_drawable)).indices
    log_undrawn = log_weights.index_fill(0, weighted, -torch.inf).logsumexp(0)
    probabilities = draw_probabilities(log_weights[weighted], log_undrawn)
    if weighted.numel() == query_size:
        return weighted, probabilities
    # Zero-weight phase: Gumbel keys alone order the zero-weight items uniformly at random.
    zero_weight = torch.nonzero(~drawable).squeeze(1)
    num_fill = query_size - weighted.numel()
    filled = zero_weight[torch.topk(gumbel[zero_weight], num_fill).indices]
    num_zero = zero_weight.numel()
    left = torch.arange(num_zero, num_zero - num_fill, -1, dtype=torch.float64, device=log_weights.device)
    return torch.cat([weighted, filled]), torch.cat([probabilities, left.reciprocal()])


def gumbel_noise(uniform: Tensor) -> Tensor:
    """Standard Gumbel noise ``-log(-log(u))`` of float64 uniforms ``u`` (a zero draw clamped to the tiniest float).

    Examples:
        >>> gumbel_noise(torch.tensor([0.5], dtype=torch.float64))
        tensor([0.3665], dtype=torch.float64)
    """
    return -torch.log(-torch.log(uniform.clamp_min(torch.finfo(torch.float64).tiny)))


def draw_probabilities(log_drawn: Tensor, log_undrawn: Tensor) -> Tensor:
    r"""Probability of each draw given the earlier ones, :math:`w_{i_t} / \sum_{j \notin i_{<t}} w_j`, in log space.

    Args:
        log_drawn: ``[q]`` log weights of the drawn items, in drawing order.
        log_undrawn: scalar log of the summed weights of every item not drawn.

    Examples:
        >>> draw_probabilities(torch.tensor([0.0, 0.0], dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))
        tensor([0.3333, 0.5000], dtype=torch.float64)
    """
    # The mass left before draw t is a suffix sum: `logcumsumexp` backwards finds it without subtracting.
    log_left = torch.logaddexp(log_drawn.flip(0).logcumsumexp(0).flip(0), log_undrawn)
    return (log_drawn - log_left).exp()
