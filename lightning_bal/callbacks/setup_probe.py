"""Checks at fit start that the heuristic can score the model's outputs: a bad pairing fails before training."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn

from lightning_bal.callbacks.checks import CallbackSettings
from lightning_bal.data import ActiveDataModule
from lightning_bal.heuristics import CombineHeuristics, Heuristic
from lightning_bal.mc.posterior import MCDropout, Posterior

__all__ = ["PROBE_ITEMS", "check_outputs", "check_task", "probe_heuristic"]

#: How many pool items the probe scores.
PROBE_ITEMS = 2


def check_outputs(
    module: pl.LightningModule, datamodule: ActiveDataModule, callback: CallbackSettings, seed: int
) -> None:
    """The callback's checks at fit start: each evaluation's ``check_model``, then :func:`probe_heuristic`."""
    heuristic, posterior = callback.heuristic, callback.posterior
    for evaluation in callback.evaluations:
        # A posterior of its own (an ensemble, SWAG) need not sample through `forward`: only MC-Dropout's
        # samples are `forward`'s outputs, so only there does checking `forward` check what is evaluated.
        if not evaluation.needs_mc or isinstance(posterior, MCDropout):
            evaluation.check_model(module, datamodule)
    probe_heuristic(module, datamodule, heuristic, posterior, seed)


def probe_heuristic(
    module: nn.Module, datamodule: ActiveDataModule, heuristic: Heuristic, posterior: Posterior, seed: int
) -> bool:
    """:func:`check_task`, then score the first :data:`PROBE_ITEMS` pool items with K=2 samples; ``False``: skipped.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> from lightning_bal.heuristics import Variance
        >>> dm = ActiveDataModule(TensorDataset(torch.randn(6, 3), torch.zeros(6)), seed=0)  # no declared task
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1))
        >>> probe_heuristic(net, dm, Variance(), MCDropout(), seed=0)
        True
    """
    check_task(datamodule, heuristic)
    skip = (
        not heuristic.needs_predictions
        or heuristic.needs_targets
        or heuristic.needs_embeddings
        or not posterior.samples_before_fit
        or datamodule.num_pool == 0
    )
    if skip:
        return False
    loader = datamodule.pool_dataloader(datamodule.pool_indices[:PROBE_ITEMS])
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for _, outputs in posterior.batches(module, loader, 2, seed, heuristic.transform):
            heuristic.score(outputs)
            if heuristic.batch_aware:
                # BatchBALD's pre-filter scores items one by one; what it refuses is met when it selects.
                heuristic.select(outputs, 1, torch.Generator().manual_seed(seed))
    return True


def check_task(datamodule: ActiveDataModule, heuristic: Heuristic) -> None:
    """Refuse a heuristic of the other task than the datamodule's declared ``task`` (it would raise nothing later)."""
    task = datamodule.ledger.task
    skip = (
        task is None
        or heuristic.output is not None
        or isinstance(heuristic, CombineHeuristics)
        or not heuristic.needs_predictions
        or heuristic.needs_embeddings
    )
    if skip:
        return
    if task == "classification" and heuristic.consumes == "outputs":
        raise ValueError(
            f"Expected a classification heuristic for the class logits of `task='classification'`, but got"
            f" {heuristic!r}, which scores raw regression outputs. Name the model's regression output"
            f" (`{type(heuristic).__name__}(output=...)`) or declare `ActiveDataModule(task='regression')`."
        )
    if task == "regression" and heuristic.consumes == "log_probs":
        raise ValueError(
            f"Expected a regression heuristic (e.g. `Variance()`) for the outputs of `task='regression'`, but got"
            f" {heuristic!r}, which scores class logits, not a regression output. Name the model's class-logit output"
            f" (`{type(heuristic).__name__}(output=...)`) or declare `ActiveDataModule(task='classification')`."
        )
