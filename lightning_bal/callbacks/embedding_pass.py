"""The pool pass of embedding heuristics (BADGE, Core-Set): features from the MC pass, selection by collectives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from lightning_bal.data import ActiveDataModule
from lightning_bal.functional.diversity import GreedySelection
from lightning_bal.mc.features import FeatureTap
from lightning_bal.mc.posterior import MCDropout
from lightning_bal.utilities.collective import Collective
from lightning_bal.utilities.distributed import shard
from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = ["embed_items", "select_from_embeddings"]

Progress = Callable[[Iterator[Any], int, bool], Iterator[Any]]


def embed_items(
    heuristic: Any,
    posterior: MCDropout,
    iterations: int,
    module: nn.Module,
    loader: Any,
    mask_seed: int,
    progress: Progress | None = None,
) -> tuple[Tensor, Tensor]:
    """``(embeddings [N, E], dataset indices [N])`` of the items of ``loader``, from one MC pass with a feature tap.

    The features come from the pass that computes the predictions (a forward hook), so they cost no extra forward.
    An empty loader gives ``[0, 0]`` embeddings.
    """
    tap = FeatureTap(heuristic.layer)
    batches = posterior.batches(module, loader, iterations, mask_seed, heuristic.transform, features=tap)
    if progress is not None:
        batches = progress(batches, len(loader), True)
    embeddings, indices = [], []
    for batch_indices, outputs in batches:
        assert tap.latest is not None  # set by the engine before each batch is yielded
        embeddings.append(heuristic.embed(tap.latest, outputs).cpu())
        indices.append(batch_indices.cpu())
    if not embeddings:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(embeddings), torch.cat(indices)


def select_from_embeddings(
    heuristic: Any,
    posterior: MCDropout,
    iterations: int,
    strategy: Any,
    rank: int,
    world_size: int,
    module: nn.Module,
    datamodule: ActiveDataModule,
    local: Tensor,
    query_size: int,
    seed: int,
    step: int,
    progress: Progress | None = None,
) -> GreedySelection:
    """Embed this rank's shard ``local`` of the pool and select ``query_size`` items over all ranks.

    Each rank keeps its own embeddings; the heuristic's :meth:`select_embeddings` decides pick by pick through a
    :class:`~lightning_bal.utilities.collective.Collective` on ``strategy`` (a few numbers per pick). Only D_L's
    embeddings, when the heuristic needs them (Core-Set's initial centres), are gathered on every rank.
    """
    mask_seed = derive_seed(seed, step, Stream.MASKS)
    collective = Collective(strategy, rank, world_size)
    embeddings, indices = embed_items(
        heuristic, posterior, iterations, module, datamodule.pool_dataloader(local), mask_seed, progress
    )
    labelled = None
    if heuristic.needs_labelled_embeddings:
        mine = shard(datamodule.labelled_indices, rank, world_size)
        # D_L needs features only: one sample suffices (the features sit before every stochastic layer).
        local_labelled = (
            embed_items(heuristic, posterior, 1, module, datamodule.pool_dataloader(mine), mask_seed)[0]
            if mine.numel()
            else torch.zeros(0, 0)
        )
        labelled = collective.gather_rows(local_labelled)
    return heuristic.select_embeddings(
        embeddings,
        query_size,
        seed=derive_seed(seed, step, Stream.SELECTION),
        indices=indices,
        labelled=labelled,
        collective=collective,
    )
