"""Tensor labels (multi-hot vectors, class maps of any shape) in the ledger: kept in its state field by field, saved
with ``weights_only=True``, loaded equal, changed by relabel/unlabel, and yielded by the labelled view as the target."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.tasks import Classification, MultiLabel, PerPosition, Regression, Task, resolve_task
from lightning_bal.tasks.detection import Detection


def saved(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def equal(first: dict[int, Any], second: dict[int, Any]) -> bool:
    return sorted(first) == sorted(second) and all(
        isinstance(second[i], type(value))
        and (torch.equal(value, second[i]) if isinstance(value, torch.Tensor) else value == second[i])
        for i, value in first.items()
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), min_size=1, max_size=6),
    st.integers(0, 2**32 - 1),
)
def test_class_maps_of_any_shape_survive_a_weights_only_round_trip(shapes, seed):
    generator = torch.Generator().manual_seed(seed)
    values = [torch.randint(-1, 3, shape, generator=generator) for shape in shapes]
    ledger = LabelLedger(8, PerPosition(ignore_index=-1), num_classes=3)
    ledger.label(list(range(len(values))), values)
    loaded = LabelLedger(8, PerPosition(ignore_index=-1), num_classes=3)
    loaded.load_state_dict(saved(ledger.state_dict()))
    assert equal(ledger.annotations, loaded.annotations)
    assert loaded.state_dict().keys() == ledger.state_dict().keys()


def test_multi_hot_labels_are_relabelled_unlabelled_and_saved():
    ledger = LabelLedger(4, "multilabel", num_classes=3)
    ledger.label([0, 2], [[1, 0, 1], [0, 0, 1]])
    ledger.relabel([0], [torch.tensor([0, 1, 0])])
    ledger.unlabel([2])
    loaded = LabelLedger(4, "multilabel", num_classes=3)
    loaded.load_state_dict(saved(ledger.state_dict()))
    assert {i: label.tolist() for i, label in loaded.annotations.items()} == {0: [0, 1, 0]}
    assert loaded.labelled_indices.tolist() == [0]


def test_tensor_and_box_labels_do_not_share_their_fields():
    # A detection label's fields and a tensor label's reserved ones live side by side in one state.
    ledger = LabelLedger(3, Detection(), num_classes=3)
    ledger.label([1], [{"boxes": [[0.0, 0.0, 2.0, 2.0]], "labels": [1]}])
    state = ledger.state_dict()
    assert sorted(state["annotation_fields"]) == ["boxes", "labels"]
    tensors = LabelLedger(3, "multilabel", num_classes=2)
    tensors.label([1], [[1, 1]])
    assert sorted(tensors.state_dict()["annotation_fields"]) == ["@shape", "@tensor"]


@pytest.mark.parametrize(
    "task",
    [Task(), Classification(), MultiLabel(), PerPosition(), PerPosition(ignore_index=255), Regression(), Detection()],
)
def test_every_task_resolves_from_the_name_and_options_it_saves(task):
    again = resolve_task(task.name, task.options())
    assert (type(again), again.options()) == (type(task), task.options())


def test_the_ledger_saves_the_options_of_its_task():
    assert LabelLedger(2, PerPosition(ignore_index=255)).state_dict()["task_options"] == {"ignore_index": 255}
    assert "task_options" not in LabelLedger(2, PerPosition()).state_dict()


def test_the_labelled_view_yields_a_multi_hot_label_as_the_target():
    dataset = TensorDataset(torch.zeros(4, 2), torch.zeros(4, 3, dtype=torch.long))
    dm = ActiveDataModule(dataset, task="multilabel", num_classes=3, batch_size=4, seed=0)
    dm.label([1, 3], [[1, 0, 1], [0, 1, 0]])
    dm.label([0])
    _, targets = next(iter(dm.train_dataloader()))
    assert sorted(map(tuple, targets.tolist())) == [(0, 0, 0), (0, 1, 0), (1, 0, 1)]
