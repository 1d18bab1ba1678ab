"""Pins on the Lightning internals that resume and the train loader rely on (issue #28).

Lightning offers no public surface for these, so each is checked here against Lightning itself:

- ``callbacks/checkpointed.py``: ``_validated_after_last_batch`` repeats ``_TrainingEpochLoop._should_check_val_fx`` for
  an epoch's last batch; ``resume_stage`` reads the fit loop's progress in the checkpoint; ``replay_skipped_validation``
  runs the validation loop by hand.
- ``callbacks/active_learning.py``: ``on_train_start`` counts the restored last batch as completed
  (``batch_progress.increment_completed``).
- ``data/datamodule.py``: the train loader skips ``batch_progress.current.processed`` batches on a restart.

Checked on lightning 2.5.0 (the declared floor, ``lightning>=2.5``) and 2.6.6: all pass. The floor is 2.5 because
of ``test_restart_points_are_those_resume_assumes``: on 2.2.5 and 2.4.0 it fails, as those releases run a validation
first when they restart from a mid-epoch checkpoint, and validate again when they restart from one written at a
validation's end; resume is then not exact (``test_resume_timings.py`` fails there too). A new Lightning release
that changes one of these fails here first, naming the assumption, rather than as a resumed run that differs.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop
from torch.utils.data import DataLoader

from lightning_bal.callbacks.checkpointed import _validated_after_last_batch, resume_stage
from tests.helpers.models import DropoutClassifier, blobs

EPOCHS = 4


def _trainer(callbacks: list[Callback], tmp_path: Any, **kwargs: Any) -> pl.Trainer:
    kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(
        max_epochs=EPOCHS,
        callbacks=callbacks,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        **kwargs,
    )


def _fit(trainer: pl.Trainer, num_batches: int) -> None:
    torch.manual_seed(0)
    train = DataLoader(blobs(4 * num_batches), batch_size=4)
    trainer.fit(DropoutClassifier(), train_dataloaders=train, val_dataloaders=DataLoader(blobs(8, seed=1)))


class _LastBatchValidation(Callback):
    """For each epoch: the copy's answer at its last batch, and whether Lightning validated right after it."""

    def __init__(self) -> None:
        self.predicted: dict[int, bool] = {}
        self.validated: set[int] = set()
        self._after_last_batch: int | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._after_last_batch = None
        if batch_idx + 1 == trainer.num_training_batches:
            self.predicted[trainer.current_epoch] = _validated_after_last_batch(trainer, trainer.current_epoch)
            self._after_last_batch = trainer.current_epoch

    def on_validation_start(self, trainer, pl_module):
        if self._after_last_batch is not None:
            self.validated.add(self._after_last_batch)

    def on_train_epoch_end(self, trainer, pl_module):
        self._after_last_batch = None


VALIDATION_SETTINGS = {
    "every-epoch": {},
    "every-2nd-epoch": {"check_val_every_n_epoch": 2},
    "every-3rd-epoch": {"check_val_every_n_epoch": 3},
    "interval-0.5": {"val_check_interval": 0.5},
    "interval-0.25": {"val_check_interval": 0.25},
    "every-2-batches": {"val_check_interval": 2},
    "every-2-batches-2nd-epoch": {"val_check_interval": 2, "check_val_every_n_epoch": 2},
    "every-2-batches-across-epochs": {"val_check_interval": 2, "check_val_every_n_epoch": None},
    "every-3-batches-across-epochs": {"val_check_interval": 3, "check_val_every_n_epoch": None},
    "no-validation": {"limit_val_batches": 0},
}


@pytest.mark.parametrize("num_batches", [3, 4, 5])
@pytest.mark.parametrize("setting", list(VALIDATION_SETTINGS))
def test_copy_of_should_check_val_fx_agrees_with_lightning(tmp_path, setting, num_batches):
    # The copy stands in for Lightning's decision when a restart skips it; it must still exist to be copied.
    assert callable(getattr(_TrainingEpochLoop, "_should_check_val_fx", None))
    recorder = _LastBatchValidation()
    _fit(_trainer([recorder], tmp_path, **VALIDATION_SETTINGS[setting]), num_batches)
    assert sorted(recorder.predicted) == list(range(EPOCHS))
    assert {epoch for epoch, validated in recorder.predicted.items() if validated} == recorder.validated


class _Snapshots(Callback):
    """The fit loop's checkpointed progress at the moments ``resume_stage`` tells apart, and the batch counts read."""

    def __init__(self) -> None:
        self.loops: dict[str, dict[str, Any]] = {}
        self.processed_at_batch_end: list[tuple[int, int]] = []

    def _dump(self, trainer: pl.Trainer, moment: str) -> None:
        if trainer.current_epoch == 1 and moment not in self.loops:
            self.loops[moment] = trainer._checkpoint_connector.dump_checkpoint()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        progress = trainer.fit_loop.epoch_loop.batch_progress
        self.processed_at_batch_end.append((batch_idx, progress.current.processed))
        if batch_idx + 1 == trainer.num_training_batches:
            self._dump(trainer, "last-batch")
        elif batch_idx == 0:
            self._dump(trainer, "mid-epoch")

    def on_validation_end(self, trainer, pl_module):
        self._dump(trainer, "validation")

    def on_train_epoch_end(self, trainer, pl_module):
        self._dump(trainer, "train-epoch-end")

    def on_train_epoch_start(self, trainer, pl_module):
        self._dump(trainer, "epoch-start")


