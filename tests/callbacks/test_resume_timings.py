"""Resume is identical to an uninterrupted run at every checkpoint timing Lightning offers (issue 15).

Each case runs the same active learning run three ways: uninterrupted; stopped early; and resumed from every
checkpoint the stopped run wrote. Every resumed run must end with the uninterrupted run's labelled set, step count
and history. The model reseeds the global RNG at every batch, so its training depends only on the data it sees:
a resumed run trains exactly as the uninterrupted one, and any difference comes from the active learning schedule.
"""

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_bal import ActiveLearningCallback
from lightning_bal.callbacks import Convergence
from tests.helpers.models import DropoutClassifier
from tests.helpers.runs import make_datamodule, make_trainer

MAX_EPOCHS = 6


class BatchSeeded(DropoutClassifier):
    def on_train_batch_start(self, batch, batch_idx):
        torch.manual_seed(10_000 * self.current_epoch + batch_idx)


TIMINGS = {
    # ModelCheckpoint's default with validation every epoch: at the end of the training epoch, after the step.
    "train-epoch-end": ({}, {}),
    # At the validation of each epoch, before the epoch's end (and before its active learning step).
    "validation-end": ({"save_on_train_epoch_end": False}, {}),
    # Mid-epoch, every training step.
    "every-train-step": ({"every_n_train_steps": 1}, {}),
    # Validation twice per epoch; ModelCheckpoint then saves at each validation.
    "val-check-interval-0.5": ({}, {"val_check_interval": 0.5}),
    # Validation every other epoch; ModelCheckpoint then saves at those validations.
    "check-val-every-2": ({}, {"check_val_every_n_epoch": 2}),
    # Every training step with validation every other epoch: only some last batches precede a validation.
    "every-train-step-val-every-2": ({"every_n_train_steps": 1}, {"check_val_every_n_epoch": 2}),
}


def _run(root, max_epochs, timing, reset_weights, converge, ckpt_path=None):
    pl.seed_everything(0)
    checkpoint_kwargs, trainer_kwargs = TIMINGS[timing]
    dm = make_datamodule(n=60, initial=6, batch_size=8)  # D_L of 6, 10, 14, 18: the number of batches grows
    callback = ActiveLearningCallback(
        "bald",
        query_size=4,
        iterations=4,
        every_n_epochs=2 if timing.endswith("every-2") and not converge else 1,
        reset_weights=reset_weights,
        convergence=Convergence("val_loss", patience=1, max_epochs=2) if converge else None,
    )
    checkpoint = ModelCheckpoint(dirpath=root / "ckpt", save_top_k=-1, filename="{epoch}-{step}", **checkpoint_kwargs)
    trainer = make_trainer(
        root, [callback, checkpoint], max_epochs=max_epochs, enable_checkpointing=True, **trainer_kwargs
    )
    trainer.fit(BatchSeeded(), datamodule=dm, ckpt_path=ckpt_path)
    figures = [{k: v for k, v in h.items() if k != "active/pool_pass_seconds"} for h in callback.history]
    return dm.acquired_at.clone(), callback.steps_done, figures


CASES = [(timing, converge) for timing in TIMINGS for converge in (False, True)]


@pytest.mark.slow
@pytest.mark.parametrize("reset_weights", [False, True], ids=["keep-weights", "reset-weights"])
@pytest.mark.parametrize(("timing", "converge"), CASES)
def test_resume_from_every_checkpoint_matches_an_uninterrupted_run(tmp_path, timing, reset_weights, converge):
    full = _run(tmp_path / "full", MAX_EPOCHS, timing, reset_weights, converge)
    assert full[1] >= 2, "the run must take several steps to test anything"
    _run(tmp_path / "part", 3, timing, reset_weights, converge)
    checkpoints = sorted((tmp_path / "part" / "ckpt").glob("*.ckpt"))
    assert checkpoints
    for number, path in enumerate(checkpoints):
        assert torch.load(path, weights_only=True)["ActiveDataModule"]["acquired_at"].numel() == 60
        resumed = _run(tmp_path / f"resumed{number}", MAX_EPOCHS, timing, reset_weights, converge, ckpt_path=path)
        assert torch.equal(resumed[0], full[0]), f"labelled set differs when resumed from {path.name}"
        assert resumed[1] == full[1], path.name
        assert len(resumed[2]) == len(full[2]), path.name
        for got, expected in zip(resumed[2], full[2], strict=True):
            assert got == pytest.approx(expected), path.name
