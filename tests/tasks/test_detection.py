"""The detection task: labels of boxes (any number, none included), the ledger that keeps them, the loaders."""

from __future__ import annotations

import io

import pytest
import torch
from torchmetrics.detection.mean_ap import MeanAveragePrecision

from lightning_bal import ActiveDataModule
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.tasks import resolve_task
from lightning_bal.tasks.detection import Detection, detection_collate
from tests.detection.models import Squares
from tests.detection.skips import needs_map

TWO = {"boxes": [[1.0, 2.0, 10.0, 12.0], [0.0, 0.0, 32.0, 32.0]], "labels": [2, 1]}
EMPTY = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}


def test_a_label_in_canonical_form():
    label = Detection(image_size=(32, 32)).check_label(TWO, num_classes=3)
    assert label["boxes"].dtype == torch.float32
    assert label["boxes"].shape == (2, 4)
    assert label["labels"].dtype == torch.int64
    assert label["labels"].tolist() == [2, 1]
    empty = Detection().check_label({"boxes": [], "labels": []})
    assert empty["boxes"].shape == (0, 4)
    assert empty["labels"].shape == (0,)


@pytest.mark.parametrize(
    ("label", "error", "match"),
    [
        ([TWO], TypeError, "one dict per image"),
        ({"boxes": [[0, 0, 1, 1]]}, KeyError, "'boxes' and 'labels'"),
        ({**TWO, "extra": 1}, KeyError, "'boxes' and 'labels'"),
        ({"boxes": [[0, 0, float("nan"), 1]], "labels": [1]}, ValueError, "finite"),
        ({"boxes": [[5, 0, 1, 1]], "labels": [1]}, ValueError, "x1 < x2 and y1 < y2"),
        ({"boxes": [[0, 5, 1, 1]], "labels": [1]}, ValueError, "x1 < x2 and y1 < y2"),
        ({"boxes": [[0, 0, 33, 1]], "labels": [1]}, ValueError, "inside the image"),
        ({"boxes": [[-1, 0, 3, 1]], "labels": [1]}, ValueError, "inside the image"),
        ({"boxes": [[0, 0, 1, 1]], "labels": [0]}, ValueError, r"classes in \[1, 3\).*background"),
        ({"boxes": [[0, 0, 1, 1]], "labels": [3]}, ValueError, r"classes in \[1, 3\)"),
        ({"boxes": [[0, 0, 1, 1]], "labels": [1.5]}, TypeError, "integer classes"),
        ({"boxes": [[0, 0, 1, 1]], "labels": torch.tensor([1.0])}, TypeError, "integer classes"),
        ({"boxes": [[0, 0, 1, 1]], "labels": [1, 2]}, ValueError, r"one class per box \(1\)"),
        ({"boxes": [[0, 0, 1]], "labels": [1]}, ValueError, r"\[n, 4\]"),
        ({"boxes": "abc", "labels": [1]}, TypeError, "numbers"),
        ({**TWO, "image_size": (8, 8)}, ValueError, "width 8, height 8"),
        ({**TWO, "image_size": (0, 8)}, ValueError, "'image_size'"),
    ],
)
def test_bad_labels_are_refused_with_the_problem_named(label, error, match):
    with pytest.raises(error, match=match):
        Detection(image_size=(32, 32)).check_label(label, num_classes=3)


def test_the_task_by_name():
    task = resolve_task("detection")
    assert isinstance(task, Detection)
    assert task.name == "detection"
    assert not task.batched_samples
    with pytest.raises(ValueError, match="`image_size`"):
        Detection(image_size=(32, 0))


