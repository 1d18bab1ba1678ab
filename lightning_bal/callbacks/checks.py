"""The callback's checks: moved keywords, the datamodule, and the trainer's schedule against the active learning one."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn

from lightning_bal.callbacks.convergence import Convergence
from lightning_bal.data import ActiveDataModule

__all__ = ["configure_dataloader_reload", "refuse_moved_keywords", "require_datamodule", "warn_about_schedule"]


# Keywords of earlier releases, and what replaced each: a clear error instead of Python's bare "unexpected keyword".
_MOVED = {
    "monitor": "convergence=Convergence(monitor, ...)",
    "mode": "convergence=Convergence(monitor, mode=...)",
    "patience": "convergence=Convergence(monitor, patience=...)",
    "min_delta": "convergence=Convergence(monitor, min_delta=...)",
    "max_epochs_per_step": "convergence=Convergence(monitor, max_epochs=...)",
    "restore_best_weights": "convergence=Convergence(monitor, restore_best_weights=...)",
    "max_pool_size": "ActiveDataModule(max_pool_size=...)",
    "mc_kwargs": "posterior=MCDropout(...)",
    "num_targets": "EPIG(num_targets=...)",
    "target_dataset": "EPIG(target_dataset=...)",
    "log_test": "evaluations=[TestCurve()]",
    "log_test_mc": "evaluations=[MCTestCurve()]",
    "log_calibration": "evaluations=[Calibration()]",
    "log_risk": "evaluations=[LabelledRisk()]",
}


def refuse_moved_keywords(moved: dict[str, Any]) -> None:
    """Refuse keywords the constructor does not take, naming the replacement of those that moved."""
    if moved:
        name = next(iter(moved))
        hint = f" It moved: use `{_MOVED[name]}`." if name in _MOVED else ""
        raise TypeError(f"ActiveLearningCallback() got an unexpected keyword argument {name!r}.{hint}")


def require_datamodule(trainer: pl.Trainer) -> ActiveDataModule:
    """The trainer's datamodule, which must be an :class:`~lightning_bal.ActiveDataModule`."""
    datamodule = getattr(trainer, "datamodule", None)
    if not isinstance(datamodule, ActiveDataModule):
        raise TypeError(
            "Expected `trainer.fit(..., datamodule=...)` to be given a `lightning_bal.ActiveDataModule`,"
            f" but got {type(datamodule).__name__}."
        )
    return datamodule


def configure_dataloader_reload(trainer: pl.Trainer, every_n_epochs: int) -> None:
    """Make the trainer reload the train loader at least at every step, or refuse a reload period that cannot."""
    # Set by the Trainer at init but not declared on the class.
    reload = trainer.reload_dataloaders_every_n_epochs  # type: ignore[attr-defined]
    if reload == 0:
        trainer.reload_dataloaders_every_n_epochs = 1  # type: ignore[attr-defined]
    elif every_n_epochs % reload:
        raise ValueError(
            f"`Trainer(reload_dataloaders_every_n_epochs={reload})` would keep training on a stale labelled set:"
            f" the active learning step runs every {every_n_epochs} epochs. Use a divisor of"
            f" `every_n_epochs` or leave it at 0 (the callback then reloads the train loader every epoch)."
        )


def warn_about_schedule(
    trainer: pl.Trainer,
    datamodule: ActiveDataModule,
    every_n_epochs: int,
    query_size: int,
    label_budget: int | None,
    convergence: Convergence | None,
) -> None:
    """Warn when validation misses step epochs, or when the trainer's limits end the run before the budget."""
    check_val = trainer.check_val_every_n_epoch
    if convergence is None and datamodule.val_dataset is not None and check_val and every_n_epochs % check_val:
        rank_zero_warn(
            f"`Trainer(check_val_every_n_epoch={check_val})` does not validate at every step"
            f" (`every_n_epochs={every_n_epochs}`): a step then logs the validation figures of an older"
            " labelled set. Make `every_n_epochs` a multiple of it."
        )
    max_epochs = trainer.max_epochs
    if label_budget is None or max_epochs is None or max_epochs < 0:
        return
    steps_needed = math.ceil(max(0, label_budget - datamodule.num_labelled) / query_size) + 1
    epochs_per_step = every_n_epochs if convergence is None else convergence.plateau.patience + 1
    if max_epochs < steps_needed * epochs_per_step:
        rank_zero_warn(
            f"`Trainer(max_epochs={max_epochs})` may end the run before `label_budget={label_budget}` is"
            f" spent: that takes {steps_needed} steps of at least {epochs_per_step} epoch(s). Use"
            " `Trainer(max_epochs=-1)` to run until the budget is spent (the callback then stops training)."
        )
