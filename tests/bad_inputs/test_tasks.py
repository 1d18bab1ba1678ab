"""Tasks (lightning_bal.tasks): a wrong label, a wrong task, a wrong metric setting; each with valid neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_bal import ActiveDataModule
from lightning_bal.tasks import Classification, PerPosition, Regression, Task, resolve_task
from tests.bad_inputs.harness import accepts, refuses
from tests.helpers.models import blobs


@pytest.mark.parametrize(
    ("task", "value", "error", "match"),
    [
        (Task(), "1", TypeError, r"`labels`.*numbers.*'1'"),
        (Task(), None, TypeError, r"`labels`.*numbers.*None"),
        (Task(), True, TypeError, r"`labels`.*numbers.*True"),
        (Task(), np.bool_(False), TypeError, r"`labels`.*numbers"),
        (Task(), float("inf"), ValueError, r"`labels`.*finite numbers.*inf"),
        (Classification(), 1.5, ValueError, r"`labels`.*integer classes.*1.5"),
        (Classification(), -1, ValueError, r"`labels`.*classes in \[0, inf\).*-1"),
        (Classification(), 3, ValueError, r"`labels`.*classes in \[0, 3\).*3"),
        (Classification(), [1], TypeError, r"`labels`.*numbers.*\[1\]"),
        (Regression(), float("nan"), ValueError, r"`labels`.*finite numbers.*nan"),
        (Regression(), "2.0", TypeError, r"`labels`.*numbers.*'2.0'"),
        (PerPosition(), complex(1, 0), ValueError, r"`labels`.*class maps.*per-position run.*\(1\+0j\)"),
        (PerPosition(), 1, ValueError, r"`labels`.*class maps.*per-position run, but got 1: one class"),
    ],
)
def test_check_label_refuses(task, value, error, match):
    entry = "Task.check_label" if type(task) is Task else f"{type(task).__name__}.check_label"
    refuses(entry, lambda: task.check_label(value, num_classes=3 if "3" in match else None), error, match, task)


@pytest.mark.parametrize(
    ("task", "value", "expected"),
    [(Task(), 2.0, 2), (Task(), 0.5, 0.5), (Classification(), np.int64(2), 2), (Regression(), 2, 2.0)],
)
def test_check_label_accepts(task, value, expected):
    label = accepts(lambda: task.check_label(value, num_classes=3))
    assert label == expected
    assert type(label) is type(expected)


@pytest.mark.parametrize(
    ("call", "entry", "error", "match"),
    [
        (lambda: resolve_task("segmentation"), "tasks.resolve_task", ValueError, r"`task`.*'classification'.*Task"),
        (lambda: resolve_task(Classification), "tasks.resolve_task", ValueError, r"`task`.*or a `Task`"),
        (lambda: resolve_task(3), "tasks.resolve_task", ValueError, r"`task`.*got 3"),
        (lambda: PerPosition(ignore_index=1.5), "PerPosition()", TypeError, r"`ignore_index`.*integer or None"),
        (lambda: PerPosition(ignore_index=True), "PerPosition()", TypeError, r"`ignore_index`.*integer or None"),
        (lambda: PerPosition().metric(1), "PerPosition.metric", ValueError, r"`num_classes`.*integer >= 2.*1"),
        (lambda: PerPosition().metric(None), "PerPosition.metric", ValueError, r"`num_classes`.*None"),
        (lambda: Classification().metric("3"), "Classification.metric", ValueError, r"`num_classes`.*'3'"),
        (lambda: Task().metric(3), "Task.metric", NotImplementedError, r"task with a metric.*`Task`"),
    ],
)
def test_task_calls_refuse(call, entry, error, match):
    refuses(entry, call, error, match)


def test_valid_neighbours_are_accepted():
    assert isinstance(accepts(lambda: resolve_task("classification")), Classification)
    assert accepts(lambda: PerPosition(ignore_index=-100)).ignore_index == -100
    assert accepts(lambda: PerPosition().metric(2)).num_classes == 2
    assert accepts(lambda: Classification().metric(3)).num_classes == 3


def test_a_datamodule_of_a_task_refuses_a_label_the_task_refuses():
    """The datamodule's ledger asks its task: a wrong label changes nothing."""
    dm = ActiveDataModule(blobs(12), task=Regression(), seed=0)
    pool = dm.pool_indices[:1].tolist()
    refuses("ActiveDataModule.label", lambda: dm.label(pool, labels=[float("nan")]), ValueError, r"`labels`", dm)
    accepts(lambda: dm.label(pool, labels=[1]))
    assert dm.annotations == {pool[0]: 1.0}
