"""Annotator mode under DDP (2 CPU processes, gloo): one query, written once, the same on every rank."""

import csv
from datetime import timedelta

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy

from lightning_bal import ActiveLearningCallback
from lightning_bal.annotation import QueryFiles, import_answers, load_label_state
from lightning_bal.annotation.checkpoint_entries import saved_status, status_path
from tests.callbacks.test_ddp import RankNoisyBALD
from tests.helpers.models import blobs
from tests.helpers.runs import SeededDropoutClassifier, make_datamodule

pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"])]


class AssertSameQuery(Callback):
    """At fit end, every rank holds the same pending query and step."""

    def on_fit_end(self, trainer, pl_module):
        dm = trainer.datamodule
        pending = torch.full((16,), -1, dtype=torch.long)
        pending[: dm.pending_query.numel()] = dm.pending_query
        gathered = trainer.strategy.all_gather(torch.cat([pending, torch.tensor([dm.step])]))
        assert torch.equal(gathered[0], gathered[1]), "ranks disagree on the query"


def fit(root, ckpt=None, devices=2):
    pl.seed_everything(0)
    dm = make_datamodule(n=60, initial=6, ids=[f"item{i:02d}" for i in range(60)])
    callback = ActiveLearningCallback(RankNoisyBALD(), query_size=4, iterations=3, annotator=QueryFiles("csv"))
    trainer = pl.Trainer(
        max_epochs=-1,
        callbacks=[callback, AssertSameQuery()] if devices > 1 else [callback],
        default_root_dir=root,
        accelerator="cpu",
        devices=devices,
        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=120)) if devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(SeededDropoutClassifier(), datamodule=dm, ckpt_path=ckpt)


def test_a_ddp_query_resumes_in_one_process(tmp_path):
    fit(tmp_path)
    folder = tmp_path / "annotation"
    ckpt = folder / "annotation-step001.ckpt"
    assert sorted(p.name for p in folder.iterdir()) == [status_path(ckpt).name, ckpt.name, "query-step001.csv"]
    assert saved_status(ckpt) == load_label_state(ckpt).status(ckpt), "the summary rank zero saved says the same"
    rows = list(csv.DictReader((folder / "query-step001.csv").open()))
    state = load_label_state(folder / "annotation-step001.ckpt")
    assert [r["id"] for r in rows] == state.pending_ids()
    assert len(rows) == 4
    targets = blobs(60).tensors[1]
    for row in rows[:2]:
        row["label"] = str(int(targets[int(row["id"][4:])]))
    with (tmp_path / "answers.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import_answers(folder / "annotation-step001.ckpt", tmp_path / "answers.csv")
    fit(tmp_path, ckpt=folder / "annotation-step001.ckpt", devices=1)
    second = load_label_state(folder / "annotation-step002.ckpt")
    assert second.ledger.num_labelled == 8
    assert second.pending_ids()[:2] == [r["id"] for r in rows[2:]]
    assert len(second.pending_ids()) == 6
