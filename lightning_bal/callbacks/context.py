"""What an active learning step knows, in one object handed to the pool pass, the evaluations and the stopping."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_bal.annotation.predict import predict_classes
from lightning_bal.data import ActiveDataModule
from lightning_bal.functional.outputs import OutputKey
from lightning_bal.mc.posterior import Posterior
from lightning_bal.utilities.seeding import Stream, derive_seed

__all__ = ["StepContext", "val_figures"]


def val_figures(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The user's validation figures: the scalar ``val*`` entries of ``trainer.callback_metrics``."""
    return {
        name: float(value)
        for name, value in metrics.items()
        if name.startswith("val") and isinstance(value, (Tensor, float, int))
    }


class StepContext(NamedTuple):
    """One active learning step: the run's objects, the MC settings, the step's seeds and what it scores.

    Built once per step by the callback; ``candidates`` and ``query_size`` are added once the step is planned, the
    pool's figures once the pool pass has them (``None`` before, or where unknown).

    Attributes:
        pl_module: the model that scores the pool.
        iterations: K, the MC samples per item.
        step: the number of steps done before this one.
        figures: the step's figures, logged with it: its evaluations' and its stopping criteria's join them.
        validation: the validation figures of the model that scores the pool (``None``: the trainer's latest).
        candidates: dataset indices of the pool items the step scores; ``query_size`` of them are labelled.
        progress: refresh rate of the pool pass's progress bar (0: none).
        output: the model output that holds the class logits (``None``: the model's only output).
        pool_scores: the heuristic's scores of the scored pool items (rank zero only).
    """

    trainer: pl.Trainer
    pl_module: pl.LightningModule
    datamodule: ActiveDataModule
    iterations: int
    posterior: Posterior
    seed: int
    step: int
    figures: dict[str, float]
    validation: dict[str, float] | None = None
    candidates: Tensor = torch.empty(0, dtype=torch.int64)
    query_size: int = 0
    progress: int = 0
    output: OutputKey | None = None
    pool_scores: Tensor | None = None
    pool_mean: float | None = None
    pool_max: float | None = None

    @property
    def val_metrics(self) -> dict[str, float]:
        """The validation figures of the model that scores the pool (the trainer's latest unless ``validation``)."""
        return dict(val_figures(self.trainer.callback_metrics) if self.validation is None else self.validation)

    @property
    def num_labelled(self) -> int:
        """The size of D_L the model was trained on."""
        return self.datamodule.num_labelled

    @property
    def predict(self) -> Callable[[Dataset], Tensor]:
        """The model's predicted classes ``[N]`` on a dataset (eval mode, deterministic)."""

        def predict(dataset: Dataset) -> Tensor:
            loader = self.datamodule.inputs_dataloader(dataset)
            return predict_classes(self.pl_module, loader, self.output)[0]

        return predict

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
