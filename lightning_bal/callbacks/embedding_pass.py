"""The pool pass of embedding heuristics (BADGE, Core-Set): features from the MC pass, selection by collectives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from lightning_bal.data import ActiveDataModule
from lightning_bal.functional.diversity import GreedySelection
from lightning_bal.mc.features import FeatureTap
from lightning_bal.mc.posterior import MCDropout, Posterior
from lightning_bal.utilities.collective import Collective
from lightning_bal.utilities.distributed import shard
from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = ["embed_items", "initial_selection", "select_from_embeddings"]

Progress = Callable[[Iterator[Any], int, bool], Iterator[Any]]


def embed_items(
    heuristic: Any,
    posterior: Posterior,
    iterations: int,
    module: nn.Module,
    loader: Any,
    mask_seed: int,
    progress: Progress | None = None,
) -> tuple[Tensor, Tensor]:
    """``(embeddings [N, E], dataset indices [N])`` of the items of ``loader``, from one MC pass with a feature tap.

    The features come from the pass that computes the predictions (a forward hook), so they cost no extra forward.
    An empty loader gives ``[0, 0]`` embeddings.

    Raises:
        TypeError: if ``posterior`` is not MC-Dropout (or MC-DropConnect): the features are taken from its pass.
    """
    if not isinstance(posterior, MCDropout):
        raise TypeError(
            f"Expected an MCDropout (or MCDropConnect) posterior for {type(heuristic).__name__}, whose features are"
            f" taken from the MC-Dropout pass, but got {type(posterior).__name__}. Pass `embeddings=` to the heuristic"
            " to select on embeddings of your own with any posterior."
        )
    tap: FeatureTap = heuristic.feature_tap()
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
    posterior: Posterior,
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
    supplied = heuristic.embeddings
    labelled = None
    if supplied is not None:
        embeddings, indices = supplied[local].float(), local
        if heuristic.needs_labelled_embeddings:
            labelled = supplied[datamodule.labelled_indices].float()
    else:
        embeddings, indices = embed_items(
            heuristic, posterior, iterations, module, datamodule.pool_dataloader(local), mask_seed, progress
        )
        if heuristic.needs_labelled_embeddings:
            mine = shard(datamodule.labelled_indices, rank, world_size)
            # D_L needs features only: one sample suffices (the features sit before every stochastic layer).
            local_labelled, local_indices = (
                embed_items(heuristic, posterior, 1, module, datamodule.pool_dataloader(mine), mask_seed)
                if mine.numel()
                else (torch.zeros(0, 0), torch.zeros(0, dtype=torch.long))
            )
            # In dataset-index order, as with one process: selections must not depend on the sharding.
            order = torch.argsort(collective.gather_rows(local_indices))
            labelled = collective.gather_rows(local_labelled)[order]
    return heuristic.select_embeddings(
        embeddings,
        query_size,
        seed=derive_seed(seed, step, Stream.SELECTION),
        indices=indices,
        labelled=labelled,
        collective=collective,
    )


def initial_selection(
    datamodule: ActiveDataModule,
    heuristic: Any,
    query_size: int,
    module: nn.Module | None = None,
    *,
    posterior: Posterior | None = None,
    seed: int | None = None,
) -> Tensor:
    """Dataset indices of a cold-start selection from the pool, before any training (D_L may be empty).

    The callback needs a labelled set to train on before its first step; this picks it. With an embedding heuristic
    built on user ``embeddings`` no model is run; otherwise ``module``'s features at its split (or the heuristic's
    ``layer``) are taken from one MC sample. Label the result with ``datamodule.label(indices)``.

    Args:
        datamodule: the active datamodule (its pool is the candidate set).
        heuristic: an embedding heuristic, e.g. :class:`~lightning_bal.heuristics.TypiClust` or
            :class:`~lightning_bal.heuristics.ProbCover`.
        query_size: how many items to pick.
        module: the model whose features to use (not needed with user-supplied embeddings).
        posterior: how the model is sampled (default :class:`~lightning_bal.mc.MCDropout`).
        seed: seeds the selection (default: the datamodule's ``seed``).

    Returns:
        int64 ``[query_size]`` dataset indices, in selection order.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> from lightning_bal.heuristics import TypiClust
        >>> x = torch.tensor([[0.0], [0.2], [0.3], [0.35], [5.0], [5.1]])
        >>> dm = ActiveDataModule(TensorDataset(x, torch.zeros(6, dtype=torch.long)), num_classes=2)
        >>> initial_selection(dm, TypiClust(k=1, embeddings=x), 2)
        tensor([2, 4])
    """
    if not getattr(heuristic, "needs_embeddings", False):
        raise TypeError(f"Expected argument `heuristic` to select from embeddings, but got {type(heuristic).__name__}.")
    if module is None and heuristic.embeddings is None:
        raise ValueError("Expected argument `module`, or a heuristic built with `embeddings=`, but got neither.")
    pool = datamodule.pool_indices
    if isinstance(query_size, bool) or not isinstance(query_size, int) or not 0 < query_size <= pool.numel():
        raise ValueError(
            f"Expected argument `query_size` to be an integer in [1, {pool.numel()}], but got {query_size!r}."
        )
    run_seed = (datamodule.seed or 0) if seed is None else seed
    picks = select_from_embeddings(
        heuristic,
        posterior or MCDropout(),
        1,
        None,
        0,
        1,
        module if module is not None else nn.Identity(),
        datamodule,
        pool,
        query_size,
        run_seed,
        -1,
    )
    return picks.indices
