"""Segmentation, regression and sequence labelling under DDP on CPU (gloo): two processes label what one process
labels."""

from datetime import timedelta

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import RegressionCurve, SegmentationIoU
from lightning_bal.callbacks.active_learning import FINAL_STATE_FILE
from lightning_bal.heuristics import BALD, GaussianMI
from tests.callbacks.test_ddp import AssertRanksAgree, WriteResult
from tests.tasks.models import (
    IGNORE,
    DropoutRegressor,
    Sequences,
    Tagger,
    TinySegmenter,
    pad_collate,
    regression_data,
    segmentation_data,
)

# The figures of the task evaluations (mean IoU and pixel accuracy, RMSE and NLL).
FIGURES = ("active/val_", "active/test_")

pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"])]


class WriteFigures(Callback):
    """Rank zero's figures of every step, which are those of the whole held-out set on every rank."""

    def __init__(self, path):
        self.path = path

    def on_fit_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            al = next(c for c in trainer.callbacks if isinstance(c, ActiveLearningCallback))
            torch.save([{k: v for k, v in step.items() if k.startswith(FIGURES)} for step in al.history], self.path)


def _fit(tmp_path, task, devices, name):
    pl.seed_everything(0)
    if task == "segmentation":
        dm = ActiveDataModule(segmentation_data(31), val_dataset=segmentation_data(7, seed=1), initial_labels=4, seed=0)
        heuristic, evaluation, model = BALD(reduction="topq"), SegmentationIoU(3), TinySegmenter(lr=0.0)
    elif task == "sequence":
        # Sequences of 2..9 tokens padded per batch by the datamodule's collate function: the two ranks' pool
        # batches (and one process's) are padded to different lengths, and the mask keeps the padding out.
        dm = ActiveDataModule(
            Sequences(31),
            val_dataset=Sequences(7, seed=1),
            initial_labels=4,
            seed=0,
            collate_fn=pad_collate,
            batch_size=4,
            pool_batch_size=5,
        )
        heuristic = BALD(output="logits", mask="valid", reduction="mean")
        evaluation, model = SegmentationIoU(3, ignore_index=IGNORE, output="logits"), Tagger(lr=0.0)
    else:
        dm = ActiveDataModule(
            regression_data(31), test_dataset=regression_data(7, seed=1), task="regression", initial_labels=4, seed=0
        )
        heuristic = GaussianMI(mean="mean", log_variance="log_var")
        evaluation, model = RegressionCurve(output="mean", log_variance="log_var"), DropoutRegressor(lr=0.0)
    callback = ActiveLearningCallback(heuristic, query_size=3, iterations=4, seed=7, evaluations=[evaluation])
    callbacks = (
        [AssertRanksAgree(), callback, WriteResult(tmp_path / name), WriteFigures(tmp_path / f"{name}.figures")]
        if devices > 1
        else [callback, WriteResult(tmp_path / name), WriteFigures(tmp_path / f"{name}.figures")]
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=120)) if devices > 1 else "auto",
        max_epochs=3,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    acquired = torch.load(tmp_path / name, weights_only=True)
    if devices > 1:
        # The main process's datamodule is handed rank zero's final state, which every rank agreed on.
        assert dm.num_labelled == 4
        dm.load_state_dict(torch.load(tmp_path / FINAL_STATE_FILE, weights_only=True))
    assert torch.equal(dm.acquired_at, acquired)
    return acquired


@pytest.mark.parametrize("task", ["segmentation", "regression", "sequence"])
def test_two_processes_label_what_one_process_labels(tmp_path, task):
    """Training is off (lr=0), so both runs score the same model: the labelled sets match step for step."""
    one = _fit(tmp_path, task, 1, "one.pt")
    two = _fit(tmp_path, task, 2, "two.pt")
    assert torch.bincount(two[two >= 0]).tolist() == [4, 3, 3, 3]
    assert torch.equal(one, two)
    # Each rank evaluates its shard; the metric states are synchronised, so the figures are the whole set's (up to
    # float32 rounding in the model: a rank's batches hold other items than one process's).
    one_figures = torch.load(tmp_path / "one.pt.figures", weights_only=True)
    two_figures = torch.load(tmp_path / "two.pt.figures", weights_only=True)
    assert len(one_figures) == 3
    assert all(len(step) == 2 for step in one_figures)
    for one_step, two_step in zip(one_figures, two_figures, strict=True):
        assert two_step == pytest.approx(one_step, rel=1e-6)
