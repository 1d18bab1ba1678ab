"""Random draws: uniform :class:`Random`, and stochastic batch acquisition (Kirsch et al., 2023) by a base score."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from lightning_bal.functional import SamplingMode, sample_without_replacement, sampling_log_weights
from lightning_bal.functional._validation import Reduction
from lightning_bal.functional.outputs import OutputKey
from lightning_bal.heuristics.base import Heuristic, ScoredShard, Selection, check_scores, refuse_nan
from lightning_bal.heuristics.pointwise import BALD, Entropy
from lightning_bal.heuristics.registry import register_heuristic
from lightning_bal.heuristics.streaming_selection import CHUNK, draw_sharded
from lightning_bal.utilities.checks import check_python_int
from lightning_bal.utilities.collective import Collective

__all__ = [
    "STREAM_ABOVE",
    "Random",
    "StochasticHeuristic",
    "PowerBALD",
    "PowerEntropy",
    "SoftmaxBALD",
    "SoftmaxEntropy",
    "SoftrankBALD",
    "SoftrankEntropy",
]


#: Pools of more scores than this (over all ranks) are drawn a chunk at a time on each rank (``draw_sharded``); up to
#: it, every score is gathered (at most 48 MiB with the indices) and the probabilities are bit-identical to those of
#: ``select_from_scores``, not only equal to the last bits.
STREAM_ABOVE = 4 * CHUNK


def _select_streamed(
    heuristic: Heuristic,
    shard: ScoredShard,
    query_size: int,
    generator: torch.Generator,
    collective: Collective,
    log_weights_fn: Callable[[Tensor], Tensor] | None,
) -> Selection | None:
    """The streamed draw over every rank's ``shard`` (weights from each score alone); ``None``: gather instead."""
    total = int(collective.all_sum(torch.tensor([shard.scores.numel()], dtype=torch.int64))[0])
    if log_weights_fn is None or total <= heuristic.stream_above:  # type: ignore[attr-defined]
        return None
    check_python_int("query_size", query_size, 0, total)
    scores = shard.scores
    # Counted over every rank, so every rank refuses alike, with the messages of the gathered draw; a chunk at a
    # time, so that no [N] temporary is made.
    counts = torch.zeros(3, dtype=torch.float64)
    counts[2] = torch.inf
    for start in range(0, scores.numel(), CHUNK):
        part = scores[start : start + CHUNK]
        counts[0] += int(part.isnan().sum())
        counts[1] += int((~part.isfinite()).sum())
        counts[2] = min(float(counts[2]), float(part.min()))
    counts = collective.gather_rows(counts[None])
    refuse_nan(int(counts[:, 0].sum()), total)
    if int(counts[:, 1].sum()):
        raise ValueError("Expected argument `scores` to contain finite values, but got NaN or inf.")
    smallest = counts[:, 2].min()
    if float(smallest) < 0:
        log_weights_fn(torch.tensor([float(smallest)]))  # raises the refusal of negative scores, if the mode has one
    indices, chosen_scores, probabilities = draw_sharded(
        shard.indices,
        scores,
        log_weights_fn,
        query_size,
        generator,
        collective,
        fill_uniformly=isinstance(heuristic, StochasticHeuristic),
    )
    return Selection(indices, chosen_scores, probabilities)


@register_heuristic
class Random(Heuristic):
    """Select uniformly at random without replacement, seeded by ``generator``; needs no predictions (scores zero).

    Examples:
        >>> selection = Random().select_from_scores(torch.zeros(4), 2, torch.Generator().manual_seed(0))
        >>> selection.probabilities
        tensor([0.2500, 0.3333], dtype=torch.float64)
    """

    name = "random"
    cost = "no MC pass: O(N) to draw"
    needs_predictions = False
    stochastic = True

    def score(self, log_probs: Any) -> Tensor:
        """Zeros ``[N]`` for any tensor with N items on dim 0."""
        if not isinstance(log_probs, Tensor) or log_probs.ndim < 1:
            raise ValueError(
                f"Expected argument `log_probs` to be a tensor with N items on dim 0, but got {log_probs!r}."
            )
        return torch.zeros(log_probs.shape[0], device=log_probs.device)

    def select_from_scores(
        self, scores: Tensor, query_size: int, generator: torch.Generator | None = None
    ) -> Selection:
        """Draw ``query_size`` of the ``len(scores)`` items uniformly; probabilities are ``1 / (N - i)``."""
        check_scores(scores, query_size)
        indices, probabilities = sample_without_replacement(
            torch.zeros(scores.numel(), dtype=torch.float64, device=scores.device), query_size, generator
        )
        return Selection(indices, scores[indices], probabilities)

    #: Above this many scores over all ranks the draw streams on each rank (see :data:`STREAM_ABOVE`).
    stream_above: int = STREAM_ABOVE

    def select_sharded(
        self, shard: ScoredShard, query_size: int, generator: torch.Generator, collective: Collective
    ) -> Selection:
        """The draw :meth:`select_from_scores` makes over every rank's scores; streamed above ``stream_above``."""
        streamed = _select_streamed(
            self, shard, query_size, generator, collective, lambda s: torch.zeros(s.numel(), dtype=torch.float64)
        )
        return super().select_sharded(shard, query_size, generator, collective) if streamed is None else streamed


