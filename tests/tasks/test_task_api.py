"""lightning_bal.tasks: stacking and joining outputs of any structure, labels per task, the task the engine uses."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lightning.pytorch.callbacks import Callback

from lightning_bal import ActiveDataModule
from lightning_bal.mc.engine import task_of
from lightning_bal.tasks import Classification, PerPosition, Regression, Task, merge, resolve_task
from tests.helpers.models import DropoutClassifier, blobs


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 4),
    sizes=st.lists(st.integers(0, 3), min_size=1, max_size=3),
    trailing=st.lists(st.integers(1, 3), max_size=2),
)
def test_stacking_then_joining_runs_matches_torch(k, sizes, trailing):
    """K samples of runs of items, as a tensor, a tuple and a dict: ``[B, K, ...]`` per run, runs joined by item."""
    generator = torch.Generator().manual_seed(0)
    runs = [[torch.randn(b, *trailing, generator=generator) for _ in range(k)] for b in sizes]
    task = Task()
    for wrap in (lambda t: t, lambda t: (t, 2 * t), lambda t: {"mean": t, "flag": "kept"}):
        joined = task.cat_items([task.stack_samples([wrap(t) for t in run]) for run in runs])
        expected = torch.cat([torch.stack(run, dim=1) for run in runs])
        first = (
            joined if isinstance(joined, torch.Tensor) else joined[0] if isinstance(joined, tuple) else joined["mean"]
        )
        torch.testing.assert_close(first, expected, rtol=0, atol=0)
        if isinstance(joined, dict):
            assert joined["flag"] == "kept"


def test_merge_refuses_outputs_of_different_structure():
    with pytest.raises(ValueError, match="zip"):
        merge([(torch.zeros(1), torch.zeros(1)), (torch.zeros(1),)], torch.cat)


@pytest.mark.parametrize(
    ("task", "value", "expected"),
    [
        (None, 2.0, 2),
        (None, 2.5, 2.5),
        ("classification", 2.0, 2),
        ("regression", 2, 2.0),
    ],
)
def test_each_task_gives_a_label_its_canonical_form(task, value, expected):
    label = resolve_task(task).check_label(value, num_classes=3)
    assert label == expected
    assert type(label) is type(expected)


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (Classification(), "MulticlassAccuracy"),
        (PerPosition(-1), "MulticlassJaccardIndex"),
        (Regression(), "MeanSquaredError"),
    ],
)
def test_each_task_names_its_metric(task, expected):
    assert type(task.metric(3)).__name__ == expected


@pytest.mark.parametrize(
    ("task", "expected_name", "expected_classes"),
    [(None, "classification", 3), (Classification(), "classification", 3), (Regression(), "regression", None)],
)
def test_the_datamodule_resolves_its_task(task, expected_name, expected_classes):
    dm = ActiveDataModule(blobs(12), task=task, seed=0)
    assert (dm.ledger.task, dm.ledger.num_classes) == (expected_name, expected_classes)
    assert dm.state_dict()["task"] == expected_name


def test_a_task_instance_survives_loading_a_state():
    task = Regression()
    dm = ActiveDataModule(blobs(12), task=task, seed=0)
    dm.label([0], labels=[1.5])
    dm.load_state_dict(dm.state_dict())
    assert dm.ledger.task_type is task


class _RecordTask(Callback):
    def on_train_start(self, trainer, pl_module):
        self.task = task_of(pl_module)


def test_the_engine_takes_the_task_of_the_datamodule_the_model_trains_with(tmp_path):
    task = Classification()
    dm = ActiveDataModule(blobs(12), task=task, initial_labels=4, seed=0)
    record = _RecordTask()
    trainer = pl.Trainer(
        max_epochs=1,
        callbacks=[record],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    model = DropoutClassifier()
    assert type(task_of(model)) is Task  # not attached to a Trainer
    trainer.fit(model, datamodule=dm)
    assert record.task is task
    assert type(task_of(torch.nn.Linear(2, 2))) is Task
