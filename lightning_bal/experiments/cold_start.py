"""The first labelled set of a run chosen by TypiClust or ProbCover on a PCA of the pixels (docs/diversity.md)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lightning_bal.callbacks.embedding_pass import initial_selection
from lightning_bal.data import ActiveDataModule
from lightning_bal.functional._embedding_checks import check_finite
from lightning_bal.heuristics import ProbCover, TypiClust
from lightning_bal.utilities.checks import check_argument, is_int

__all__ = ["COLD_STARTS", "cold_start_labels", "pixel_embeddings"]

COLD_STARTS = ("typiclust", "probcover")


def pixel_embeddings(inputs: Tensor, dims: int = 50, seed: int = 0) -> Tensor:
    """Unit-norm embeddings ``[N, dims]`` of ``inputs`` ``[N, ...]`` from a seeded randomised PCA of the pixels.

    Examples:
        >>> x = torch.randn(100, 1, 8, 8)
        >>> e = pixel_embeddings(x, dims=5)
        >>> e.shape, bool(torch.allclose(e.norm(dim=1), torch.ones(100)))
        (torch.Size([100, 5]), True)
    """
    if not isinstance(inputs, Tensor) or inputs.ndim < 2 or inputs.is_complex() or inputs.dtype == torch.bool:
        got = f"{tuple(inputs.shape)} {inputs.dtype}" if isinstance(inputs, Tensor) else type(inputs).__name__
        raise ValueError(f"Expected argument `inputs` to be a real tensor [N, ...], but got {got}.")
    check_argument("seed", seed, is_int(seed), "an integer", TypeError)
    flat = inputs.flatten(1).double()
    check_argument("dims", dims, is_int(dims) and 1 <= dims <= min(flat.shape), f"an integer in [1, {min(flat.shape)}]")
    check_finite("inputs", flat)
    centred = flat - flat.mean(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, _, directions = torch.pca_lowrank(centred, q=dims, center=False)
    projected = centred @ directions
    return (projected / projected.norm(dim=1, keepdim=True).clamp_min(1e-12)).float()


def cold_start_labels(
    datamodule: ActiveDataModule,
    inputs: Tensor,
    method: Literal["typiclust", "probcover"],
    count: int,
    num_classes: int,
    seed: int,
) -> Tensor:
    """Dataset indices of ``count`` items chosen by ``method`` on :func:`pixel_embeddings` of the training ``inputs``.

    ProbCover chooses its radius by purity against ``num_classes`` clusters.

    Examples:
        >>> from torch.utils.data import TensorDataset
        >>> x = torch.cat([torch.randn(30, 4) - 3, torch.randn(30, 4) + 3])
        >>> dm = ActiveDataModule(TensorDataset(x, torch.arange(60) // 30), seed=0)
        >>> picks = cold_start_labels(dm, x, "typiclust", 2, num_classes=2, seed=0)
        >>> sorted(int(i) // 30 for i in picks)  # one from each cluster
        [0, 1]
    """
    check_argument("method", method, method in COLD_STARTS, f"one of {COLD_STARTS}")
    if not isinstance(datamodule, ActiveDataModule):
        raise TypeError(
            f"Expected argument `datamodule` to be an ActiveDataModule, but got {type(datamodule).__name__}."
        )
    if isinstance(inputs, Tensor) and inputs.ndim >= 1 and len(inputs) != len(datamodule):
        raise ValueError(
            f"Expected argument `inputs` to hold the datamodule's {len(datamodule)} training inputs row for row, but"
            f" got {len(inputs)} rows."
        )
    pool = int(datamodule.pool_indices.numel())
    check_argument("count", count, is_int(count) and 1 <= count <= pool, f"an integer in [1, {pool}]")
    check_argument("num_classes", num_classes, is_int(num_classes) and num_classes >= 2, "an integer >= 2")
    check_argument("seed", seed, is_int(seed), "an integer", TypeError)
    embeddings = pixel_embeddings(inputs, dims=min(50, *inputs.flatten(1).shape), seed=seed)
    heuristic: TypiClust | ProbCover = (
        TypiClust(embeddings=embeddings)
        if method == "typiclust"
        else ProbCover(num_classes=num_classes, embeddings=embeddings)
    )
    return initial_selection(datamodule, heuristic, count, seed=seed)
