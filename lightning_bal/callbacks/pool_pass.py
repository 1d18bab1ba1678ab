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
from lightning_bal.callbacks.sharded_selection import PoolStatistics, pool_statistics, sort_by_index
from lightning_bal.data import ActiveDataModule
from lightning_bal.heuristics import Heuristic
from lightning_bal.heuristics.base import ScoredShard
from lightning_bal.mc.posterior import Posterior
from lightning_bal.utilities.collective import Collective
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


class PoolPass:
    """Score the pool with ``heuristic`` on K samples of ``posterior``, across every rank of ``strategy``.

    Each rank scores its own disjoint shard of the candidates and keeps its scores; the heuristic's
    :meth:`~lightning_bal.heuristics.Heuristic.select_sharded` decides what crosses ranks (each rank's top ``q`` for
    top-k heuristics, every score for stochastic ones, the top candidates with their outputs for batch-aware ones) and
    selects exactly what its own ``select`` would from the whole pool with the step's selection seed. Rank zero's
    selection is broadcast. Needs only a strategy with ``all_gather`` and ``broadcast`` (the Trainer's, or a
    stand-in in tests).

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
        selected, scores, probabilities = self._select(
            strategy, rank, world_size, pool, query_size, derive_seed(seed, step, Stream.SELECTION)
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
    ) -> ScoredShard:
        if not self.heuristic.needs_predictions:
            return ScoredShard(local, torch.zeros(local.numel()))
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
        local_indices, local_scores = sort_by_index(local_indices[:filled], local_scores[:filled])
        return ScoredShard(local_indices, local_scores, top_indices, top_scores, top_outputs)

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
        self, strategy: Any, rank: int, world_size: int, pool: ScoredShard, query_size: int, seed: int
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Dataset indices, scores and (stochastic heuristics) drawing probabilities of the selection, on every rank.

        They are what the heuristic's own selection makes from every score with a generator seeded by ``seed``.
        """
        generator = torch.Generator().manual_seed(seed)
        selection = self.heuristic.select_sharded(pool, query_size, generator, Collective(strategy, rank, world_size))
        return selection.indices, selection.scores, selection.probabilities


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
