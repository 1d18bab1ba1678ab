"""What an active learning step knows, in one object handed to the pool pass, the evaluations and the stopping."""

from __future__ import annotations

from typing import Any, NamedTuple

import lightning.pytorch as pl
import torch
from torch import Tensor

from lightning_bal.data import ActiveDataModule
from lightning_bal.mc.posterior import Posterior
from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = ["StepContext"]


class StepContext(NamedTuple):
    """One active learning step: the run's objects, the MC settings, the step's seeds and what it scores.

    Built once per step by the callback (``candidates`` and ``query_size`` are added by ``_replace`` once the step
    is planned); evaluations read it as they are, the pool pass reads the trainer surface (strategy, rank, world size)
    and the seeds from it, and the stopping criteria get their view of it.

    Attributes:
        trainer: the Trainer.
        pl_module: the model that scores the pool.
        datamodule: the active datamodule.
        iterations: K, the MC samples per item.
        posterior: draws the K samples.
        seed: the run's seed.
        step: the number of steps done before this one.
        figures: the step's figures, logged with it: its evaluations' and its stopping criteria's join them.
        val_metrics: the validation figures of the model that scores the pool (``None``: the trainer's latest).
        candidates: dataset indices of the pool items the step scores.
        query_size: how many of them it labels.
        progress: refresh rate of the pool pass's progress bar (0: none).
    """

    trainer: pl.Trainer
    pl_module: pl.LightningModule
    datamodule: ActiveDataModule
    iterations: int
    posterior: Posterior
    seed: int
    step: int
    figures: dict[str, float]
    val_metrics: dict[str, float] | None = None
    candidates: Tensor = torch.empty(0, dtype=torch.int64)
    query_size: int = 0
    progress: int = 0

    @property
    def strategy(self) -> Any:
        """The trainer's strategy: every collective of the step goes through it."""
        return self.trainer.strategy

    @property
    def rank(self) -> int:
        """This process's global rank."""
        return self.trainer.global_rank

    @property
    def world_size(self) -> int:
        """The number of processes."""
        return self.trainer.world_size

    @property
    def mask_seed(self) -> int:
        """Seed of this step's MC masks: the same K sub-networks for every item and every rank."""
        return derive_seed(self.seed, self.step, Stream.MASKS)

    def generator(self, stream: Stream) -> torch.Generator:
        """A generator seeded for ``stream`` (e.g. ``Stream.SELECTION``) of this step."""
        return torch.Generator().manual_seed(derive_seed(self.seed, self.step, stream))
