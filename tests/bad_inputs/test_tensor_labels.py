"""Tensor labels that do not fit the run: a mask of another size, a multi-hot vector of another length, a tampered
checkpoint entry. Each gets a clear error naming the argument or the entry, and the datamodule, the ledger or the
checkpoint's folder is left unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule
from lightning_bal.annotation import AnswerFormat, encode_brush_rle, load_label_state
from lightning_bal.annotation.sync import bring_in_answers
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.tasks import MultiLabel, resolve_task
from tests.bad_inputs.files import Folder
from tests.bad_inputs.harness import accepts, refuses

LABELS = {"cat": 1, "dog": 2}
SIZE = (3, 4)


def segmentation() -> ActiveDataModule:
    """6 images whose dataset targets are class maps of ``SIZE``; items 0 and 1 carry annotator masks."""
    dataset = TensorDataset(torch.zeros(6, 1, *SIZE), torch.zeros(6, *SIZE, dtype=torch.long))
    dm = ActiveDataModule(dataset, ids=list("abcdef"), task="per_position", num_classes=3, seed=0)
    dm.label([0, 1], [torch.ones(SIZE, dtype=torch.long), torch.full(SIZE, 2)])
    return dm


def multilabel() -> ActiveDataModule:
    dataset = TensorDataset(torch.zeros(6, 2), torch.zeros(6, 3, dtype=torch.long))
    dm = ActiveDataModule(dataset, ids=list("abcdef"), task="multilabel", num_classes=3, seed=0)
    dm.label([0], [[1, 0, 1]])
    return dm


DATAMODULE_CASES: list[tuple[Callable[[], ActiveDataModule], Callable[[ActiveDataModule], Any], str]] = [
    (segmentation, lambda dm: dm.label([2, 3], [torch.zeros(SIZE, dtype=torch.long), torch.zeros(4, 3)]), r"shape"),
    (
        segmentation,
        lambda dm: dm.label([2], [torch.zeros(2, 2, dtype=torch.long)]),
        r"`labels` to hold a label of shape \[3, 4\] for index 2 \(the shape of its target in the dataset\), but got"
        r" \[2, 2\]",
    ),
    (
        segmentation,
        lambda dm: dm.acquire([2], [torch.zeros(3, dtype=torch.long)]),
        r"`labels` to hold a label of shape \[3, 4\] for index 2.*\[3\]",
    ),
    (
        segmentation,
        lambda dm: dm.relabel([1], [torch.zeros(4, 3, dtype=torch.long)]),
        r"`labels` to hold a label of shape \[3, 4\] for index 1",
    ),
    (
        segmentation,
        lambda dm: dm.label([2], [torch.full(SIZE, 3)]),
        r"`labels` to hold class maps with classes in \[0, 3\)",
    ),
    (
        segmentation,
        lambda dm: dm.label([2, 3], [torch.zeros(SIZE, dtype=torch.long), 1]),
        r"`labels` to hold class maps .* for a per-position run, but got 1: one class cannot label every position",
    ),
    (
        segmentation,
        lambda dm: dm.relabel([1], [2]),
        r"`labels` to hold class maps .* for a per-position run, but got 2",
    ),
    (multilabel, lambda dm: dm.label([1], [[1, 0]]), r"`labels` to hold multi-hot vectors of 3 classes.*one of 2"),
    (multilabel, lambda dm: dm.relabel([0], [[1, 0, 1, 1]]), r"`labels` to hold multi-hot vectors of 3 classes"),
    (multilabel, lambda dm: dm.label([1], [[2, 0, 0]]), r"`labels` to hold multi-hot vectors \(0 or 1 per class\)"),
]


@pytest.mark.parametrize(("make", "call", "match"), DATAMODULE_CASES)
def test_tensor_labels_that_do_not_fit_the_run_are_refused(make, call, match):
    dm = make()
    refuses("ActiveDataModule.label (tensor labels)", lambda: call(dm), ValueError, match, dm)


def test_tensor_labels_that_fit_the_run_are_accepted():
    dm = segmentation()
    accepts(lambda: dm.label([2], [torch.full(SIZE, 2)]))
    accepts(lambda: dm.relabel([0], [torch.zeros(SIZE, dtype=torch.long)]))
    assert torch.equal(dm.annotations[0], torch.zeros(SIZE, dtype=torch.long))
    dm = multilabel()
    accepts(lambda: dm.label([1], [torch.tensor([0, 1, 1])]))


def test_a_ledger_keeps_the_shape_of_a_class_map_when_relabelled():
    ledger = LabelLedger(4, "per_position", num_classes=3)
    ledger.label([1], [torch.zeros(2, 5, dtype=torch.long)])
    refuses(
        "LabelLedger.relabel (tensor labels)",
        lambda: ledger.relabel([1], [torch.zeros(5, 2, dtype=torch.long)]),
        ValueError,
        r"`labels` to hold a label of shape \[2, 5\] for index 1 \(the shape of its label\), but got \[5, 2\]",
        ledger,
    )
    accepts(lambda: ledger.relabel([1], [torch.ones(2, 5, dtype=torch.long)]))


def checkpoint(folder: Path, change: Callable[[dict[str, Any]], Any] | None = None) -> Path:
    """A segmentation run (ids a..f) with a mask on b, whose step-1 query asks c and d; ``change`` tampers with it."""
    dm = ActiveDataModule(TensorDataset(torch.zeros(6, 1)), ids=list("abcdef"), task="per_position", num_classes=3)
    dm.label([1], [torch.ones(SIZE, dtype=torch.long)])
    dm.query([2, 3], new_step=True)
    state = dm.state_dict()
    if change is not None:
        change(state)
    path = folder / "run.ckpt"
    torch.save({"ActiveDataModule": state}, path)
    return path


TAMPERED: list[tuple[Callable[[dict[str, Any]], Any], str]] = [
    (
        lambda s: s.update(task="per_posiiton"),
        r"`ActiveDataModule.task` and `ActiveDataModule.task_options`.*'per_posi",
    ),
    (lambda s: s.update(task_options={"ignore_index": "x"}), r"`ActiveDataModule.task_options`.*ignore_index"),
    (lambda s: s.update(task_options=[255]), r"`ActiveDataModule.task_options`.*dict of the task's arguments"),
    (
        lambda s: s.update(task_options={"size": 3}),
        r"`ActiveDataModule.task_options`.*arguments of task 'per_position'",
    ),
    (
        lambda s: s["annotation_fields"]["@shape"].copy_(torch.tensor([4, 4])),
        r"`annotation_fields\['@tensor'\]` to hold 16 values for label 0 \(its `@shape` \[4, 4\]\), but got 12",
    ),
    (
        lambda s: s["annotation_fields"]["@shape"].copy_(torch.tensor([-3, -4])),
        r"`annotation_fields\['@shape'\]` to hold non-negative integer sizes",
    ),
    (
        lambda s: s["annotation_fields"].update({"@shape": torch.tensor([3.0, 4.0])}),
        r"`annotation_fields\['@shape'\]` to hold non-negative integer sizes",
    ),
    (
        lambda s: s["annotation_fields"]["@tensor"].fill_(7),
        r"`annotation_values` valid for the task.*classes in \[0, 3\)",
    ),
    (
        lambda s: (s["annotation_fields"].pop("@shape"), s["annotation_field_rows"].pop("@shape")),
        r"structured label 0 of `annotation_fields` to hold both `@tensor` and `@shape`",
    ),
    (
        lambda s: s["annotation_field_rows"].update({"@tensor": torch.tensor([5])}),
        r"`annotation_fields\['@tensor'\]` to hold 5 rows",
    ),
    (
        lambda s: (
            s["annotation_fields"].update(boxes=torch.zeros(1, 4)),
            s["annotation_field_rows"].update(boxes=torch.tensor([1])),
        ),
        r"to hold both `@tensor` and `@shape` \(a tensor label\) and nothing else, but it holds \['@shape', '@tensor'",
    ),
]


@pytest.mark.parametrize(("change", "match"), TAMPERED)
def test_a_tampered_tensor_label_entry_is_refused(tmp_path, change, match):
    path = checkpoint(tmp_path, change)
    refuses("load_label_state (tensor labels)", lambda: load_label_state(path), ValueError, match, Folder(tmp_path))


def test_an_untampered_segmentation_checkpoint_loads(tmp_path):
    state = accepts(lambda: load_label_state(checkpoint(tmp_path)))
    assert torch.equal(state.ledger.annotations[1], torch.ones(SIZE, dtype=torch.long))


def brush(mask: torch.Tensor, name: str) -> dict[str, Any]:
    height, width = mask.shape
    value = {"format": "rle", "rle": encode_brush_rle(mask), "brushlabels": [name]}
    return {"type": "brushlabels", "original_height": height, "original_width": width, "value": value}


def export(path: Path, answers: dict[str, Any], step: int = 1) -> Path:
    tasks = [
        {
            "id": number,
            "data": {"lbal_id": item, "lbal_step": step},
            "annotations": [{"id": number, "created_at": "2026-01-01T10:00:00Z", "result": result}],
        }
        for number, (item, result) in enumerate(answers.items())
    ]
    path.write_text(json.dumps(tasks))
    return path


def test_a_mask_correction_of_another_size_is_refused_by_the_checkpoint(tmp_path):
    path = checkpoint(tmp_path)
    bring_in_answers(
        path, export(tmp_path / "first.json", {"c": [brush(torch.eye(3, 4).bool(), "cat")]}), label_map=LABELS
    )
    later = export(
        tmp_path / "later.json",
        {"c": [brush(torch.eye(2, 2).bool(), "dog")], "d": [brush(torch.eye(3, 4).bool(), "dog")]},
    )
    refuses(
        "bring_in_answers (tensor answers)",
        lambda: bring_in_answers(path, later, label_map=LABELS, answer=AnswerFormat("brush", LABELS)),
        ValueError,
        r"`labels` to hold a label of shape \[3, 4\] for index 2 \(the shape of its label\), but got \[2, 2\]",
        Folder(tmp_path),
    )
    fixed = export(tmp_path / "fixed.json", {"c": [brush(torch.ones(3, 4).bool(), "dog")]})
    accepts(lambda: bring_in_answers(path, fixed, label_map=LABELS))
    assert load_label_state(path).ledger.annotations[2].tolist() == [[2] * 4] * 3


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ([("ignore_index", 255)], TypeError, r"`options` to be a dict of the task's arguments"),
        ({1: 255}, TypeError, r"`options` to be a dict of the task's arguments"),
        ({"ignore": 255}, TypeError, r"`options` to be arguments of task 'per_position'.*'ignore'"),
        ({"ignore_index": 2.5}, TypeError, r"`options` to be arguments of task 'per_position'.*`ignore_index`"),
    ],
)
def test_resolve_task_refuses_options_the_task_does_not_take(options, error, match):
    refuses("tasks.resolve_task", lambda: resolve_task("per_position", options), error, match)


def test_resolve_task_builds_a_named_task_with_its_options():
    assert accepts(lambda: resolve_task("per_position", {"ignore_index": 255})).ignore_index == 255
    assert isinstance(accepts(lambda: resolve_task("multilabel", {})), MultiLabel)


def test_a_resumed_run_refuses_a_saved_mask_of_another_size_than_its_target(tmp_path):
    # The checkpoint took the mask (it knows no item's size); the dataset says the item is 3 x 4.
    saved = LabelLedger(6, "per_position", num_classes=3)
    saved.label([1], [torch.zeros(2, 2, dtype=torch.long)])
    dm = segmentation()
    dm.load_state_dict({**dm.state_dict(), **saved.state_dict()})
    refuses(
        "ActiveDataModule.train_dataloader",
        dm.train_dataloader,
        ValueError,
        r"the annotator label \(the state's `@tensor`\) to hold a label of shape \[3, 4\] for index 1.*\[2, 2\]",
        dm,
    )
    fitting = LabelLedger(6, "per_position", num_classes=3)
    fitting.label([1], [torch.ones(SIZE, dtype=torch.long)])
    dm.load_state_dict({**dm.state_dict(), **fitting.state_dict()})
    _, targets = next(iter(accepts(dm.train_dataloader)))
    assert targets.tolist() == [[[1] * 4] * 3]
