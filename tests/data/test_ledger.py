"""The label ledger and the datamodule's validation: every bad input a clear error, and nothing changed."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule
from lightning_bal.data.ledger import LabelLedger
from tests.helpers.models import blobs


def make_dm(n: int = 20, **kwargs) -> ActiveDataModule:
    return ActiveDataModule(blobs(n), seed=0, **kwargs)  # 3 classes: task "classification", num_classes 3


def snapshot(dm: ActiveDataModule) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in dm.state_dict().items()}


def assert_unchanged(before: dict, dm: ActiveDataModule) -> None:
    after = snapshot(dm)
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value.nan_to_num(-7.0), after[key].nan_to_num(-7.0)), key
        else:
            assert value == after[key], key


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        ([float("nan")], ValueError, "finite"),
        ([float("inf")], ValueError, "finite"),
        ([1e30], ValueError, r"classes in \[0, 3\)"),
        ([-1], ValueError, r"classes in \[0, 3\)"),
        ([999], ValueError, r"classes in \[0, 3\)"),
        ([-100], ValueError, r"classes in \[0, 3\)"),
        ([2.7], ValueError, "integer classes"),
        ([True], TypeError, "numbers"),
        (["cat"], TypeError, "numbers"),
    ],
)
def test_annotator_labels_are_checked_against_the_task(labels, error, match):
    dm = make_dm()
    before = snapshot(dm)
    with pytest.raises(error, match=match):
        dm.label([4], labels=labels)
    with pytest.raises(error, match=match):
        dm.acquire([4], labels=labels)
    assert_unchanged(before, dm)


def test_valid_labels_are_stored_as_classes():
    dm = make_dm()
    dm.label([1, 2, 3], labels=[np.int64(2), 1.0, torch.tensor(0).item()])
    assert dm.annotations == {1: 2, 2: 1, 3: 0}
    assert all(type(v) is int for v in dm.annotations.values())


def test_regression_labels_must_be_finite_numbers():
    data = TensorDataset(torch.randn(10, 2), torch.randn(10))
    dm = ActiveDataModule(data, task="regression", seed=0)
    dm.label([0, 1], labels=[2.7, -100.0])
    assert dm.annotations == {0: 2.7, 1: -100.0}
    assert dm.labelled_targets() is None
    with pytest.raises(ValueError, match="finite"):
        dm.label([2], labels=[float("nan")])


@pytest.mark.parametrize(
    "indices",
    [np.int64(4), np.array([9, 4, 1])[::-1], [np.int64(4)], torch.tensor([4], dtype=torch.int32), range(4, 6)],
    ids=["numpy-scalar", "negative-stride", "numpy-int-list", "int32", "range"],
)
def test_common_index_forms_are_accepted(indices):
    dm = make_dm()
    dm.label(indices)
    expected = sorted(
        int(i) for i in np.atleast_1d(np.asarray(list(indices) if isinstance(indices, range) else indices))
    )
    assert dm.labelled_indices.tolist() == expected


def test_an_empty_index_list_labels_nothing_and_acquire_still_starts_a_step():
    dm = make_dm()
    dm.label([])
    assert dm.num_labelled == 0
    assert dm.acquire(np.argsort(np.zeros(0))[::-1]) == 1


def test_relabel_and_unlabel_correct_an_annotator():
    dm = make_dm()
    dm.label([1, 2], labels=[0, 1])
    before = snapshot(dm)
    with pytest.raises(ValueError, match="are in the pool"):
        dm.relabel([1, 3], labels=[2, 2])
    with pytest.raises(ValueError, match=r"classes in \[0, 3\)"):
        dm.relabel([1], labels=[5])
    assert_unchanged(before, dm)
    dm.relabel([1], labels=[2])
    assert dm.annotations == {1: 2, 2: 1}
    dm.unlabel([2])
    assert dm.annotations == {1: 2}
    assert dm.labelled_indices.tolist() == [1]
    assert dm.acquisition_order[2] == -1


def _write(tmp_path, rows, suffix=".json"):
    path = tmp_path / f"answers{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        path.write_text(rows)
    return path


@pytest.mark.parametrize(
    ("rows", "suffix", "match"),
    [
        ([{"index": 5, "label": 1}, {"index": 7, "label": 1}], ".json", r"\[7\], which were not\s+queried"),
        ([{"index": 5, "label": 3}], ".json", r"classes in \[0, 3\)"),
        ([{"index": 5, "label": 2.7}], ".json", "integer classes"),
        ([{"index": 0.7, "label": 1}], ".json", "index"),
        ([{"index": True, "label": 1}], ".json", "index"),
        ("5,1,1\n", ".csv", "header"),
    ],
)
def test_bad_answer_files_change_nothing(tmp_path, rows, suffix, match):
    dm = make_dm()
    dm.query([5, 6])
    before = snapshot(dm)
    with pytest.raises((ValueError, TypeError), match=match):
        dm.import_labels(_write(tmp_path, rows, suffix))
    assert_unchanged(before, dm)


def _state(**changes):
    dm = make_dm()
    dm.label([1, 2], labels=[0, 1])
    state = dm.state_dict()
    for key, value in changes.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    return state


@pytest.mark.parametrize(
    ("state", "match"),
    [
        (_state(acquired_at=None), "acquired_at"),
        (_state(generator_state=None), "generator_state"),
        (_state(generator_state=torch.zeros(3, dtype=torch.uint8)), "generator"),
        (_state(acquired_at=torch.zeros(5, 10, dtype=torch.long)), "size 50"),
        (_state(acquired_at=torch.full((20,), -5)), "-1 or a step"),
        (_state(acquired_at=torch.zeros(20)), "integer tensor"),
        (_state(annotation_indices=torch.tensor([1, 99])), r"in \[0, 20\)"),
        (_state(annotation_indices=torch.tensor([1, 7])), "labelled indices"),
        (_state(annotation_values=torch.tensor([0.0, 9.0], dtype=torch.float64)), r"classes in \[0, 3\)"),
        (_state(acquisition_order=torch.zeros(7, dtype=torch.long)), "size 7"),
        (_state(pending_query=torch.tensor([1])), "pool indices"),
        (_state(step=-1), "non-negative"),
        (_state(pool_subset=torch.tensor([25])), r"in \[0, 20\)"),
    ],
)
def test_load_state_dict_validates_everything_before_changing_anything(state, match):
    dm = make_dm()
    dm.label([3])
    before = snapshot(dm)
    with pytest.raises((ValueError, KeyError, TypeError), match=match):
        dm.load_state_dict(state)
    assert_unchanged(before, dm)


def test_the_ledger_needs_no_lightning():
    ledger = LabelLedger(5, task="classification", num_classes=2)
    ledger.label([0], labels=[1])
    ledger.query([3, 4])
    assert ledger.answer([3], [0]).tolist() == [3]
    assert ledger.pending_query == [4]
    copy = LabelLedger(5, task="classification", num_classes=2)
    copy.load_state_dict(ledger.state_dict())
    assert copy.annotations == ledger.annotations == {0: 1, 3: 0}


def test_the_shuffle_follows_the_trainers_epoch_without_set_epoch():
    """Under DDP, Lightning releases before 2.4 did not forward `set_epoch` to a custom sampler."""

    class FakeTrainer:
        current_epoch = 0

    dm = make_dm(40)
    dm.label_randomly(20)
    dm.trainer = FakeTrainer()
    first = list(dm.train_dataloader().sampler)
    FakeTrainer.current_epoch = 1
    second = list(dm.train_dataloader().sampler)
    assert sorted(first) == sorted(second)
    assert first != second


@pytest.mark.parametrize(
    ("task", "labels", "expected"),
    [
        (None, [2, 0.5], {0: 2, 3: 0.5}),
        ("regression", [2, 0.5], {0: 2.0, 3: 0.5}),
        ("classification", [2, 1], {0: 2, 3: 1}),
    ],
)
def test_saved_labels_come_back_in_the_task_canonical_form(task, labels, expected):
    ledger = LabelLedger(5, task=task)
    ledger.label([0, 3], labels=labels)
    state = ledger.state_dict()
    assert "annotation_is_int" not in state
    # A state written before the task gave labels their form still carries the int record; it is ignored.
    for saved in (state, {**state, "annotation_is_int": [True, False]}):
        restored = LabelLedger(5, task=task)
        restored.load_state_dict(saved)
        assert restored.annotations == expected
        assert [type(v) for v in restored.annotations.values()] == [type(v) for v in expected.values()]
