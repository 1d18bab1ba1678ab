"""The heuristic interface: score a pool, then select a batch from the scores."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor

from lightning_bal.functional._validation import Reduction, check_reduction
from lightning_bal.functional.outputs import Masked, OutputKey, log_softmax_classes, sample_mask, select_output
from lightning_bal.heuristics.streaming_selection import streaming_top_k, top_k
from lightning_bal.utilities.checks import check_bool, check_python_int
from lightning_bal.utilities.collective import Collective

__all__ = ["Selection", "Heuristic", "ScoredShard", "check_scores", "is_output_key", "top_k", "with_mask"]


class Selection(NamedTuple):
    """A selected batch, in selection order.

    Attributes:
        indices: int64 ``[q]`` positions into the N items that were scored.
        scores: ``[q]`` each pick's score, as the heuristic scores the pool (BatchBALD: each pick's BALD score).
        probabilities: Stochastic heuristics: float64 ``[q]``, each pick's probability given the earlier draws.
        gains: BatchBALD: ``[q]``, the joint mutual information each pick added (summing to the batch's).
    """

    indices: Tensor
    scores: Tensor
    probabilities: Tensor | None = None
    gains: Tensor | None = None


class ScoredShard(NamedTuple):
    """One rank's scored items (dataset ``indices``, ascending) and, batch-aware, its best ones' ``[M, K, C]`` data."""

    indices: Tensor
    scores: Tensor
    candidate_indices: Tensor = torch.empty(0, dtype=torch.int64)
    candidate_scores: Tensor = torch.empty(0)
    candidate_inputs: Tensor = torch.empty(0)


def check_scores(scores: Tensor, query_size: int) -> None:
    """Check that ``scores`` is ``[N]`` without NaN and ``query_size`` an integer in ``[0, N]``."""
    if not isinstance(scores, Tensor) or scores.ndim != 1:
        got = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores)
        raise ValueError(f"Expected argument `scores` to be a tensor of shape [N], but got {got}.")
    check_python_int("query_size", query_size, 0, scores.numel())
    refuse_nan(_count_nan(scores), scores.numel())


def is_output_key(key: Any) -> bool:
    """Whether ``key`` can name a model output: a tuple position, a dict key or ``None``."""
    return key is None or (not isinstance(key, bool) and isinstance(key, (int, str)))


def with_mask(outputs: Any, values: Any, key: OutputKey | None) -> Any:
    """``values`` paired with the validity mask the model returns as output ``key``; ``values`` alone for ``None``."""
    return values if key is None else Masked(values, sample_mask(select_output(outputs, key), key))


def _count_nan(scores: Tensor) -> int:
    return int(scores.isnan().sum()) if scores.is_floating_point() else 0


def refuse_nan(num_nan: int, total: int) -> None:
    if num_nan:
        raise ValueError(
            f"Expected argument `scores` to hold no NaN, but got {num_nan} of {total}: a NaN score ranks neither"
            " above nor below any other, so no selection from it is meaningful."
        )


class Heuristic:
    """Base class of acquisition heuristics: ``score`` items one batch at a time, ``select`` a batch from them.

    Subclasses implement :meth:`score` and declare their needs as class attributes (see
    docs/heuristics.md#a-heuristic-of-your-own).

    Args:
        reduction: How scores over trailing dims (pixels, tokens) become one score per item.
        output: Which output of a multi-output model to score (tuple position or dict key); ``None`` for one tensor.
        mask: Which output holds a bool validity mask ``[B, ...]`` over the scored positions (False: left out of
            ``reduction``). Needs ``output``. See ``docs/tasks.md``.
    """

    name: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    needs_predictions: ClassVar[bool] = True
    needs_mc_samples: ClassVar[bool] = False
    batch_aware: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False
    consumes: ClassVar[Literal["log_probs", "outputs"]] = "log_probs"
    needs_targets: ClassVar[bool] = False
    needs_embeddings: ClassVar[bool] = False
    cost: ClassVar[str | None] = None
    #: With ``needs_targets``: the dataset the targets are drawn from (``None``: the pool), and how many are drawn.
    target_dataset: Any = None
    num_targets: int = 0
    #: The attributes ``repr`` shows, as ``name=value``.
    _repr_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        reduction: Reduction = "mean",
        validate_args: bool = True,
        output: OutputKey | None = None,
        mask: OutputKey | None = None,
    ) -> None:
        check_reduction(reduction)
        check_bool("validate_args", validate_args)
        for name, key in (("output", output), ("mask", mask)):
            if not is_output_key(key):
                raise TypeError(
                    f"Expected argument `{name}` to be a tuple position, a dict key or None, but got {key!r}."
                )
        if mask is not None and (output is None or mask == output):
            raise ValueError(
                f"Expected argument `output` to name the model output to score, apart from `mask={mask!r}`, but got"
                f" output={output!r}: a model with a mask returns both, e.g. `dict(logits=..., mask=...)`."
            )
        self.reduction = reduction
        self.validate_args = validate_args
        self.output = output
        self.mask = mask

    def transform(self, outputs: Any) -> Any:
        """The model's raw MC outputs ``[B, K, ...]`` to what :meth:`score` consumes (with ``mask``, a ``Masked``)."""
        selected = select_output(outputs, self.output)
        values = log_softmax_classes(selected) if self.consumes == "log_probs" else selected.float()
        return with_mask(outputs, values, self.mask)

    def score(self, log_probs: Any) -> Tensor:
        """Score each item: ``[N, K, C, ...]`` log-probabilities to ``[N]`` scores (pointwise, so batch by batch)."""
        raise NotImplementedError(f"{type(self).__name__} must implement `score`.")

    def select(self, log_probs: Any, query_size: int, generator: torch.Generator | None = None) -> Selection:
        """Select ``query_size`` of the N items of ``log_probs``; equals ``select_from_scores(score(log_probs))``."""
        return self.select_from_scores(self.score(log_probs), query_size, generator)

    def select_from_scores(
        self, scores: Tensor, query_size: int, generator: torch.Generator | None = None
    ) -> Selection:
        """Select ``query_size`` items from their ``[N]`` scores: the best ones first (``generator`` is unused)."""
        check_scores(scores, query_size)
        indices = top_k(scores, query_size, self.higher_is_better)
        return Selection(indices, scores[indices])

    def num_candidates(self, query_size: int, pool_size: int) -> int:
        """Number of top-scored items whose log-probabilities :meth:`select` needs; 0 for pointwise heuristics."""
        return 0

    def shard_candidates(self, scores: Tensor, query_size: int) -> Tensor:
        """Positions of one rank's ``scores`` the selection over all ranks may pick: top-k its best, stochastic all."""
        if self.stochastic:
            return torch.arange(scores.numel(), device=scores.device)
        return streaming_top_k(scores, min(query_size, scores.numel()), self.higher_is_better)

    def select_sharded(
        self, shard: ScoredShard, query_size: int, generator: torch.Generator, collective: Collective
    ) -> Selection:
        """Select ``query_size`` items over every rank's ``shard``: the same :class:`Selection` on every rank.

        A collective: the result is what :meth:`select_from_scores` (batch-aware: :meth:`select`) makes from all the
        scores in dataset-index order (see docs/heuristics.md#selecting-a-batch).

        Examples:
            >>> shard = ScoredShard(torch.tensor([1, 4, 7]), torch.tensor([0.9, 0.5, 0.5]))
            >>> Heuristic().select_sharded(shard, 2, torch.Generator(), Collective()).indices
            tensor([1, 4])
        """
        if self.batch_aware:
            indices = collective.gather_rows(shard.candidate_indices)
            order = torch.argsort(indices)
            indices, scores = indices[order], collective.gather_rows(shard.candidate_scores)[order]
            inputs = collective.gather_rows(shard.candidate_inputs)[order]
            num_kept = min(self.num_candidates(query_size, scores.numel()), scores.numel())
            kept = top_k(scores, num_kept, self.higher_is_better).sort().values
            selection = self.select(inputs[kept], query_size, generator)
            return selection._replace(indices=indices[kept][selection.indices])
        # Counted over every rank, so every rank refuses alike: a NaN need not be among a rank's candidates.
        counts = collective.all_sum(torch.tensor([_count_nan(shard.scores), shard.scores.numel()]))
        refuse_nan(int(counts[0]), int(counts[1]))
        keep = self.shard_candidates(shard.scores, query_size)
        indices = collective.gather_rows(shard.indices[keep])
        scores = collective.gather_rows(shard.scores[keep])
        order = torch.argsort(indices)
        selection = self.select_from_scores(scores[order], query_size, generator)
        return selection._replace(indices=indices[order][selection.indices])

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._repr_attributes)
        return f"{type(self).__name__}({arguments})"