class StochasticHeuristic(Heuristic):
    r"""Score with ``base_heuristic``, then draw the batch without replacement with weights from the scores.

    .. math:: w_i = s_i^\beta \ (\text{power}), \quad e^{\beta s_i} \ (\text{softmax}), \quad
        \mathrm{rank}_i^{-\beta} \ (\text{softrank})

    Subclasses fix ``base_heuristic`` and ``mode``. Items of weight zero are drawn uniformly once every other item
    is, so selection never fails; see docs/heuristics.md#stochastic-batch-acquisition-kirsch-et-al-2023.

    Args:
        beta: Coldness :math:`\beta \ge 0` (1 in the paper); 0 is uniform, large values approach top-k.
    """

    base_heuristic: ClassVar[type[Heuristic]]
    mode: ClassVar[SamplingMode]
    stochastic = True
    _repr_attributes = ("beta",)

    def __init__(
        self,
        beta: float = 1.0,
        reduction: Reduction = "mean",
        validate_args: bool = True,
        output: OutputKey | None = None,
        mask: OutputKey | None = None,
    ) -> None:
        if not hasattr(type(self), "base_heuristic"):
            raise TypeError(
                f"`{type(self).__name__}` has no `base_heuristic`: build a subclass that sets `base_heuristic` and"
                " `mode` (such as `PowerBALD`), not the StochasticHeuristic base."
            )
        super().__init__(reduction=reduction, validate_args=validate_args, output=output, mask=mask)
        # Fails early (e.g. power over a lower-is-better score) rather than at the first acquisition.
        sampling_log_weights(torch.ones(1), self.mode, beta, self.base_heuristic.higher_is_better)
        self.beta = beta
        self._base = self.base_heuristic(reduction=reduction, validate_args=validate_args)

    def score(self, log_probs: Any, mask: Tensor | None = None) -> Tensor:
        """The base heuristic's ``[N]`` scores (of a :class:`~lightning_bal.functional.outputs.Masked` input too)."""
        return self._base.score(log_probs, mask=mask)  # type: ignore[call-arg]

    def select_from_scores(
        self, scores: Tensor, query_size: int, generator: torch.Generator | None = None
    ) -> Selection:
        """Draw ``query_size`` items with weights from ``scores``, seeded by ``generator``; zero weights drawn last."""
        check_scores(scores, query_size)
        log_weights = sampling_log_weights(scores, self.mode, self.beta, self.base_heuristic.higher_is_better)
        indices, probabilities = sample_without_replacement(log_weights, query_size, generator, fill_uniformly=True)
        return Selection(indices, scores[indices], probabilities)

    #: Above this many scores over all ranks the draw streams on each rank (see :data:`STREAM_ABOVE`).
    stream_above: int = STREAM_ABOVE

    def select_sharded(
        self, shard: ScoredShard, query_size: int, generator: torch.Generator, collective: Collective
    ) -> Selection:
        """The draw :meth:`select_from_scores` makes over every rank's scores; streamed above ``stream_above``.

        Power and softmax weights stream (a Gumbel-top-k per rank, merged); softrank weights need every score's
        rank, so its scores are gathered.
        """
        higher = self.base_heuristic.higher_is_better
        log_weights_fn = (
            None if self.mode == "softrank" else lambda s: sampling_log_weights(s, self.mode, self.beta, higher)
        )
        streamed = _select_streamed(self, shard, query_size, generator, collective, log_weights_fn)
        return super().select_sharded(shard, query_size, generator, collective) if streamed is None else streamed


@register_heuristic
class PowerBALD(StochasticHeuristic):
    """BALD scores raised to the power beta, the paper's best performer.

    Examples:
        >>> selection = PowerBALD().select_from_scores(torch.tensor([1.0, 3.0]), 2, torch.Generator().manual_seed(0))
        >>> selection.probabilities  # item 0 was drawn first with probability 1 / (1 + 3), then item 1 surely
        tensor([0.2500, 1.0000], dtype=torch.float64)
    """

    name = "power_bald"
    cost = "BALD, then an O(N) weighted draw"
    base_heuristic = BALD
    mode = "power"
    needs_mc_samples = True


@register_heuristic
class PowerEntropy(StochasticHeuristic):
    """Entropy scores raised to the power beta."""

    name = "power_entropy"
    cost = "entropy, then an O(N) weighted draw"
    base_heuristic = Entropy
    mode = "power"


@register_heuristic
class SoftmaxBALD(StochasticHeuristic):
    """Softmax of beta times the BALD scores."""

    name = "softmax_bald"
    cost = "BALD, then an O(N) weighted draw"
    base_heuristic = BALD
    mode = "softmax"
    needs_mc_samples = True


@register_heuristic
class SoftmaxEntropy(StochasticHeuristic):
    """Softmax of beta times the entropy scores."""

    name = "softmax_entropy"
    cost = "entropy, then an O(N) weighted draw"
    base_heuristic = Entropy
    mode = "softmax"


@register_heuristic
class SoftrankBALD(StochasticHeuristic):
    """Weights ``rank ** -beta`` of the BALD ranking."""

    name = "softrank_bald"
    cost = "BALD, then an O(N log N) ranking and weighted draw"
    base_heuristic = BALD
    mode = "softrank"
    needs_mc_samples = True


@register_heuristic
class SoftrankEntropy(StochasticHeuristic):
    """Weights ``rank ** -beta`` of the entropy ranking."""

    name = "softrank_entropy"
    cost = "entropy, then an O(N log N) ranking and weighted draw"
    base_heuristic = Entropy
    mode = "softrank"