@needs_map
def test_the_metric_is_coco_map_of_xyxy_boxes():
    metric = Detection().metric()
    assert isinstance(metric, MeanAveragePrecision)
    box = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    metric.update(
        [{"boxes": box, "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}],
        [{"boxes": box, "labels": torch.tensor([1])}],
    )
    assert float(metric.compute()["map_50"]) == 1.0


def test_without_the_coco_backends_the_metric_names_the_extra(monkeypatch):
    from torchmetrics.detection import mean_ap

    monkeypatch.setattr(mean_ap, "_TORCHVISION_AVAILABLE", False)
    with pytest.raises(ModuleNotFoundError, match=r"lightning-bal\[detection\]"):
        Detection().metric()


def test_samples_stay_lists_per_image():
    one = {"boxes": torch.zeros(1, 4) + torch.tensor([0, 0, 1, 1]), "labels": torch.ones(1, dtype=torch.long)}
    one["scores"] = torch.ones(1)
    none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "scores": torch.zeros(0)}
    stacked = Detection().stack_samples([[one, none], [none, none], [one, one]])
    assert len(stacked) == 2
    assert all(len(image) == 3 for image in stacked)
    assert [sample["boxes"].shape[0] for sample in stacked[0]] == [1, 0, 1]
    assert len(Detection().cat_items([stacked, stacked[:1]])) == 3
    with pytest.raises(ValueError, match="sizes"):
        Detection().stack_samples([[one, none], [one]])


def _saved(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_the_ledger_keeps_any_number_of_boxes_through_a_weights_only_checkpoint():
    ledger = LabelLedger(6, task=Detection(image_size=(32, 32)), num_classes=3)
    sized = {"boxes": [[0, 0, 4, 4]], "labels": [1], "image_size": (16, 20)}
    ledger.label([4, 0, 2], labels=[TWO, EMPTY, sized])
    ledger.acquire([5], labels=[{"boxes": [[3, 3, 5, 5]] * 3, "labels": [1, 2, 1]}])
    state = _saved(ledger.state_dict())
    assert state["annotation_values"].isnan().all()
    restored = LabelLedger(6, task="detection", num_classes=3)
    restored.load_state_dict(state)
    assert sorted(restored.annotations) == [0, 2, 4, 5]
    for index, label in ledger.annotations.items():
        assert sorted(restored.annotations[index]) == sorted(label)
        for field, value in label.items():
            assert torch.equal(restored.annotations[index][field], value)
    assert restored.annotations[0]["boxes"].shape == (0, 4)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: [s.pop("annotation_fields"), s.pop("annotation_field_rows")], "finite numbers, or NaN for a struct"),
        (lambda s: s.pop("annotation_fields"), "dicts of the same fields"),
        (lambda s: s["annotation_field_rows"].pop("boxes"), "dicts of the same fields"),
        (lambda s: s["annotation_field_rows"].update(boxes=torch.tensor([1, 1, 1])), "2 row counts"),
        (lambda s: s["annotation_fields"].update(boxes=torch.zeros(5, 4)), "hold 3 rows"),
        (lambda s: s["annotation_fields"]["boxes"].fill_(float("nan")), "valid for the task.*finite"),
        (lambda s: s["annotation_fields"]["labels"].fill_(7), r"valid for the task.*classes in \[1, 3\)"),
    ],
)
def test_a_bad_saved_box_state_is_refused_and_nothing_changes(change, match):
    ledger = LabelLedger(4, task="detection", num_classes=3)
    ledger.label([1, 2], labels=[TWO, {"boxes": [[0, 0, 1, 1]], "labels": [1]}])
    state = _saved(ledger.state_dict())
    change(state)
    target = LabelLedger(4, task="detection", num_classes=3)
    target.label([3], labels=[EMPTY])
    before = _saved(target.state_dict())
    with pytest.raises(ValueError, match=match):
        target.load_state_dict(state)
    after = target.state_dict()
    assert all(torch.equal(after[key], before[key]) for key in ("acquired_at", "annotation_indices"))
    assert torch.equal(after["annotation_fields"]["boxes"], before["annotation_fields"]["boxes"])


def test_number_labels_are_refused_by_the_detection_task_and_boxes_by_classification():
    with pytest.raises(TypeError, match="one dict per image"):
        LabelLedger(3, task="detection").label([0], labels=[1])
    with pytest.raises(TypeError, match="numbers"):
        LabelLedger(3, task="classification").label([0], labels=[TWO])


def test_training_batches_carry_torchvisions_targets():
    data = Squares(12)
    dm = ActiveDataModule(data, task="detection", num_classes=3, seed=0, batch_size=4, collate_fn=detection_collate)
    dm.label([0, 1, 2, 3], labels=[EMPTY, TWO, EMPTY, EMPTY])
    dm.setup("fit")
    seen = {}
    for images, targets in dm.train_dataloader():
        assert images.shape[1:] == (3, 32, 32)
        assert isinstance(targets, list)
        assert all(sorted(target) == ["boxes", "labels"] for target in targets)
        seen.update({int(target["labels"].numel()): target for target in targets})
    assert seen[2]["labels"].tolist() == [2, 1]
    indices = next(iter(dm.pool_dataloader()))[1]
    assert indices.dtype == torch.int64
    assert indices.tolist() == list(range(4, 12))


def test_the_datamodule_reads_no_classes_from_a_detection_datasets_targets():
    data = Squares(5)  # its `targets` attribute holds dicts of boxes, as torchvision-style datasets have
    dm = ActiveDataModule(data, task="detection", seed=0, collate_fn=detection_collate)
    assert dm._targets is None
