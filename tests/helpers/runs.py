"""Building small active learning runs for the callback tests."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from lightning_bal import ActiveDataModule
from tests.helpers.models import DropoutClassifier, blobs


class SeededDropoutClassifier(DropoutClassifier):
    """Reseeds the global RNG every epoch: training (shuffle, dropout) then depends only on the epoch, so a resumed
    run trains exactly like an uninterrupted one. Lightning does not checkpoint the global RNG; users who need
    bit-exact resumes do the same."""

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(1000 + self.current_epoch)


def make_datamodule(n: int = 90, initial: int = 6, val: bool = True, **kwargs: Any) -> ActiveDataModule:
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("batch_size", 16)
    kwargs.setdefault("pool_batch_size", 32)
    return ActiveDataModule(blobs(n), val_dataset=blobs(30, seed=1) if val else None, initial_labels=initial, **kwargs)


def make_trainer(tmp_path: Any, callbacks: list, max_epochs: int = 3, **kwargs: Any) -> pl.Trainer:
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        max_epochs=max_epochs,
        callbacks=callbacks,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        **kwargs,
    )


def record_targets(heuristic) -> list:
    """The ``targets`` each call of ``heuristic.score`` is given."""
    given = []
    original = heuristic.score

    def record(log_probs, targets=None):
        given.append(targets)
        return original(log_probs, targets)

    heuristic.score = record
    return given
