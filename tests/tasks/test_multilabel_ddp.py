"""Multi-label classification under DDP on CPU (gloo, spawn): two processes label what one process labels."""

from datetime import timedelta

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import MultiLabelF1
from lightning_bal.callbacks.active_learning import FINAL_STATE_FILE
from lightning_bal.heuristics import MultiLabelBALD, MultiLabelEntropy
from tests.callbacks.test_ddp import AssertRanksAgree, WriteResult
from tests.tasks.test_multilabel import NUM_CLASSES, MultiLabelNet, multilabel_data
from tests.tasks.test_task_ddp import WriteFigures

pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"])]


def _fit(tmp_path, heuristic, devices, name):
    pl.seed_everything(0)
    dm = ActiveDataModule(
        multilabel_data(31),
        val_dataset=multilabel_data(7, seed=1),
        task="multilabel",
        num_classes=NUM_CLASSES,
        initial_labels=4,
        seed=0,
        pool_batch_size=5,
    )
    evaluation = MultiLabelF1(NUM_CLASSES)
    callback = ActiveLearningCallback(heuristic, query_size=3, iterations=4, seed=7, evaluations=[evaluation])
    extra = [AssertRanksAgree()] if devices > 1 else []
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=120)) if devices > 1 else "auto",
        max_epochs=3,
        callbacks=[*extra, callback, WriteResult(tmp_path / name), WriteFigures(tmp_path / f"{name}.figures")],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(MultiLabelNet(lr=0.0), datamodule=dm)
    acquired = torch.load(tmp_path / name, weights_only=True)
    if devices > 1:
        # The main process's datamodule is handed rank zero's final state, which every rank agreed on.
        dm.load_state_dict(torch.load(tmp_path / FINAL_STATE_FILE, weights_only=True))
    assert torch.equal(dm.acquired_at, acquired)
    return acquired


@pytest.mark.parametrize("heuristic", [MultiLabelBALD(), MultiLabelEntropy(reduction="max")], ids=["bald", "entropy"])
def test_two_processes_label_what_one_process_labels(tmp_path, heuristic):
    """Training is off (lr=0), so both runs score the same model: the labelled sets match step for step."""
    one = _fit(tmp_path, heuristic, 1, "one.pt")
    two = _fit(tmp_path, heuristic, 2, "two.pt")
    assert torch.bincount(two[two >= 0]).tolist() == [4, 3, 3, 3]
    assert torch.equal(one, two)
    # Each rank scores its shard of the split; the F1 states are summed over ranks: the whole split's figure.
    one_figures = torch.load(tmp_path / "one.pt.figures", weights_only=True)
    two_figures = torch.load(tmp_path / "two.pt.figures", weights_only=True)
    assert [sorted(step) for step in one_figures] == [["active/val_f1"]] * 3
    for one_step, two_step in zip(one_figures, two_figures, strict=True):
        assert two_step == pytest.approx(one_step, rel=1e-6)
