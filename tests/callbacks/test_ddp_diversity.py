"""Embedding heuristics under DDP on CPU (gloo): each rank selects from its own shard, by collectives, as one."""

from datetime import timedelta

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy

from lightning_bal import ActiveLearningCallback
from lightning_bal.heuristics import BADGE, CoreSet, ProbCover, TypiClust
from tests.helpers.models import DropoutClassifier
from tests.helpers.runs import make_datamodule

pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"])]


class RecordingBADGE(BADGE):
    """Keeps what this rank selected on its own, before the pool pass broadcasts rank zero's selection."""

    def select_embeddings(self, embeddings, query_size, **kwargs):
        picks = super().select_embeddings(embeddings, query_size, **kwargs)
        self.own, self.rows = picks.indices, embeddings.shape[0]
        return picks


class RecordingCoreSet(CoreSet):
    def select_embeddings(self, embeddings, query_size, **kwargs):
        picks = super().select_embeddings(embeddings, query_size, **kwargs)
        self.own, self.rows = picks.indices, embeddings.shape[0]
        return picks


class RecordingTypiClust(TypiClust):
    def select_embeddings(self, embeddings, query_size, **kwargs):
        picks = super().select_embeddings(embeddings, query_size, **kwargs)
        self.own, self.rows = picks.indices, embeddings.shape[0]
        return picks


class RecordingProbCover(ProbCover):
    def __init__(self):
        super().__init__(num_classes=3)

    def select_embeddings(self, embeddings, query_size, **kwargs):
        picks = super().select_embeddings(embeddings, query_size, **kwargs)
        self.own, self.rows = picks.indices, embeddings.shape[0]
        return picks


class AssertOwnSelectionsAgree(Callback):
    """After each step every rank's own selection is the same, and no rank held the whole pool."""

    def on_train_epoch_start(self, trainer, pl_module):
        al = next(c for c in trainer.callbacks if isinstance(c, ActiveLearningCallback))
        own = getattr(al.heuristic, "own", None)
        if own is None:
            return
        gathered = trainer.strategy.all_gather(own)
        assert torch.equal(gathered[0], gathered[1]), "ranks selected different items"
        rows = trainer.strategy.all_gather(torch.tensor([al.heuristic.rows]))
        assert rows.sum() == trainer.datamodule.num_pool + own.numel()
        assert rows.max() < rows.sum()
        al.heuristic.own = None


class WriteResult(Callback):
    def __init__(self, path):
        self.path = path

    def on_fit_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            torch.save(trainer.datamodule.acquired_at.clone(), self.path)


def _fit(tmp_path, heuristic, devices, name, iterations=4):
    pl.seed_everything(0)
    dm = make_datamodule(n=91, batch_size=8)  # 85 in the pool: uneven shards
    callback = ActiveLearningCallback(heuristic, query_size=4, iterations=iterations, seed=7)
    callbacks = [callback, WriteResult(tmp_path / name)]
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=120)) if devices > 1 else "auto",
        max_epochs=2,
        callbacks=[AssertOwnSelectionsAgree(), *callbacks] if devices > 1 else callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    # lr=0: both runs score the same model, so one and two processes must select the same items.
    trainer.fit(DropoutClassifier(lr=0.0), datamodule=dm)
    return torch.load(tmp_path / name, weights_only=True)


@pytest.mark.parametrize(
    ("heuristic", "iterations"),
    [(RecordingBADGE, 4), (RecordingCoreSet, 1), (RecordingTypiClust, 1), (RecordingProbCover, 1)],
)
def test_two_processes_select_what_one_process_selects(tmp_path, heuristic, iterations):
    one = _fit(tmp_path, heuristic(), 1, "one.pt", iterations)
    two = _fit(tmp_path, heuristic(), 2, "two.pt", iterations)
    assert torch.bincount(two[two >= 0]).tolist() == [6, 4, 4]
    assert torch.equal(one, two)
