"""Object detection's files and data: box files (JSON, CSV), Label Studio rectangles, the digit canvases and detector.

Every bad case is refused with the file, row, image or argument named and nothing changed (no file written, no model
trained); each group has valid neighbours that are accepted.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lightning_bal.annotation import check_rectangle_config, read_label_studio_boxes, to_label_studio_box_tasks
from lightning_bal.data import check_boxes, read_boxes, write_boxes
from lightning_bal.experiments import DigitCanvases, DigitDetector, detection_collate, train_detector
from tests.bad_inputs.files import Folder
from tests.bad_inputs.harness import accepts, refuses

HEADER = "id,x1,y1,x2,y2,label\n"
GOOD = {"id": "a.png", "boxes": [[1, 2, 30, 40]], "labels": [3]}

JSON_CASES = [
    ([{**GOOD, "boxes": [[1, 2, math.nan, 40]]}], r"finite box coordinates for image 'a.png'.*nan"),
    ([{**GOOD, "boxes": [[1, 2, math.inf, 40]]}], r"finite box coordinates for image 'a.png'"),
    ([{**GOOD, "boxes": [[30, 2, 1, 40]]}], r"image 'a.png' .* x1 < x2 and y1 < y2, but got box 0 \[30.0, 2.0, 1.0"),
    ([{**GOOD, "boxes": [[1, 2, 1, 40]]}], r"x1 < x2 .* inverted or empty"),
    ([{**GOOD, "boxes": [[1, 40, 30, 2]]}], r"x1 < x2 and y1 < y2, but got box 0"),
    ([{**GOOD, "boxes": [[1, 2, 97, 40]]}], r"image 'a.png' .* inside the image \(0 <= x <= 96, 0 <= y <= 96\)"),
    ([{**GOOD, "boxes": [[-1, 2, 30, 40]]}], r"inside the image .* box 0 \[-1.0"),
    ([{**GOOD, "labels": [0]}], r"label of image 'a.png' .* in 1..10 \(0 is the background\), but got \[0\]"),
    ([{**GOOD, "labels": [11]}], r"label of image 'a.png' .* in 1..10 .* got \[11\]"),
    ([{**GOOD, "labels": [3.0]}], r"labels of image 'a.png' .* list of integers"),
    ([{**GOOD, "labels": [True]}], r"labels of image 'a.png' .* list of integers"),
    ([{**GOOD, "labels": [3, 4]}], r"one label per box for image 'a.png' .*, but got 1 boxes and 2 labels"),
    ([{**GOOD, "boxes": [[1, 2, 30]]}], r"boxes of image 'a.png' .* list of \[x1, y1, x2, y2\] numbers"),
    ([{**GOOD, "boxes": [1, 2, 30, 40]}], r"boxes of image 'a.png' .* list of \[x1, y1, x2, y2\]"),
    ([{**GOOD, "boxes": {"x1": 1}}], r"boxes of image 'a.png' .* list of \[x1, y1, x2, y2\]"),
    ([{**GOOD, "boxes": [["1", 2, 30, 40]]}], r"boxes of image 'a.png' .* numbers"),
    ([{"id": "a.png", "boxes": []}], r"object 0 of .* fields `id`, `boxes` and `labels`"),
    ([GOOD, GOOD], r"each image once .* 'a.png' appears twice"),
    ([{**GOOD, "id": ""}], r"`id` of object 0 .* non-empty string"),
    ([{**GOOD, "id": True}], r"`id` of object 0 .* integer or a non-empty string, but got True"),
    ({"a.png": GOOD}, r"JSON list of images, but got dict"),
    ([[1, 2, 30, 40]], r"object 0 of .* fields `id`"),
]


@pytest.mark.parametrize(("rows", "match"), JSON_CASES)
def test_json_box_files_refused(tmp_path, rows, match):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(rows))
    call = lambda: read_boxes(path, num_classes=11, image_sizes=(96, 96))  # noqa: E731
    refuses("data.read_boxes (JSON)", call, (ValueError, TypeError), match, Folder(tmp_path))


CSV_CASES = [
    (HEADER + "a,1,2,nan,40,3\n", r"`x2` of line 2 .* plain decimal number, but got 'nan'"),
    (HEADER + "a,1,2,1_0,40,3\n", r"`x2` of line 2 .* plain decimal number, but got '1_0'"),
    (HEADER + "a,30,2,1,40,3\n", r"image 'a' .* x1 < x2 and y1 < y2"),
    (HEADER + "a,1,2,30,99,3\n", r"image 'a' .* inside the image"),
    (HEADER + "a,1,2,30,40,0\n", r"label of image 'a' .* 1..10 \(0 is the background\), but got \[0\]"),
    (HEADER + "a,1,2,30,40,1.5\n", r"`label` of line 2 .* integer, but got '1.5'"),
    (HEADER + "a,1,2,30,40\n", r"every row .* 6 columns, but line 2 does not"),
    (HEADER + "a,1,2,30,40,3,9\n", r"every row .* 6 columns, but line 2 does not"),
    (HEADER + "a,1,2,,40,3\n", r"x1,y1,x2,y2,label of line 2 .* all filled .* or all empty"),
    (HEADER + "a,,,,,3\n", r"x1,y1,x2,y2,label of line 2 .* all filled"),
    (HEADER + "a,,,,,\na,1,2,30,40,3\n", r"image 'a' to have boxes or one empty row, not both \(line 3"),
    (HEADER + "a,1,2,30,40,3\na,,,,,\n", r"image 'a' to have boxes or one empty row, not both \(line 3"),
    (HEADER + "a,,,,,\na,,,,,\n", r"image 'a' to have boxes or one empty row"),
    (HEADER + ",1,2,30,40,3\n", r"`id` of line 2 .* non-empty string"),
    ("a,1,2,30,40,3\n", r"start with the header `id,x1,y1,x2,y2,label`, but got \['a'"),
    ("id,x,y,w,h,label\na,1,2,30,40,3\n", r"header `id,x1,y1,x2,y2,label`"),
    (HEADER.encode("utf-16"), r"to be UTF-8 text"),
]


@pytest.mark.parametrize(("content", "match"), CSV_CASES)
def test_csv_box_files_refused(tmp_path, content, match):
    path = tmp_path / "boxes.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    call = lambda: read_boxes(path, num_classes=11, image_sizes=(96, 96))  # noqa: E731
    refuses("data.read_boxes (CSV)", call, (ValueError, TypeError), match, Folder(tmp_path))


@pytest.mark.parametrize(
    ("name", "kwargs", "error", "match"),
    [
        ("boxes.txt", {}, ValueError, r"`path` to end in `.json` or `.csv`"),
        ("boxes.csv", {"format": "xml"}, ValueError, r"`format` to be 'csv' or 'json', but got 'xml'"),
        ("boxes.csv", {"num_classes": 1}, ValueError, r"`num_classes` .* integer >= 2 \(C \+ 1\), but got 1"),
        ("boxes.csv", {"num_classes": 5.0}, ValueError, r"`num_classes` .* but got 5.0"),
        ("boxes.csv", {"image_sizes": (96,)}, TypeError, r"`image_sizes` .* \(width, height\) tuple"),
        ("boxes.csv", {"image_sizes": {"a": (0, 5)}}, TypeError, r"`image_sizes` .* positive integers"),
        ("missing.csv", {}, FileNotFoundError, r"missing.csv"),
    ],
)
def test_read_boxes_arguments_refused(tmp_path, name, kwargs, error, match):
    (tmp_path / "boxes.csv").write_text(HEADER + "a,1,2,30,40,3\n")
    (tmp_path / "boxes.txt").write_text(HEADER + "a,1,2,30,40,3\n")
    refuses(
        "data.read_boxes (arguments)", lambda: read_boxes(tmp_path / name, **kwargs), error, match, Folder(tmp_path)
    )


@pytest.mark.parametrize(
    ("name", "content", "kwargs", "count"),
    [
        ("b.csv", HEADER + "a,1,2,30,40,3\na, 5 ,6,7.5,8,10\nb,,,,,\n", {"num_classes": 11}, [2, 0]),
        ("b.json", json.dumps([{**GOOD, "boxes": [[0, 0, 96, 96]]}]), {"image_sizes": (96, 96)}, [1]),
        ("b.json", json.dumps([GOOD]), {"image_sizes": {"other.png": (5, 5)}}, [1]),  # no size for a.png: unchecked
        ("b.txt", json.dumps([{"id": 3, "boxes": [], "labels": []}]), {"format": "json"}, [0]),
    ],
)
def test_valid_box_files_are_read(tmp_path, name, content, kwargs, count):
    (tmp_path / name).write_text(content)
    answers = accepts(lambda: read_boxes(tmp_path / name, **kwargs))
    assert [len(label["labels"]) for label in answers.labels] == count


EMPTY = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}


@pytest.mark.parametrize(
    ("ids", "labels", "error", "match"),
    [
        (["a"], [{"boxes": [[5, 0, 1, 1]], "labels": [1]}], ValueError, r"image 'a' .* x1 < x2"),
        (["a"], [{"boxes": torch.tensor([[0.0, 0, math.nan, 1]]), "labels": torch.tensor([1])}], ValueError, "finite"),
        (["a"], [{"boxes": [[0, 0, 1, 1]], "labels": [0]}], ValueError, r"image 'a' 1 or more \(0 is the background"),
        (["a"], [{"boxes": [[0, 0, 1, 1]]}], TypeError, r"label of image 'a' .* dict with `boxes` and `labels`"),
        (["a"], [[[0, 0, 1, 1]]], TypeError, r"label of image 'a' .* dict"),
        (["a", "b"], [EMPTY], ValueError, r"`labels` .* one label per id \(2\), but got 1"),
        (["a", "a"], [EMPTY, EMPTY], ValueError, r"`ids` .* each image once, but got \['a'\]"),
        ([""], [EMPTY], ValueError, r"`id` of argument `ids` \(position 0\) .* non-empty string"),
        ("ab", [EMPTY, EMPTY], TypeError, r"`ids` .* sequence of ids, but got 'ab'"),
    ],
)
def test_write_boxes_refuses_and_leaves_the_file(tmp_path, ids, labels, error, match):
    path = write_boxes(tmp_path / "boxes.json", ["old"], [EMPTY])
    refuses("data.write_boxes", lambda: write_boxes(path, ids, labels), error, match, Folder(tmp_path))
    refuses("data.write_boxes", lambda: write_boxes(tmp_path / "b.tsv", ["a"], [EMPTY]), ValueError, r"`path` to end")


@pytest.mark.parametrize(
    ("boxes", "labels", "error", "match"),
    [
        (torch.tensor([[0.0, 0.0, math.nan, 1.0]]), torch.tensor([1]), ValueError, r"finite box coordinates for x"),
        (torch.ones(1, 4, dtype=torch.bool), torch.tensor([1]), TypeError, r"boxes of x .* real numbers"),
        (torch.ones(1, 5), torch.tensor([1]), ValueError, r"boxes of x to have shape \[n, 4\], but got \[1, 5\]"),
        (torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([1.0]), TypeError, r"labels of x to be integers"),
        (torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[1]]), ValueError, r"labels of x to have shape \[n\]"),
        (torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([5]), ValueError, r"label of x in 1..4"),
        (
            torch.tensor([[0.0, 0, 1, 3]]),
            torch.tensor([1]),
            ValueError,
            r"x inside the image \(0 <= x <= 2, 0 <= y <= 2",
        ),
        ("boxes", torch.tensor([1]), TypeError, r"boxes of x .* list of \[x1, y1, x2, y2\]"),
    ],
)
def test_check_boxes_refuses(boxes, labels, error, match):
    call = lambda: check_boxes("x", boxes, labels, num_classes=5, image_size=(2, 2))  # noqa: E731
    refuses("data.check_boxes", call, error, match, boxes, labels)


def test_check_boxes_accepts_the_border_and_empty_labels():
    accepts(lambda: check_boxes("x", torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([4]), 5, (2, 2)))
    assert accepts(lambda: check_boxes("x", torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)))["boxes"].shape == (
        0,
        4,
    )


# Label Studio rectangles.
LABEL_MAP = {"cat": 1, "dog": 2}


def _rect(**value):
    region = {"type": "rectanglelabels", "from_name": "label", "original_width": 200, "original_height": 100}
    region["value"] = {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["dog"], **value}
    return region


def _tasks(*regions, step=1, **region_fields):
    regions = [{**region, **region_fields} for region in regions]
    return [{"data": {"lbal_id": "a.png", "lbal_step": step}, "annotations": [{"id": 1, "result": regions}]}]


STUDIO_CASES = [
    (_tasks(_rect(rotation=30)), r"unrotated \(`value.rotation` 0\), but got a rotation of 30 degrees"),
    (_tasks(_rect(rotation=-90.5)), r"rotation of -90.5 degrees"),
    (_tasks(_rect(rectanglelabels=["bird"])), r"label map \['cat', 'dog'\], but region 0 of task 'a.png' .* 'bird'"),
    (_tasks(_rect(rectanglelabels=["cat", "dog"])), r"`value.rectanglelabels` of region 0 .* one label"),
    (_tasks(_rect(rectanglelabels="dog")), r"`value.rectanglelabels` of region 0 .* one label, but got 'dog'"),
    (_tasks(_rect(x=math.nan)), r"`value.x` of region 0 of task 'a.png' .* finite number, but got nan"),
    (_tasks(_rect(width="30")), r"`value.width` of region 0 .* finite number, but got '30'"),
    (_tasks(_rect(height=None)), r"`value.height` of region 0 .* finite number, but got None"),
    (_tasks(_rect(width=-5)), r"task 'a.png' .* x1 < x2 and y1 < y2"),
    (_tasks(_rect(width=0)), r"x1 < x2 .* inverted or empty"),
    (_tasks(_rect(x=90, width=20)), r"task 'a.png' .* inside the image \(0 <= x <= 200"),
    (_tasks(_rect(y=-1)), r"inside the image"),
    (_tasks(_rect(), original_width=None), r"`original_width` and `original_height` of region 0 .* None"),
    (_tasks(_rect(), original_height=0), r"`original_width` and `original_height` .* positive integers"),
    (_tasks(_rect(), _rect(), original_width=300) + _tasks(_rect()), None),
    (_tasks(_rect(), {**_rect(), "original_width": 300}), r"one image size per annotation of task 'a.png'"),
    (_tasks({**_rect(), "value": "dog"}), r"`value` of region 0 of task 'a.png' .* object, but got 'dog'"),
    (_tasks(_rect(), step=1.5), r"`data.lbal_step` of task 'a.png' .* integer step, but got 1.5"),
    ([{"data": {"lbal_id": "a", "lbal_step": 1}, "annotations": [{"result": "dog"}]}], r"`result` .* list of objects"),
    ([{"data": {"lbal_id": "a"}, "annotations": "x"}], r"`annotations` of task 'a' .* list of objects"),
    ([{"data": {"image": "a"}}], r"carry `data.lbal_id` .* task 0 has none"),
    ([{"data": {"lbal_id": "a"}, "annotations": [{"id": 1, "result": [_rect(x=1)]}, {"id": 2, "result": []}]}], None),
]


@pytest.mark.parametrize(("tasks", "match"), STUDIO_CASES)
def test_label_studio_rectangles_refused(tasks, match):
    if match is None:  # valid neighbours: one size per annotation, and a disagreement read with "first"
        accepts(lambda: read_label_studio_boxes(tasks, LABEL_MAP))
        return
    refuses(
        "annotation.read_label_studio_boxes",
        lambda: read_label_studio_boxes(tasks, LABEL_MAP),
        ValueError,
        match,
        tasks,
    )


@pytest.mark.parametrize(
    ("export", "kwargs", "error", "match"),
    [
        (
            _tasks(_rect()),
            {"label_map": {"cat": 0, "dog": 2}},
            ValueError,
            r"`label_map` .* class in 1..C \(0 is the background\)",
        ),
        (_tasks(_rect()), {"label_map": {}}, ValueError, r"`label_map` to map each rectangle label"),
        (_tasks(_rect()), {"label_map": {"dog": True}}, ValueError, r"`label_map`"),
        (
            _tasks(_rect()),
            {"on_disagreement": "vote"},
            ValueError,
            r"`on_disagreement` to be 'first', 'skip' or 'error'",
        ),
        (_tasks(_rect()), {"from_name": ""}, TypeError, r"`from_name` to be a non-empty string"),
        (b"[]", {}, TypeError, r"`export` to be the path of a Label Studio export or its list of tasks, but got bytes"),
        ({"tasks": []}, {}, TypeError, r"`export` .* but got dict"),
    ],
)
def test_read_label_studio_boxes_arguments_refused(export, kwargs, error, match):
    call = lambda: read_label_studio_boxes(export, **{"label_map": LABEL_MAP, **kwargs})  # noqa: E731
    refuses("annotation.read_label_studio_boxes (arguments)", call, error, match, export)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("[{", r"'.*export.json' to hold JSON, but it does not parse"),
        ('{"a": 1}', r"JSON list of Label Studio tasks, but got dict"),
    ],
)
def test_label_studio_export_files_refused(tmp_path, content, match):
    path = tmp_path / "export.json"
    path.write_text(content)
    call = lambda: read_label_studio_boxes(path, LABEL_MAP)  # noqa: E731
    refuses("annotation.read_label_studio_boxes (file)", call, ValueError, match, Folder(tmp_path))


def _found(boxes=((10.0, 10.0, 50.0, 50.0),), labels=(2,), **extra):
    return {"boxes": torch.tensor(boxes).reshape(-1, 4), "labels": torch.tensor(labels, dtype=torch.long), **extra}


TASK_CASES = [
    ({"predictions": [_found()], "label_names": None}, ValueError, r"`label_names` with `predictions`"),
    ({"label_names": ["cat", "cat"]}, ValueError, r"`label_names` to be distinct non-empty names"),
    (
        {"predictions": [_found(boxes=((10.0, 10.0, 250.0, 50.0),))]},
        ValueError,
        r"prediction of image 'a.png' inside the image \(0 <= x <= 200",
    ),
    ({"predictions": [_found(labels=(3,))]}, ValueError, r"prediction of image 'a.png' in 1..2 .* got \[3\]"),
    ({"predictions": [_found(labels=(0,))]}, ValueError, r"in 1..2 \(0 is the background\), but got \[0\]"),
    ({"predictions": [_found(boxes=((math.nan, 10.0, 50.0, 50.0),))]}, ValueError, r"finite box coordinates"),
    (
        {"predictions": [_found(scores=torch.tensor([0.5, 0.2]))]},
        ValueError,
        r"scores of the prediction of image 'a.png' .* one finite number per box \(1\)",
    ),
    ({"predictions": [_found(scores=torch.tensor([math.nan]))]}, ValueError, r"one finite number per box"),
    (
        {"predictions": [[(10, 10, 50, 50)]]},
        TypeError,
        r"prediction of image 'a.png' to be a dict with `boxes` and `labels`",
    ),
    ({"predictions": []}, ValueError, r"`predictions` to hold one detection dict per id \(1\), but got 0"),
    ({"image_sizes": []}, ValueError, r"`image_sizes` to hold one size per id \(1\), but got 0"),
    (
        {"image_sizes": [(0, 100)]},
        ValueError,
        r"argument `image_sizes` \(position 0\) .* positive integers, but got \(0, 100\)",
    ),
    ({"image_sizes": [(200.0, 100)]}, ValueError, r"argument `image_sizes` \(position 0\)"),
    ({"scores": [0.1, 0.2]}, ValueError, r"`scores` to hold one score per id \(1\), but got 2"),
    ({"data_key": "lbal_id"}, ValueError, r"`data_key` .* other than lightning_bal's own"),
    ({"from_name": ""}, TypeError, r"`from_name` to be a non-empty string"),
    ({"step": -1}, ValueError, r"`step` to be a non-negative integer, but got -1"),
    ({"step": 1.0}, ValueError, r"`step` to be a non-negative integer, but got 1.0"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), TASK_CASES)
def test_label_studio_box_tasks_refused(kwargs, error, match):
    settings = {
        "ids": ["a.png"],
        "step": 1,
        "image_sizes": [(200, 100)],
        "predictions": None,
        "label_names": ["cat", "dog"],
    }
    settings.update(kwargs)
    if "predictions" not in kwargs and "label_names" in kwargs:
        settings["predictions"] = [_found()]
    refuses(
        "annotation.to_label_studio_box_tasks", lambda: to_label_studio_box_tasks(**settings), error, match, settings
    )


def test_label_studio_box_tasks_accept_valid_neighbours():
    common = {"ids": ["a.png"], "step": 0, "image_sizes": [(200, 100)], "label_names": ["cat", "dog"]}
    border = _found(boxes=((0.0, 0.0, 200.0, 100.0),), scores=[0.5])
    assert (
        accepts(lambda: to_label_studio_box_tasks(**common, predictions=[border]))[0]["predictions"][0]["score"] == 0.5
    )
    assert accepts(lambda: to_label_studio_box_tasks(**common, predictions=[_found(boxes=(), labels=())]))


CONFIG = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
    '<Label value="cat"/><Label value="dog"/></RectangleLabels></View>'
)


@pytest.mark.parametrize(
    ("config", "kwargs", "error", "match"),
    [
        (
            '<View><Choices name="label" toName="image"/></View>',
            {},
            ValueError,
            r"one <RectangleLabels name=\"label\"> .* holds 0: <Choices name=\"label\"> is not a box control",
        ),
        ("<View/>", {}, ValueError, r"holds 0: a project for another task"),
        (CONFIG.replace("</View>", CONFIG[6:]), {}, ValueError, r"holds 2"),
        (CONFIG, {"from_name": "box"}, ValueError, r"<RectangleLabels name=\"box\"> control, but it holds 0"),
        (CONFIG, {"data_key": "photo"}, ValueError, r"toName=\"photo\", but it labels 'image'"),
        (
            CONFIG,
            {"label_names": ["dog", "cat"]},
            ValueError,
            r"classes \['dog', 'cat'\] \(in class order\), but it offers \['cat', 'dog'\]",
        ),
        ("<View", {}, ValueError, r"`label_config` to be XML, but it does not parse"),
        (None, {}, ValueError, r"`label_config` to be XML text, but got NoneType"),
        (CONFIG, {"data_key": ""}, TypeError, r"`data_key` to be a non-empty string"),
    ],
)
def test_check_rectangle_config_refuses(config, kwargs, error, match):
    settings = {"label_names": ["cat", "dog"], "data_key": "image", **kwargs}
    refuses("annotation.check_rectangle_config", lambda: check_rectangle_config(config, **settings), error, match)


def test_check_rectangle_config_accepts_its_control_among_others():
    other = CONFIG.replace("</View>", '<Choices name="quality" toName="image"><Choice value="ok"/></Choices></View>')
    accepts(lambda: check_rectangle_config(other, ["cat", "dog"], "image"))


# The digit canvases and the detector.
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"size": -1}, ValueError, r"`size` to be a non-negative integer, but got -1"),
        ({"canvas": 4}, ValueError, r"`canvas` to be an integer >= 8, but got 4"),
        ({"max_digits": 1.5}, ValueError, r"`max_digits` to be a non-negative integer"),
        ({"min_size": 2}, ValueError, r"`min_size` to be an integer in \[4, 96\], but got 2"),
        ({"min_size": 20, "max_size": 10}, ValueError, r"`max_size` to be an integer in \[20, 96\], but got 10"),
        ({"max_size": 97}, ValueError, r"`max_size` to be an integer in \[14, 96\]"),
        ({"max_overlap": 1.5}, ValueError, r"`max_overlap` to be a number in \[0, 1\], but got 1.5"),
        ({"max_overlap": True}, ValueError, r"`max_overlap` to be a number in \[0, 1\], but got True"),
        ({"seed": -1}, ValueError, r"`seed` to be a non-negative integer"),
        ({"split": "val"}, ValueError, r"`split` to be 'train' or 'test', but got 'val'"),
        ({"root": "/nonexistent/mnist"}, FileNotFoundError, r"MNIST files .* in /nonexistent/mnist"),
    ],
)
def test_digit_canvases_refuse(kwargs, error, match):
    refuses("experiments.DigitCanvases()", lambda: DigitCanvases(**kwargs), error, match, kwargs)


def test_digit_canvases_refuse_an_index_out_of_range():
    data = DigitCanvases(size=3)
    refuses("experiments.DigitCanvases (index)", lambda: data[3], IndexError, r"index in \[0, 3\), but got 3", data)
    refuses("experiments.DigitCanvases (index)", lambda: data[1.0], IndexError, r"but got 1.0", data)
    assert torch.equal(accepts(lambda: data[-3])[0], accepts(lambda: data[np.int64(0)])[0])
    accepts(lambda: DigitCanvases(size=0, max_digits=0, min_size=96, max_size=96, max_overlap=0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 1}, r"`num_classes` to be an integer >= 2, but got 1"),
        ({"in_channels": 0}, r"`in_channels` to be a positive integer"),
        ({"width": 2.0}, r"`width` to be a positive integer, but got 2.0"),
        ({"dropout": 1.0}, r"`dropout` to be a number in \[0, 1\), but got 1.0"),
        ({"dropout": -0.1}, r"`dropout` to be a number in \[0, 1\]"),
        ({"score_threshold": math.nan}, r"`score_threshold` to be a number in \[0, 1\], but got nan"),
        ({"nms_threshold": 1.5}, r"`nms_threshold` to be a number in \[0, 1\], but got 1.5"),
        ({"max_detections": 0}, r"`max_detections` to be a positive integer, but got 0"),
    ],
)
def test_digit_detector_refuses(kwargs, match):
    refuses("experiments.DigitDetector()", lambda: DigitDetector(**kwargs), ValueError, match, kwargs)


MODEL = DigitDetector().eval()


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.zeros(1, 96, 96), r"`images` as a \[B, 1, H, W\] tensor .* got shape \[1, 96, 96\]"),
        (torch.zeros(2, 3, 96, 96), r"got shape \[2, 3, 96, 96\]"),
        ([torch.zeros(3, 96, 96)], r"list of \[1, H, W\] tensors, but got \[\[3, 96, 96\]\]"),
        ([torch.zeros(96, 96)], r"list of \[1, H, W\] tensors, but got \[\[96, 96\]\]"),
        ([], r"`images` to hold at least one image"),
        ("image.png", r"list of \[1, H, W\] tensors, but got str"),
    ],
)
def test_digit_detector_refuses_images(images, match):
    refuses("experiments.DigitDetector.embed", lambda: MODEL.embed(images), ValueError, match, MODEL)
    refuses("experiments.DigitDetector.forward", lambda: MODEL(images), ValueError, match, MODEL)


def test_digit_detector_refuses_training_without_matching_targets():
    model = DigitDetector().train()
    images = [torch.zeros(1, 32, 32)] * 2
    target = {"boxes": torch.tensor([[1.0, 1.0, 9.0, 9.0]]), "labels": torch.tensor([1])}
    refuses(
        "experiments.DigitDetector.forward", lambda: model(images), ValueError, r"`targets` in training mode", model
    )
    refuses(
        "experiments.DigitDetector.forward",
        lambda: model(images, [target]),
        ValueError,
        r"one target per image \(2\), but got 1",
        model,
    )
    bad = {"boxes": torch.ones(4), "labels": torch.tensor([1])}
    refuses(
        "experiments.DigitDetector.forward",
        lambda: model(images, [bad, target]),
        ValueError,
        r"boxes \[n, 4\] with labels \[n\]",
        model,
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "net"}, TypeError, r"`model` to be a torch.nn.Module, but got 'net'"),
        ({"data": []}, ValueError, r"`data` to be a non-empty map-style dataset"),
        ({"steps": -1}, ValueError, r"`steps` to be a non-negative integer"),
        ({"batch_size": 0}, ValueError, r"`batch_size` to be a positive integer"),
        ({"lr": 0}, ValueError, r"`lr` to be a finite positive number, but got 0"),
        ({"lr": math.inf}, ValueError, r"`lr` to be a finite positive number"),
        ({"seed": "0"}, TypeError, r"`seed` to be an integer, but got '0'"),
    ],
)
def test_train_detector_refuses_and_trains_nothing(kwargs, error, match):
    model = DigitDetector().eval()
    settings = {"model": model, "data": DigitCanvases(size=2), "steps": 1, **kwargs}
    refuses("experiments.train_detector", lambda: train_detector(**settings), error, match, model)


@pytest.mark.parametrize(
    ("batch", "match"),
    [([torch.zeros(1, 8, 8)], r"`batch` to hold \(image, target\) pairs"), ([("a.png", {})], r"with a tensor image")],
)
def test_detection_collate_refuses(batch, match):
    refuses("experiments.detection_collate", lambda: detection_collate(batch), TypeError, match, batch)
