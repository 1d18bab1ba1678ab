"""Label Studio rectangles: detections as pre-annotations in percent, annotations read back in pixels, the config."""

from __future__ import annotations

import json

import pytest
import torch

from lightning_bal.annotation import check_rectangle_config, read_label_studio_boxes, to_label_studio_box_tasks

NAMES = ["zero", "one", "two"]
LABEL_MAP = {name: k + 1 for k, name in enumerate(NAMES)}


def _detections(boxes, labels, scores=None):
    found = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
    }
    if scores is not None:
        found["scores"] = torch.tensor(scores)
    return found


def _accept_predictions(tasks, created="2024-01-01T10:00:00Z"):
    """What Label Studio exports when an annotator submits the pre-annotations unchanged."""
    return [
        {**task, "annotations": [{"id": n, "created_at": created, "result": task["predictions"][0]["result"]}]}
        for n, task in enumerate(tasks)
    ]


def test_percent_coordinates_and_sizes_in_the_tasks():
    tasks = to_label_studio_box_tasks(
        ["a.png"], 3, [(200, 50)], data_prefix="/data/", scores=[0.25],
        predictions=[_detections([[20, 5, 70, 45]], [3], [0.5])], label_names=NAMES,
    )  # fmt: skip
    assert tasks[0]["data"] == {"image": "/data/a.png", "lbal_id": "a.png", "lbal_step": 3, "lbal_score": 0.25}
    prediction = tasks[0]["predictions"][0]
    assert prediction["score"] == 0.5
    region = prediction["result"][0]
    assert region["type"] == "rectanglelabels"
    assert (region["from_name"], region["to_name"]) == ("label", "image")
    assert (region["original_width"], region["original_height"], region["score"]) == (200, 50, 0.5)
    assert region["value"] == {"x": 10.0, "y": 10.0, "width": 25.0, "height": 80.0, "rotation": 0,
                               "rectanglelabels": ["two"]}  # fmt: skip


@pytest.mark.parametrize("sizes", [[(96, 96), (96, 96), (96, 96)], [(640, 480), (33, 17), (1000, 7)]])
def test_boxes_round_trip_through_label_studio(sizes):
    found = [
        _detections([[0, 0, 10.5, 3], [4.25, 1, sizes[0][0], sizes[0][1]]], [1, 3], [0.9, 0.4]),
        _detections([], []),
        _detections([[1, 2, 3, 4]], [2]),
    ]
    tasks = to_label_studio_box_tasks(["a", "b", "c"], 1, sizes, predictions=found, label_names=NAMES)
    assert "score" not in tasks[1]["predictions"][0]  # no box, no mean score
    export = json.loads(json.dumps(_accept_predictions(tasks)))  # as written to and read from a file
    boxes = read_label_studio_boxes(export, LABEL_MAP, from_name="label")
    assert boxes.ids == ["a", "b", "c"]
    assert boxes.steps == {1}
    assert boxes.unanswered == []
    for drawn, expected in zip(boxes.labels, found, strict=True):
        torch.testing.assert_close(drawn["boxes"], expected["boxes"], atol=1e-4, rtol=0)
        assert torch.equal(drawn["labels"], expected["labels"])


def test_an_export_file_reads_like_its_tasks(tmp_path):
    tasks = _accept_predictions(
        to_label_studio_box_tasks(
            ["a"], 1, [(10, 10)], predictions=[_detections([[1, 1, 5, 5]], [1])], label_names=NAMES
        )
    )
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    from_file, from_tasks = read_label_studio_boxes(path, LABEL_MAP), read_label_studio_boxes(tasks, LABEL_MAP)
    assert torch.equal(from_file.labels[0]["boxes"], from_tasks.labels[0]["boxes"])
    assert from_file.times == ["2024-01-01T10:00:00Z"]


def _task(item, *annotations):
    return {"data": {"image": item, "lbal_id": item, "lbal_step": 2}, "annotations": list(annotations)}


def _annotation(number, created, *regions, cancelled=False, who=None):
    return {"id": number, "created_at": created, "was_cancelled": cancelled, "completed_by": who,
            "result": list(regions)}  # fmt: skip


