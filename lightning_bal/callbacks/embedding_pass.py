"""The pool pass of embedding heuristics (BADGE, Core-Set): features from the MC pass, selection by collectives."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from lightning_bal.callbacks.context import StepContext
from lightning_bal.data import ActiveDataModule
from lightning_bal.functional.diversity import GreedySelection
from lightning_bal.heuristics import EmbeddingHeuristic
from lightning_bal.mc.features import FeatureTap
from lightning_bal.mc.posterior import MCDropout, Posterior
from lightning_bal.utilities.collective import Collective
from lightning_bal.utilities.distributed import shard
from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = ["initial_selection", "select_from_embeddings"]

Progress = Callable[[Iterator[Any], int], Iterator[Any]]


def select_from_embeddings(
    heuristic: EmbeddingHeuristic, context: StepContext, local: Tensor, progress: Progress | None = None
) -> GreedySelection:
    """Embed this rank's shard ``local`` and select ``context.query_size`` items over all ranks, pick by pick."""
    collective = Collective(context.strategy, context.rank, context.world_size)
    embed = _embedder(heuristic, context.posterior, context.pl_module, context.datamodule, context.mask_seed)
    embeddings, indices = embed(local, context.iterations, progress)
    labelled = None
    if heuristic.needs_labelled_embeddings:
        local_labelled, local_indices = embed(
            shard(context.datamodule.labelled_indices, context.rank, context.world_size), 1, None
        )
        # In dataset-index order, as with one process: selections must not depend on the sharding.
        order = torch.argsort(collective.gather_rows(local_indices))
        labelled = collective.gather_rows(local_labelled)[order]
    seed = derive_seed(context.seed, context.step, Stream.SELECTION)
    return heuristic.select_embeddings(
        embeddings, context.query_size, seed=seed, indices=indices, labelled=labelled, collective=collective
    )


def _embedder(
    heuristic: EmbeddingHeuristic, posterior: Posterior, module: nn.Module, datamodule: ActiveDataModule, mask_seed: int
) -> Callable[[Tensor, int, Progress | None], tuple[Tensor, Tensor]]:
    """``embed(indices, iterations, progress)``: ``(embeddings, indices)``, the heuristic's own or an MC pass's."""

    def embed(indices: Tensor, iterations: int, progress: Progress | None) -> tuple[Tensor, Tensor]:
        if heuristic.embeddings is not None:
            return heuristic.embeddings[indices].float(), indices
        if indices.numel() == 0:
            return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
        if not isinstance(posterior, MCDropout):
            raise TypeError(
                f"Expected an MCDropout (or MCDropConnect) posterior for {type(heuristic).__name__}, whose features"
                f" are taken from the MC-Dropout pass, but got {type(posterior).__name__}. Pass `embeddings=` to the"
                " heuristic to select on embeddings of your own with any posterior."
            )
        loader = datamodule.pool_dataloader(indices)
        # The features come from the pass that computes the predictions (a forward hook): no extra forward.
        tap: FeatureTap = heuristic.feature_tap()
        batches = posterior.batches(module, loader, iterations, mask_seed, heuristic.transform, features=tap)
        embeddings, order = [], []
        for batch_indices, outputs in batches if progress is None else progress(batches, len(loader)):
            assert tap.latest is not None  # set by the engine before each batch is yielded
            embeddings.append(heuristic.embed(tap.latest, outputs).cpu())
            order.append(batch_indices.cpu())
        return torch.cat(embeddings), torch.cat(order)

    return embed


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

    Without user ``embeddings`` on the heuristic, ``module``'s features (at its split, or the heuristic's ``layer``)
    are taken from one MC sample. Label the result with ``datamodule.label(indices)``.

    Args:
        datamodule: the active datamodule (its pool is the candidate set).
        heuristic: an embedding heuristic, e.g. :class:`~lightning_bal.heuristics.TypiClust`.
        query_size: how many items to pick.
        module: the model whose features to use (not needed with user-supplied embeddings).
        posterior: how the model is sampled (default :class:`~lightning_bal.mc.MCDropout`).
        seed: seeds the selection (default: the datamodule's ``seed``).

    Returns:
        int64 ``[query_size]`` dataset indices, in selection order.

    Examples:
        >>> from torch.utils.data import TensorDataset
        >>> from lightning_bal.heuristics import TypiClust
        >>> x = torch.tensor([[0.0], [0.2], [0.3], [0.35], [5.0], [5.1]])
        >>> dm = ActiveDataModule(TensorDataset(x, torch.zeros(6, dtype=torch.long)), num_classes=2)
        >>> initial_selection(dm, TypiClust(k=1, embeddings=x), 2)
        tensor([2, 4])
    """
    if not isinstance(heuristic, EmbeddingHeuristic):
        raise TypeError(f"Expected argument `heuristic` to select from embeddings, but got {type(heuristic).__name__}.")
    if module is None and heuristic.embeddings is None:
        raise ValueError("Expected argument `module`, or a heuristic built with `embeddings=`, but got neither.")
    pool = datamodule.pool_indices
    if isinstance(query_size, bool) or not isinstance(query_size, int) or not 0 < query_size <= pool.numel():
        raise ValueError(
            f"Expected argument `query_size` to be an integer in [1, {pool.numel()}], but got {query_size!r}."
        )
    run_seed = (datamodule.seed or 0) if seed is None else seed
    model = module if module is not None else nn.Identity()
    embed = _embedder(heuristic, posterior or MCDropout(), model, datamodule, derive_seed(run_seed, -1, Stream.MASKS))
    embeddings, indices = embed(pool, 1, None)
    labelled = embed(datamodule.labelled_indices, 1, None)[0] if heuristic.needs_labelled_embeddings else None
    seed = derive_seed(run_seed, -1, Stream.SELECTION)
    return heuristic.select_embeddings(embeddings, query_size, seed=seed, indices=indices, labelled=labelled).indices
