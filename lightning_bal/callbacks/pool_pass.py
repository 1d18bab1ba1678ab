"""The distributed pool pass: score each rank's shard, merge each rank's candidates, select once, broadcast."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from functools import partial
from typing import Any, NamedTuple, cast

import torch
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lightning_bal.annotation.stopping import StoppingCriterion, stop_reasons
from lightning_bal.callbacks.context import StepContext
from lightning_bal.callbacks.embedding_pass import select_from_embeddings
from lightning_bal.data import ActiveDataModule
from lightning_bal.heuristics import EmbeddingHeuristic, Heuristic
from lightning_bal.heuristics.base import ScoredShard
from lightning_bal.mc.pool_batches import module_device
from lightning_bal.utilities.collective import Collective
from lightning_bal.utilities.distributed import gather_rows, gather_uneven, shard, stack_ranks
from lightning_bal.utilities.seeding import Stream

__all__ = [
    "HISTOGRAM_SAMPLE",
    "PoolPass",
    "PoolSelection",
    "PoolStatistics",
    "QueryPlan",
    "plan_query",
    "pool_statistics",
    "progress_refresh_rate",
    "sort_by_index",
    "stop_reasons_at",
]

#: Scores per pool kept for the logged histogram, over all ranks together.
HISTOGRAM_SAMPLE = 10_000


class PoolStatistics(NamedTuple):
    """Mean, max and min of the scores of the whole pool, and a strided sample of them for a histogram."""

    mean: float
    max: float
    min: float
    sample: Tensor


def sort_by_index(indices: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """``(indices, scores)`` in ascending index order; no copy when they already are (the pool loader's order)."""
    if indices.numel() < 2 or bool((indices[1:] > indices[:-1]).all()):
        return indices, scores
    order = torch.argsort(indices)
    return indices[order], scores[order]


def pool_statistics(
    strategy: Any, world_size: int, scores: Tensor, device: torch.device | None = None, sample: int = HISTOGRAM_SAMPLE
) -> PoolStatistics | None:
    """The :class:`PoolStatistics` of every rank's scores (all-reduced); ``None`` when no rank scored anything."""
    device = device or torch.device("cpu")
    top, bottom = (-torch.inf, torch.inf) if scores.numel() == 0 else (float(scores.max()), float(scores.min()))
    total = float(scores.sum(dtype=torch.float64))
    figures = torch.tensor([total, float(scores.numel()), top, bottom], dtype=torch.float64)
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


class PoolSelection(NamedTuple):
    """What a pool pass gives every rank; ``scores`` and ``gains`` (BatchBALD's) only on rank zero."""

    indices: Tensor
    probabilities: Tensor | None
    scores: Tensor
    seconds: float
    shard: Tensor
    pool_statistics: PoolStatistics | None = None
    rank_seconds: tuple[float, ...] = ()
    gains: Tensor | None = None

    @property
    def pool_scores(self) -> Tensor | None:
        """A bounded sample of the pool's scores over all ranks, for a histogram (``None``: no statistics)."""
        return None if self.pool_statistics is None else self.pool_statistics.sample


class PoolPass:
    """Score the pool with ``heuristic`` across every rank, and select as its ``select`` would on the whole pool."""

    def __init__(self, heuristic: Heuristic) -> None:
        self.heuristic = heuristic

    def run(self, context: StepContext) -> PoolSelection:
        """Score ``context.candidates`` (dataset indices of the pool) and select ``context.query_size`` of them."""
        start = time.perf_counter()
        strategy, rank, world_size = context.strategy, context.rank, context.world_size
        local = context.datamodule.pool_shard(context.candidates, rank, world_size)
        if self.heuristic.needs_embeddings:
            # Embedding heuristics (BADGE, Core-Set): every rank selects from its own shard, with collectives.
            embedding_heuristic = cast(EmbeddingHeuristic, self.heuristic)
            bar = partial(_progress, refresh_rate=context.progress, rank=rank, world_size=world_size)
            picks = select_from_embeddings(embedding_heuristic, context, local, bar)
            selected = strategy.broadcast(picks.indices, src=0)
            scores = picks.scores if rank == 0 else torch.empty(0)
            seconds = time.perf_counter() - start
            return PoolSelection(selected, None, scores, seconds, local)
        pool = self._score(context, local)
        seconds = time.perf_counter() - start
        collective = Collective(strategy, rank, world_size)
        selection = self.heuristic.select_sharded(
            pool, context.query_size, context.generator(Stream.SELECTION), collective
        )
        selected, probabilities = strategy.broadcast((selection.indices, selection.probabilities), src=0)
        scores = selection.scores if rank == 0 else torch.empty(0)
        device = module_device(context.pl_module)
        statistics = None
        if self.heuristic.needs_predictions:
            statistics = pool_statistics(strategy, world_size, pool.scores, device)
        rank_seconds = stack_ranks(strategy, torch.tensor([seconds], dtype=torch.float64, device=device), world_size)
        rank_seconds_tuple = tuple(rank_seconds.reshape(-1).tolist())
        gains = selection.gains if rank == 0 else None
        return PoolSelection(selected, probabilities, scores, seconds, local, statistics, rank_seconds_tuple, gains)

    def _score(self, context: StepContext, local: Tensor) -> ScoredShard:
        """This rank's scores of its shard ``local``, with its best candidates' inputs for a batch-aware heuristic."""
        if not self.heuristic.needs_predictions:
            return ScoredShard(local, torch.zeros(local.numel()))
        num_candidates = self.heuristic.num_candidates(context.query_size, context.candidates.numel())
        # Preallocated: only [N] scores are kept however large the pool (and no heap growth from concatenation).
        local_scores = torch.empty(local.numel())
        local_indices = torch.empty(local.numel(), dtype=torch.long)
        filled = 0
        top_scores, top_indices, top_outputs = torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0)
        targets = self._targets(context) if self.heuristic.needs_targets else None
        loader = context.datamodule.pool_dataloader(local)
        batches = context.posterior.batches(
            context.pl_module, loader, context.iterations, context.mask_seed, self.heuristic.transform
        )
        bar = (len(loader), context.progress, context.rank, context.world_size)
        for batch_indices, outputs in _progress(batches, *bar):
            batch_scores = self.heuristic.score(outputs) if targets is None else self.heuristic.score(outputs, targets)  # type: ignore[call-arg]
            local_scores[filled : filled + batch_scores.numel()] = batch_scores
            local_indices[filled : filled + batch_scores.numel()] = batch_indices
            filled += batch_scores.numel()
            if num_candidates:
                top_scores, top_indices, top_outputs = self._keep_top(
                    num_candidates, (top_scores, top_indices, top_outputs), (batch_scores, batch_indices, outputs)
                )
        local_indices, local_scores = sort_by_index(local_indices[:filled], local_scores[:filled])
        return ScoredShard(local_indices, local_scores, top_indices, top_scores, top_outputs)

    def _targets(self, context: StepContext) -> Tensor:
        """MC predictions on EPIG's random targets, with the pool pass's mask seed (sample k: one model for both)."""
        target_dataset = self.heuristic.target_dataset
        source = context.candidates if target_dataset is None else torch.arange(len(target_dataset))
        order = torch.randperm(source.numel(), generator=context.generator(Stream.TARGETS))
        chosen = source[order[: self.heuristic.num_targets]]
        local = shard(chosen.sort().values, context.rank, context.world_size)
        datamodule = context.datamodule
        loader = (
            datamodule.pool_dataloader(local)
            if target_dataset is None
            else datamodule.inputs_dataloader(target_dataset, local)
        )
        indices, outputs = [], []
        for batch_indices, batch_outputs in context.posterior.batches(
            context.pl_module, loader, context.iterations, context.mask_seed, self.heuristic.transform
        ):
            indices.append(batch_indices)
            outputs.append(batch_outputs)
        device = module_device(context.pl_module)
        strategy, world_size = context.strategy, context.world_size
        # A rank with no targets (fewer targets than ranks) still joins the gathers, with empty tensors.
        local_outputs = torch.cat(outputs) if outputs else torch.zeros(0)
        local_indices = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long)
        gathered = gather_uneven(strategy, local_outputs.to(device), world_size)
        order = torch.argsort(gather_uneven(strategy, local_indices.to(device), world_size))
        return gathered[order]

    def _keep_top(
        self, k: int, top: tuple[Tensor, Tensor, Tensor], batch: tuple[Tensor, Tensor, Tensor]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Running top-``k`` ``(scores, indices, outputs)`` of this rank's shard, with a batch's of them."""
        (top_scores, top_indices, top_outputs), (batch_scores, batch_indices, outputs) = top, batch
        scores = torch.cat([top_scores, batch_scores.float().cpu()])
        indices = torch.cat([top_indices, batch_indices.cpu()])
        outputs = outputs.cpu() if top_outputs.numel() == 0 else torch.cat([top_outputs, outputs.cpu()])
        if scores.numel() <= k:
            return scores, indices, outputs
        keep = torch.topk(scores, k, largest=self.heuristic.higher_is_better).indices
        return scores[keep], indices[keep], outputs[keep]


def _progress(
    batches: Iterator[Any], total: int, refresh_rate: int, rank: int = 0, world_size: int = 1
) -> Iterator[Any]:
    """One bar per rank (so a straggler shows), drawn as Lightning's, every ``refresh_rate`` batches (0: none)."""
    if refresh_rate <= 0:
        yield from batches
        return
    bar = Tqdm(
        total=total,
        desc="Pool pass (MC-Dropout)" if world_size == 1 else f"[rank {rank}] Pool pass (MC-Dropout)",
        position=rank if world_size > 1 else None,
        leave=False,
        dynamic_ncols=True,
        file=sys.stdout,
        bar_format=TQDMProgressBar.BAR_FORMAT,
    )
    try:
        for done, batch in enumerate(batches, start=1):
            if done % refresh_rate == 0 or done == total:
                bar.n = done
                bar.refresh()
            yield batch
    finally:
        bar.close()


def progress_refresh_rate(trainer: Any) -> int:
    """The refresh rate of the pool pass's bar: the trainer's TQDM bar's (0: no bar)."""
    bar = trainer.progress_bar_callback
    return bar.refresh_rate if isinstance(bar, TQDMProgressBar) and bar.is_enabled else 0


class QueryPlan(NamedTuple):
    """The pool items a step scores and how many of them it labels, or why the run stops instead."""

    candidates: Tensor
    query_size: int
    stop_reason: str | None


def plan_query(datamodule: ActiveDataModule, query_size: int, label_budget: int | None) -> QueryPlan:
    """Plan a step: score ``datamodule.scoring_indices()``, label at most ``query_size`` within ``label_budget``."""
    bought = datamodule.num_labelled + len(datamodule.ledger.pending_query)  # unanswered queries count as bought
    budget_left = None if label_budget is None else label_budget - bought
    candidates = datamodule.scoring_indices()
    if (budget_left is not None and budget_left <= 0) or candidates.numel() == 0:
        reason = "the label budget is spent" if candidates.numel() else "the pool is exhausted"
        return QueryPlan(candidates, 0, reason)
    if candidates.numel() < query_size:
        rank_zero_warn(
            f"The pool to score holds {candidates.numel()} samples, fewer than `query_size={query_size}`:"
            " labelling all of them; training stops at the next step."
        )
    limit = query_size if budget_left is None else budget_left
    return QueryPlan(candidates, min(query_size, candidates.numel(), limit), None)


def stop_reasons_at(
    criteria: list[StoppingCriterion], context: StepContext, selection: PoolSelection | None = None
) -> list[str]:
    """Why ``criteria`` end the run (empty: go on), alike on every rank; before the pool pass, those not reading it."""
    asked = [c for c in criteria if c.needs_pool_scores == (selection is not None)]
    if not asked:
        return []  # every rank holds the same criteria: all skip the collective alike

    statistics = None if selection is None else selection.pool_statistics
    view = context._replace(
        # The criteria read the figures as they were before any of them added its own.
        figures=dict(context.figures),
        validation=context.val_metrics,
        pool_scores=None if selection is None else selection.pool_scores,
        pool_mean=None if statistics is None else statistics.mean,
        pool_max=None if statistics is None else statistics.max,
    )
    reasons = stop_reasons(asked, view, context.figures)
    trainer = context.trainer
    if not trainer.strategy.reduce_boolean_decision(bool(reasons), all=False):
        return []
    return reasons or ["another rank's stopping criterion"]