def test_checkpointed_loop_progress_is_what_resume_stage_reads(tmp_path):
    snapshots = _Snapshots()
    _fit(_trainer([snapshots], tmp_path), num_batches=3)
    # The callback's `trained_epoch`: the epoch's own from its last batch on, the one before until then.
    trained = {"epoch-start": 0, "mid-epoch": 0, "last-batch": 1, "validation": 1, "train-epoch-end": 1}
    stages = {
        moment: resume_stage(checkpoint, {"trained_epoch": trained[moment]})
        for moment, checkpoint in snapshots.loops.items()
    }
    # Before an epoch starts and from its end hook on, Lightning restarts at the next epoch from scratch; inside it,
    # it re-enters the epoch; from the last batch's end (before its validation), at the next epoch's start.
    assert stages == {
        "epoch-start": None,
        "mid-epoch": "reenter",
        "last-batch": "train_start",
        "validation": "reenter",
        "train-epoch-end": None,
    }
    last = snapshots.loops["last-batch"]["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    # Written before Lightning counts the last batch completed: the restart sees it processed only.
    assert last["processed"] == last["completed"] + 1 == 3
    # The train loader skips what the epoch loop counts as processed: at a batch's end, that batch included.
    assert all(processed == batch_idx + 1 for batch_idx, processed in snapshots.processed_at_batch_end)


def test_loop_internals_the_callbacks_touch_exist(tmp_path):
    seen: dict[str, bool] = {}

    class Probe(Callback):
        def on_train_start(self, trainer, pl_module):
            loop = trainer.fit_loop
            seen["increment_completed"] = callable(loop.epoch_loop.batch_progress.increment_completed)
            seen["total_batch_idx"] = isinstance(loop.epoch_loop.total_batch_idx, int)
            seen["epoch_progress.completed"] = isinstance(loop.epoch_progress.current.completed, int)
            seen["val_loop.restarting"] = isinstance(loop.epoch_loop.val_loop.restarting, bool)
            seen["val_loop.run"] = callable(loop.epoch_loop.val_loop.run)
            seen["val_check_batch"] = trainer.val_check_batch is not None

    _fit(_trainer([Probe()], tmp_path, max_steps=1), num_batches=3)
    assert seen == dict.fromkeys(seen, True)
    assert len(seen) == 6


class _Events(Callback):
    """The training batches and validations of a run, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int]] = []
        self.processed_at_start = -1

    def on_train_start(self, trainer, pl_module):
        # What `ActiveDataModule.train_dataloader` reads to skip the batches the restarted epoch already trained.
        self.processed_at_start = trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.events.append(("train", trainer.current_epoch, batch_idx))

    def on_validation_start(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.events.append(("val", trainer.current_epoch, -1))


def _events(tmp_path: Any, checkpoint: Callback | None = None, ckpt_path: Any = None) -> _Events:
    events = _Events()
    callbacks: list[Callback] = [events] if checkpoint is None else [events, checkpoint]
    trainer = _trainer(callbacks, tmp_path, enable_checkpointing=checkpoint is not None)
    torch.manual_seed(0)
    train = DataLoader(blobs(12), batch_size=4)  # 3 batches an epoch
    val = DataLoader(blobs(8, seed=1))
    trainer.fit(DropoutClassifier(), train_dataloaders=train, val_dataloaders=val, ckpt_path=ckpt_path)
    return events


@pytest.mark.parametrize("save_on", ["train-step", "validation"])
def test_restart_points_are_those_resume_assumes(tmp_path, save_on):
    """A restart goes on right after the checkpoint's moment, except from an epoch's last batch: there Lightning
    skips the epoch's validation (`replay_skipped_validation` runs it) and the next epoch starts afresh."""
    full = _events(tmp_path / "full").events
    kwargs = {"every_n_train_steps": 1} if save_on == "train-step" else {"save_on_train_epoch_end": False}
    saver = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, filename="{step}", **kwargs)
    _events(tmp_path / "part", saver)
    for path in sorted((tmp_path / "ckpt").glob("*.ckpt")):
        step = torch.load(path, weights_only=True)["global_step"]
        epoch, batch = divmod(step - 1, 3)
        moment = ("train", epoch, batch) if save_on == "train-step" else ("val", epoch, -1)
        expected = full[full.index(moment) + 1 :]
        if save_on == "train-step" and batch == 2:
            expected = expected[1:] if expected[:1] == [("val", epoch, -1)] else expected
        resumed = _events(tmp_path / path.stem, ckpt_path=path)
        message = f"lightning {pl.__version__} restarts {path.name} otherwise (true from 2.5.0 on)"
        assert resumed.events == expected, message
        if save_on == "train-step" and batch < 2:
            assert resumed.processed_at_start == batch + 1, path.name
