"""The distributed pool pass: score each rank's shard, merge each rank's candidates, select once, broadcast."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, TQDMProgressBar
from torch import Tensor, nn

from lightning_bal.callbacks.embedding_pass import select_from_embeddings
from lightning_bal.callbacks.sharded_selection import (
    PoolStatistics,
    gather_rows,
    pool_statistics,
    select_stochastic,
    select_top_k,
    selection_rule,
    sort_by_index,
)
from lightning_bal.data import ActiveDataModule
from lightning_bal.heuristics import Heuristic
from lightning_bal.heuristics.stochastic import StochasticHeuristic
from lightning_bal.mc.posterior import Posterior
from lightning_bal.utilities.distributed import gather_uneven, shard, stack_ranks
from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = ["PoolPass", "PoolSelection", "progress_refresh_rate"]


class PoolSelection(NamedTuple):
    """What a pool pass gives every rank.

    Attributes:
        indices: dataset indices selected, in selection order (the same on every rank).
        probabilities: drawing probabilities of a stochastic heuristic (``None`` otherwise), the same on every rank.
        scores: rank zero: the selection's scores (empty elsewhere).
        pool_scores: a bounded sample of the pool's scores over all ranks, for a histogram (``None`` when the
            heuristic needs no predictions).
        num_scored: how many pool items were scored, over all ranks.
        seconds: time this rank spent in the pass.
        shard: dataset indices this rank scored.
        pool_statistics: mean, max and min of every scored item's score, all-reduced over the ranks.
        rank_seconds: the time each rank spent scoring, in rank order.
        gains: rank zero, BatchBALD: the joint mutual information each pick added (``None`` otherwise).
    """

    indices: Tensor
    probabilities: Tensor | None
    scores: Tensor
    pool_scores: Tensor | None
    num_scored: int
    seconds: float
    shard: Tensor
    pool_statistics: PoolStatistics | None = None
    rank_seconds: tuple[float, ...] = ()
    gains: Tensor | None = None


class _Scores(NamedTuple):
    indices: Tensor  # this rank's dataset indices, ascending (every candidate when nothing is scored)
    scores: Tensor
    candidate_indices: Tensor  # batch-aware heuristics only (else empty): the top-M items by score ...
    candidate_outputs: Tensor  # ... and their transformed outputs [M, K, C]


class PoolPass:
    """Score the pool with ``heuristic`` on K samples of ``posterior``, across every rank of ``strategy``.

    Each rank scores its own disjoint shard of the candidates and keeps its scores; only a bounded number of rows per
    rank crosses ranks (see :mod:`~lightning_bal.callbacks.sharded_selection`): each rank's top ``q`` for top-k
    heuristics, its best ``q`` Gumbel keys and an all-reduced normaliser for stochastic ones, its top candidates with
    their outputs for batch-aware ones (BatchBALD), and reduced statistics for logging. Candidates travel with their
    dataset indices, so the selection does not depend on the sharding and equals that of one process. A heuristic
    with a selection rule of its own (an overridden ``select_from_scores``) gets every score gathered instead. The
    selection is made on rank zero and broadcast. Needs only a strategy with ``all_gather`` and ``broadcast`` (the
    Trainer's, or a stand-in in tests).

    Args:
        heuristic: scores and selects.
        iterations: K, the MC samples per item.
        posterior: draws the K samples.
    """

    def __init__(self, heuristic: Heuristic, iterations: int, posterior: Posterior) -> None:
        self.heuristic = heuristic
        self.iterations = iterations
        self.posterior = posterior

    def run(
        self,
        strategy: Any,
        rank: int,
        world_size: int,
        module: nn.Module,
        datamodule: ActiveDataModule,
        candidates: Tensor,
        query_size: int,
        seed: int,
        step: int,
        progress: int = 0,
    ) -> PoolSelection:
        """Score ``candidates`` (dataset indices of the pool) and select ``query_size`` of them on every rank."""
        start = time.perf_counter()
        local = shard(candidates, rank, world_size)
        if getattr(self.heuristic, "needs_embeddings", False):
            # Embedding heuristics (BADGE, Core-Set): every rank selects from its own shard, with collectives.
            picks = select_from_embeddings(
                self.heuristic,
                self.posterior,
                self.iterations,
                strategy,
                rank,
                world_size,
                module,
                datamodule,
                local,
                query_size,
                seed,
                step,
                _rank_progress(progress, rank, world_size),
            )
            selected = strategy.broadcast(picks.indices, src=0)
            scores = picks.scores if rank == 0 else torch.empty(0)
            seconds = time.perf_counter() - start
            return PoolSelection(selected, None, scores, None, candidates.numel(), seconds, local)
        pool = self._score(
            strategy, rank, world_size, module, datamodule, candidates, local, query_size, seed, step, progress
        )
        seconds = time.perf_counter() - start
        device = _device(module)
        selected, scores, probabilities, gains = self._select(
            strategy, rank, world_size, pool, query_size, derive_seed(seed, step, Stream.SELECTION), device
        )
        selected, probabilities = strategy.broadcast((selected, probabilities), src=0)
        if rank != 0:
            scores = torch.empty(0)
        statistics = None
        if self.heuristic.needs_predictions:
            statistics = pool_statistics(strategy, world_size, pool.scores, device)
        rank_seconds = stack_ranks(strategy, torch.tensor([seconds], dtype=torch.float64, device=device), world_size)
        return PoolSelection(
            selected,
            probabilities,
            scores,
            None if statistics is None else statistics.sample,
            candidates.numel(),
            seconds,
            local,
            statistics,
            tuple(rank_seconds.reshape(-1).tolist()),
            gains,
        )

    def _score(
        self,
        strategy: Any,
        rank: int,
        world_size: int,
        module: nn.Module,
        datamodule: ActiveDataModule,
        candidates: Tensor,
        local: Tensor,
        query_size: int,
        seed: int,
        step: int,
        progress: int,
    ) -> _Scores:
        if not self.heuristic.needs_predictions:
            empty = torch.empty(0)
            return _Scores(candidates, torch.zeros(candidates.numel()), empty.long(), empty)
        num_candidates = self.heuristic.num_candidates(query_size, candidates.numel())
        # Preallocated: only [N] scores are kept however large the pool (and no heap growth from concatenation).
        local_scores = torch.empty(local.numel())
        local_indices = torch.empty(local.numel(), dtype=torch.long)
        filled = 0
        top_scores, top_indices, top_outputs = torch.empty(0), torch.empty(0, dtype=torch.long), torch.empty(0)
        mask_seed = derive_seed(seed, step, Stream.MASKS)
        targets = None
        if self.heuristic.needs_targets:
            targets = self._targets(strategy, rank, world_size, module, datamodule, candidates, seed, step)
        loader = datamodule.pool_dataloader(local)
        batches = self.posterior.batches(module, loader, self.iterations, mask_seed, self.heuristic.transform)
        for batch_indices, outputs in _progress(batches, len(loader), progress, rank, world_size):
            batch_scores = self.heuristic.score(outputs) if targets is None else self.heuristic.score(outputs, targets)  # type: ignore[call-arg]
            local_scores[filled : filled + batch_scores.numel()] = batch_scores
            local_indices[filled : filled + batch_scores.numel()] = batch_indices
            filled += batch_scores.numel()
            if num_candidates:
                top_scores, top_indices, top_outputs = self._keep_top(
                    num_candidates, top_scores, top_indices, top_outputs, batch_scores, batch_indices, outputs
                )
        device = _device(module)
        local_scores, local_indices = local_scores[:filled], local_indices[:filled]
        candidate_indices, candidate_outputs = torch.empty(0, dtype=torch.long), torch.empty(0)
        if num_candidates:
            cand_scores = gather_uneven(strategy, top_scores.to(device), world_size).cpu()
            cand_indices = gather_uneven(strategy, top_indices.to(device), world_size).cpu()
            cand_outputs = gather_uneven(strategy, top_outputs.to(device), world_size).cpu()
            cand_order = torch.argsort(cand_indices)
            cand_scores, cand_indices, cand_outputs = (
                cand_scores[cand_order],
                cand_indices[cand_order],
                cand_outputs[cand_order],
            )
            keep = torch.topk(
                cand_scores, min(num_candidates, cand_scores.numel()), largest=self.heuristic.higher_is_better
            )
            kept = keep.indices.sort().values
            candidate_indices, candidate_outputs = cand_indices[kept], cand_outputs[kept]
        local_indices, local_scores = sort_by_index(local_indices, local_scores)
        return _Scores(local_indices, local_scores, candidate_indices, candidate_outputs)

    def _targets(
        self,
        strategy: Any,
        rank: int,
        world_size: int,
        module: nn.Module,
        datamodule: ActiveDataModule,
        candidates: Tensor,
        seed: int,
        step: int,
    ) -> Tensor:
        """MC predictions on random targets (of the heuristic's ``target_dataset``, or the pool) for EPIG.

        The pool pass uses the same mask seed, hence the same K sub-networks: the joint predictive of a pool item
        and a target needs sample k to be one model for both.
        """
        target_dataset = getattr(self.heuristic, "target_dataset", None)
        num_targets = int(getattr(self.heuristic, "num_targets", 100))
        generator = torch.Generator().manual_seed(derive_seed(seed, step, Stream.TARGETS))
        source = candidates if target_dataset is None else torch.arange(len(target_dataset))
        chosen = source[torch.randperm(source.numel(), generator=generator)[:num_targets]]
        local = shard(chosen.sort().values, rank, world_size)
        loader = (
            datamodule.pool_dataloader(local)
            if target_dataset is None
            else datamodule.inputs_dataloader(target_dataset, local)
        )
        indices, outputs = [], []
        mask_seed = derive_seed(seed, step, Stream.MASKS)
        for batch_indices, batch_outputs in self.posterior.batches(
            module, loader, self.iterations, mask_seed, self.heuristic.transform
        ):
            indices.append(batch_indices)
            outputs.append(batch_outputs)
        device = _device(module)
        # A rank with no targets (fewer targets than ranks) still joins the gathers, with empty tensors.
        local_outputs = torch.cat(outputs) if outputs else torch.zeros(0)
        local_indices = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long)
        gathered = gather_uneven(strategy, local_outputs.to(device), world_size)
        order = torch.argsort(gather_uneven(strategy, local_indices.to(device), world_size))
        return gathered[order]

    def _keep_top(
        self,
        k: int,
        top_scores: Tensor,
        top_indices: Tensor,
        top_outputs: Tensor,
        batch_scores: Tensor,
        batch_indices: Tensor,
        outputs: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Running top-``k`` of this rank's shard by score, with the outputs a batch-aware heuristic needs."""
        scores = torch.cat([top_scores, batch_scores.float().cpu()])
        indices = torch.cat([top_indices, batch_indices.cpu()])
        outputs = outputs.cpu() if top_outputs.numel() == 0 else torch.cat([top_outputs, outputs.cpu()])
        if scores.numel() <= k:
            return scores, indices, outputs
        keep = torch.topk(scores, k, largest=self.heuristic.higher_is_better).indices
        return scores[keep], indices[keep], outputs[keep]

    def _select(
        self,
        strategy: Any,
        rank: int,
        world_size: int,
        pool: _Scores,
        query_size: int,
        seed: int,
        device: torch.device,
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """Dataset indices, scores, (stochastic) drawing probabilities and (BatchBALD) gains of the selection.

        Every rank takes part (the merges are collective); rank zero's result is the one broadcast.
        """
        heuristic = self.heuristic
        pointwise = heuristic.needs_predictions and not heuristic.batch_aware
        rule = selection_rule(heuristic) if pointwise else None
        if rule == "top_k":
            merged = select_top_k(strategy, world_size, pool.indices, pool.scores, query_size, heuristic, device)
            return merged.indices, merged.scores, merged.probabilities, None
        if rule == "stochastic" and isinstance(heuristic, StochasticHeuristic):
            merged = select_stochastic(
                strategy, world_size, pool.indices, pool.scores, query_size, heuristic, seed, device
            )
            return merged.indices, merged.scores, merged.probabilities, None
        indices, scores = pool.indices, pool.scores
        if pointwise:
            # A selection rule of the heuristic's own: it needs every score in one place.
            indices, scores = (
                gather_rows(strategy, indices, world_size, device),
                gather_rows(strategy, scores, world_size, device),
            )
            order = torch.argsort(indices)
            indices, scores = indices[order], scores[order]
        if rank != 0:
            return torch.empty(0, dtype=torch.long), torch.empty(0), None, None
        generator = torch.Generator().manual_seed(seed)
        if self.heuristic.batch_aware:
            selection = self.heuristic.select(pool.candidate_outputs, query_size, generator)
            return pool.candidate_indices[selection.indices], selection.scores, selection.probabilities, selection.gains
        selection = self.heuristic.select_from_scores(scores, query_size, generator)
        return indices[selection.indices], selection.scores, selection.probabilities, None


def _device(module: nn.Module) -> torch.device:
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def _rank_progress(
    refresh_rate: int, rank: int, world_size: int
) -> Callable[[Iterator[Any], int, bool], Iterator[Any]] | None:
    """This rank's bar as the embedding pass calls it: ``(batches, total, show)``."""
    if refresh_rate <= 0:
        return None
    return lambda batches, total, show: _progress(batches, total, refresh_rate if show else 0, rank, world_size)


def _progress(
    batches: Iterator[Any], total: int, refresh_rate: int, rank: int = 0, world_size: int = 1
) -> Iterator[Any]:
    """One bar per rank for its shard of the pool pass, drawn as Lightning's ``TQDMProgressBar`` draws its own.

    On stdout, redrawn every ``refresh_rate`` batches and at the last one (the trainer's bar's ``refresh_rate``, which
    ``TQDM_MINITERS`` raises for piped output); ``0`` draws nothing. Under DDP each rank draws its own bar on its own
    line, prefixed by its rank, so that a straggler shows.
    """
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