def _rect(x, y, w, h, name="one", width=100, height=100, from_name="label"):
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [name]}
    return {"type": "rectanglelabels", "from_name": from_name, "original_width": width, "original_height": height,
            "value": value}  # fmt: skip


def test_pending_cancelled_other_controls_and_empty_answers():
    tasks = [
        _task("none"),
        _task("cancelled", _annotation(1, "t1", _rect(1, 1, 5, 5), cancelled=True)),
        _task("empty", _annotation(2, "t1")),
        _task("other", _annotation(3, "t1", {"type": "choices", "value": {"choices": ["x"]}},
                                   _rect(0, 0, 5, 5, from_name="b"))),
        _task("kept", _annotation(4, "t1", _rect(10, 20, 30, 40, "two", 50, 200), who={"email": "ann@x"})),
    ]  # fmt: skip
    boxes = read_label_studio_boxes(tasks, LABEL_MAP, from_name="label")
    assert boxes.unanswered == ["none", "cancelled"]
    assert boxes.ids == ["empty", "other", "kept"]
    assert [len(label["labels"]) for label in boxes.labels] == [0, 0, 1]
    assert boxes.labels[2]["boxes"].tolist() == [[5.0, 40.0, 20.0, 120.0]]
    assert boxes.labels[2]["labels"].tolist() == [3]
    assert boxes.authors == [None, None, "ann@x"]
    # Without `from_name`, every rectangle control is read.
    assert len(read_label_studio_boxes(tasks, LABEL_MAP).labels[1]["labels"]) == 1


def test_a_rectangle_on_the_border_by_a_rounding_error_is_clipped():
    boxes = read_label_studio_boxes([_task("a", _annotation(1, "t", _rect(0, 0, 100.0000001, 100)))], LABEL_MAP)
    assert boxes.labels[0]["boxes"].tolist() == [[0.0, 0.0, 100.0, 100.0]]


@pytest.mark.parametrize(
    ("policy", "ids", "disagreements"),
    [("first", ["same", "differ"], ["differ"]), ("skip", ["same"], ["differ"])],
)
def test_several_annotations_of_one_image(policy, ids, disagreements):
    tasks = [
        _task("same", _annotation(1, "t2", _rect(1, 1, 5, 5)), _annotation(2, "t1", _rect(1, 1, 5, 5))),
        _task("differ", _annotation(3, "t2", _rect(1, 1, 5, 5)), _annotation(4, "t1", _rect(2, 1, 5, 5))),
    ]
    boxes = read_label_studio_boxes(tasks, LABEL_MAP, on_disagreement=policy)
    assert boxes.ids == ids
    assert boxes.disagreements == disagreements
    if policy == "first":  # the earliest annotation wins
        assert boxes.labels[1]["boxes"][0, 0].item() == 2.0
    with pytest.raises(ValueError, match="annotations of task 'differ' to draw the same boxes"):
        read_label_studio_boxes(tasks, LABEL_MAP, on_disagreement="error")


CONFIG = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
    '<Label value="zero"/><Label value="one"/><Label value="two"/></RectangleLabels></View>'
)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (CONFIG, None),
        (
            CONFIG.replace("RectangleLabels", "Choices").replace("Label ", "Choice "),
            r"<Choices name=\"label\"> is not a box",
        ),
        (CONFIG.replace('toName="image"', 'toName="photo"'), r"toName=\"image\", but it labels 'photo'"),
        (CONFIG.replace('<Label value="two"/>', ""), r"classes \['zero', 'one', 'two'\] .* offers \['zero', 'one'\]"),
        ("<View>", "to be XML"),
    ],
)
def test_check_rectangle_config(config, match):
    if match is None:
        check_rectangle_config(config, NAMES, "image")
        return
    with pytest.raises(ValueError, match=match):
        check_rectangle_config(config, NAMES, "image")


def test_annotations_made_at_once_are_ordered_by_their_numeric_id():
    tasks = [_task("a", _annotation(10, "t", _rect(2, 1, 5, 5)), _annotation(9, "t", _rect(1, 1, 5, 5)))]
    boxes = read_label_studio_boxes(tasks, LABEL_MAP)
    assert boxes.labels[0]["boxes"][0, 0].item() == 1.0
    assert boxes.disagreements == ["a"]
