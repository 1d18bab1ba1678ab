"""Resume under DDP from the hardest checkpoint timing: the end of an epoch's last training batch, with `Convergence`.

Lightning restarts such a checkpoint without the epoch's validation; the callback replays it on every rank before the
step it owes. Two processes (`ddp_spawn`, gloo) must then end with the uninterrupted run's labelled set and history.
"""

from datetime import timedelta

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy

from lightning_bal import ActiveLearningCallback
from lightning_bal.callbacks import Convergence
from tests.helpers.models import DropoutClassifier
from tests.helpers.runs import make_datamodule

pytestmark = [
    pytest.mark.slow,
    pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"]),
]


class BatchSeeded(DropoutClassifier):
    def on_train_batch_start(self, batch, batch_idx):
        torch.manual_seed(10_000 * self.current_epoch + 100 * self.global_rank + batch_idx)


class WriteOutcome(Callback):
    def __init__(self, path):
        self.path = path

    def on_fit_end(self, trainer, pl_module):
        acquired = trainer.strategy.all_gather(trainer.datamodule.acquired_at)
        assert torch.equal(acquired[0], acquired[1]), "ranks disagree on the labelled set"
        if trainer.is_global_zero:
            al = next(c for c in trainer.callbacks if isinstance(c, ActiveLearningCallback))
            figures = [{k: v for k, v in row.items() if "seconds" not in k} for row in al.history]
            torch.save({"acquired_at": acquired[0].clone(), "steps": al.steps_done, "history": figures}, self.path)


def _run(root, max_epochs, ckpt_path=None):
    pl.seed_everything(0)
    dm = make_datamodule(n=60, initial=6, batch_size=4)  # 2 batches per rank, growing with D_L
    callback = ActiveLearningCallback(
        "bald", query_size=4, iterations=4, seed=3, convergence=Convergence("val_loss", patience=1, max_epochs=2)
    )
    checkpoint = ModelCheckpoint(dirpath=root / "ckpt", save_top_k=-1, filename="{epoch}-{step}", every_n_train_steps=1)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=120)),
        max_epochs=max_epochs,
        callbacks=[callback, checkpoint, WriteOutcome(root / "outcome.pt")],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(BatchSeeded(), datamodule=dm, ckpt_path=ckpt_path)
    return torch.load(root / "outcome.pt", weights_only=True)


def test_two_processes_resume_a_last_batch_checkpoint_as_if_never_stopped(tmp_path):
    full = _run(tmp_path / "full", 5)
    assert full["steps"] >= 2
    _run(tmp_path / "part", 2)
    by_step = {int(p.stem.split("step=")[1]): p for p in (tmp_path / "part" / "ckpt").glob("*.ckpt")}
    last_batches = []
    for epoch in range(2):
        steps = [s for s, p in by_step.items() if p.stem.startswith(f"epoch={epoch}-")]
        last_batches.append(by_step[max(steps)])
    for number, path in enumerate(last_batches):
        resumed = _run(tmp_path / f"resumed{number}", 5, ckpt_path=path)
        assert torch.equal(resumed["acquired_at"], full["acquired_at"]), path.name
        assert resumed["steps"] == full["steps"], path.name
        for got, expected in zip(resumed["history"], full["history"], strict=True):
            assert got == pytest.approx(expected), path.name
