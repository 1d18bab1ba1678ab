"""Label Studio answers of every type with bad regions, formats, configs and labels: a clear error naming the task,
the item and the problem, and the answer, the format, the datamodule and the checkpoint's folder unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule
from lightning_bal.annotation import AnswerFormat, decode_brush_rle, encode_brush_rle, read_answer
from lightning_bal.annotation.label_studio import to_label_studio_tasks
from lightning_bal.annotation.label_studio_api import check_label_config
from lightning_bal.annotation.sync import bring_in_answers
from lightning_bal.tasks import MultiLabel, PerPosition
from tests.bad_inputs.files import Folder
from tests.bad_inputs.harness import accepts, refuses

LABELS = {"cat": 1, "dog": 2}
WHERE = "task 'b' (task 0 of 'export.json')"
EYE = torch.eye(4, dtype=torch.bool)


def brush(mask: torch.Tensor = EYE, name: str = "cat", **extra: Any) -> dict[str, Any]:
    height, width = mask.shape
    value = {"format": "rle", "rle": encode_brush_rle(mask), "brushlabels": [name]}
    return {"type": "brushlabels", "original_height": height, "original_width": width, "value": value, **extra}


def polygon(points: Any, name: str = "cat") -> dict[str, Any]:
    value = {"points": points, "polygonlabels": [name]}
    return {"type": "polygonlabels", "original_height": 4, "original_width": 4, "value": value}


def span(start: Any, end: Any, name: str = "cat") -> dict[str, Any]:
    return {"type": "labels", "value": {"start": start, "end": end, "labels": [name]}}


def number(value: Any) -> dict[str, Any]:
    return {"type": "number", "value": {"number": value}}


def rle(values: list[int]) -> dict[str, Any]:
    region = brush()
    region["value"]["rle"] = values
    return region


TEXT = {"text": "Tom met Ann"}
BRUSH = AnswerFormat("brush", LABELS)
SPANS = AnswerFormat("spans", LABELS)
# (result, format, task data, expected message): the item is 'b'.
READ_CASES: list[tuple[Any, AnswerFormat, dict[str, Any] | None, str]] = [
    ({"type": "number"}, AnswerFormat("number"), None, r"`result` of every annotation of task 'b' .* list of objects"),
    ([number(float("nan"))], AnswerFormat("number"), None, r"`value.number` of task 'b' .* finite number.*nan"),
    ([number(float("inf"))], AnswerFormat("number"), None, r"`value.number` of task 'b' .* finite number"),
    ([number(True)], AnswerFormat("number"), None, r"`value.number` of task 'b' .* finite number.*True"),
    ([number("2.5")], AnswerFormat("number"), None, r"`value.number` of task 'b' .* finite number.*'2.5'"),
    ([number(1), number(2)], AnswerFormat("number"), None, r"one number per annotation \(task 'b'.*got 2"),
    (
        [{"type": "choices", "value": {"choices": ["cat"]}}],
        AnswerFormat("number"),
        None,
        r"task 'b' .* kind 'number' \(number regions\), but it holds \['choices'\].*another label config",
    ),
    (
        [{"type": "choices", "value": {"choices": ["cat", "fish"]}}],
        AnswerFormat("multichoice", LABELS),
        None,
        r"every choice to be in the label map \['cat', 'dog'\], but task 'b' has \['fish'\]",
    ),
    (
        [{"type": "choices", "value": {"choices": "cat"}}],
        AnswerFormat("multichoice", LABELS),
        None,
        r"`value.choices` of every region of task 'b' .* list of names",
    ),
    ([brush(name="fish")], BRUSH, None, r"label map \['cat', 'dog'\], but task 'b' .* has \['fish'\]"),
    (
        [brush(torch.ones(4, 5, dtype=torch.bool))],
        AnswerFormat("brush", LABELS, sizes={"b": (4, 4)}),
        None,
        r"mask size",
    ),
    (
        [brush(), brush(torch.ones(3, 4, dtype=torch.bool))],
        BRUSH,
        None,
        r"task 'b' .* \[\(3, 4\), \(4, 4\)\].*mask size",
    ),
    ([brush()], AnswerFormat("brush", LABELS, sizes={"c": (4, 4)}), None, r"`sizes` to give the mask size of task 'b'"),
    ([brush(image_rotation=90)], BRUSH, None, r"task 'b' .* unrotated image \(`image_rotation` 0\), but got 90"),
    (
        [brush(), brush(name="dog")],
        BRUSH,
        None,
        r"regions of task 'b' .* not to overlap .* pixel \(0, 0\) has classes 1 and 2",
    ),
    (
        [rle(encode_brush_rle(torch.ones(4, 5, dtype=torch.bool)))],
        BRUSH,
        None,
        r"height \* width \* 4 = 64 .* holds 80",
    ),
    ([rle(encode_brush_rle(EYE)[:5])], BRUSH, None, r"`value.rle` of task 'b' .* every value it announces.*ends early"),
    ([rle([0, 256])], BRUSH, None, r"`value.rle` of task 'b' .* to be a non-empty list of bytes"),
    ([rle([])], BRUSH, None, r"`value.rle` of task 'b' .* to be a non-empty list of bytes"),
    (
        [{**brush(), "value": {**brush()["value"], "format": "png"}}],
        BRUSH,
        None,
        r"brush regions of task 'b' .* in format 'rle', but got 'png'",
    ),
    (
        [{**brush(), "value": {**brush()["value"], "brushlabels": ["cat", "dog"]}}],
        BRUSH,
        None,
        r"each region of task 'b' .* to carry one label, but one carries \['cat', 'dog'\]",
    ),
    ([{**brush(), "original_width": 0}], BRUSH, None, r"`original_height, original_width` .* task 'b' .* \(4, 0\)"),
    ([polygon([[0, 0], [50, 50]])], AnswerFormat("polygon", LABELS), None, r"polygon of task 'b' .* 3 points.* has 2"),
    ([polygon([[0, 0], [50, "x"], [0, 50]])], AnswerFormat("polygon", LABELS), None, r"\[x, y\] pairs"),
    ([polygon([[0, 0], [50, float("nan")], [0, 50]])], AnswerFormat("polygon", LABELS), None, r"finite numbers"),
    ([polygon(None)], AnswerFormat("polygon", LABELS), None, r"`value.points` of task 'b' .* \[x, y\] pairs"),
    (
        [span(0, 5), span(2, 7, "dog")],
        SPANS,
        TEXT,
        r"spans of task 'b' .* not to overlap .* token 2 .* classes 1 and 2",
    ),
    ([span(3, 3)], SPANS, TEXT, r"each span of task 'b' .* 0 <= start < end"),
    ([span(-1, 3)], SPANS, TEXT, r"each span of task 'b' .* 0 <= start < end"),
    ([span(True, 3)], SPANS, TEXT, r"each span of task 'b' .* integer offsets"),
    ([span(0, 12)], SPANS, TEXT, r"each span of task 'b' .* to lie in its text of 11 characters"),
    ([span(0, 3)], SPANS, None, r"text of task 'b' .* in its task data \(`data.text`, or `token_offsets`\)"),
    ([span(0, 3)], AnswerFormat("spans", LABELS, token_offsets={"c": [(0, 3)]}), TEXT, r"has none for it"),
    ([span(0, 3, "fish")], SPANS, TEXT, r"label map \['cat', 'dog'\], but task 'b' .* has \['fish'\]"),
]


@pytest.mark.parametrize(("result", "fmt", "data", "match"), READ_CASES)
def test_read_answer_refuses(result, fmt, data, match):
    refuses(
        "read_answer",
        lambda: read_answer(result, fmt, WHERE, "b", data),
        ValueError,
        match,
        result,
        fmt,
    )


def test_read_answer_accepts_the_valid_neighbours():
    assert accepts(lambda: read_answer([number(-0.0)], AnswerFormat("number"), WHERE)) == 0.0
    mask = accepts(lambda: read_answer([brush(), brush(name="cat")], BRUSH, WHERE, "b"))
    assert torch.equal(mask, EYE.long())  # overlapping regions of one class
    assert accepts(lambda: read_answer([span(0, 5), span(2, 7)], SPANS, WHERE, "b", TEXT)).tolist()[:8] == [1] * 7 + [0]
    assert accepts(
        lambda: read_answer([polygon([[0, 0], [50, 0], [0, 50]])], AnswerFormat("polygon", LABELS), WHERE)
    ).any()


FORMAT_CASES: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (
        lambda: AnswerFormat("mask", LABELS),
        ValueError,
        r"argument `kind` to be 'choice', .* or 'spans', but got 'mask'",
    ),  # type: ignore[arg-type]
    (lambda: AnswerFormat("choice"), ValueError, r"argument `label_map` .* kind 'choice', but got None"),
    (lambda: AnswerFormat("brush", {}), ValueError, r"argument `label_map` .* kind 'brush', but got \{\}"),
    (lambda: AnswerFormat("brush", {"cat": -1}), ValueError, r"`label_map` to map names to non-negative .* -1"),
    (lambda: AnswerFormat("brush", {"cat": True}), ValueError, r"`label_map` to map names to non-negative .* True"),
    (lambda: AnswerFormat("brush", {"cat": 1.0}), ValueError, r"`label_map` to map names to non-negative"),  # type: ignore[dict-item]
    (lambda: AnswerFormat("multichoice", LABELS, num_classes=0), ValueError, r"`num_classes` to be a positive integer"),
    (
        lambda: AnswerFormat("multichoice", LABELS, num_classes=2),
        ValueError,
        r"`label_map` to hold classes in \[0, 2\)",
    ),
    (lambda: AnswerFormat("brush", LABELS, background="0"), TypeError, r"`background` to be an integer, but got '0'"),  # type: ignore[arg-type]
    (lambda: AnswerFormat("brush", LABELS, sizes={"b": (0, 4)}), ValueError, r"size of item 'b' in argument `sizes`"),
    (lambda: AnswerFormat("brush", LABELS, sizes={"b": (4,)}), ValueError, r"size of item 'b' in argument `sizes`"),  # type: ignore[dict-item]
    (
        lambda: AnswerFormat("spans", LABELS, token_offsets={"b": [(3, 1)]}),
        ValueError,
        r"offsets of item 'b' in argument `token_offsets` .* 0 <= start < end",
    ),
    (
        lambda: AnswerFormat("spans", LABELS, token_offsets={"b": [(0, 1.5)]}),
        ValueError,
        r"offsets of item 'b' in argument `token_offsets`",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), FORMAT_CASES)
def test_answer_format_refuses(call, error, match):
    refuses("AnswerFormat()", call, error, match)
    assert accepts(lambda: AnswerFormat("spans", LABELS, token_offsets={"b": [(0, 3)]}, background=-100)).classes == 3


def view(control: str) -> str:
    return f'<View><Image name="image" value="$image"/>{control}</View>'


CHOICES = '<Choice value="cat"/><Choice value="dog"/>'
CONFIG_CASES: list[tuple[str, str | None, str]] = [
    (
        f'<Choices name="label" toName="image">{CHOICES}</Choices>',
        "regression",
        r"one <Number name=\"label\"> control, but it holds 0 \(it has <Choices>",
    ),
    ('<Number name="label" toName="image"/>', "classification", r"one <Choices name=\"label\"> control.*<Number>"),
    (
        f'<Choices name="label" toName="image" choice="multiple">{CHOICES}</Choices>',
        "classification",
        r"take one choice for a classification run, but it has choice='multiple'",
    ),
    (
        f'<Choices name="label" toName="image">{CHOICES}</Choices>',
        "multilabel",
        r"take several choices for a multilabel run, but it has choice='single'",
    ),
    (
        '<BrushLabels name="label" toName="image"><Label value="fish"/></BrushLabels>',
        "per_position",
        r"<BrushLabels name=\"label\"> to offer labels among the classes \['cat', 'dog'\] .* \['fish'\]",
    ),
    ('<PolygonLabels name="label" toName="image"></PolygonLabels>', "per_position", r"<PolygonLabels .* offers \[\]"),
    (
        '<Labels name="label" toName="text"><Label value="cat"/></Labels>',
        "per_position",
        r"<Labels name=\"label\"> to label toName=\"image\" \(`--data-key`\), but it labels 'text'",
    ),
    (
        '<BrushLabels name="label" toName="image"><Label value="cat"/></BrushLabels>',
        "regression",
        r"<Number name=\"label\">.*<BrushLabels>, which a regression run cannot read",
    ),
    ('<Number name="label" toName="image"/>', "detection", r"run whose task is one of .* but its task is 'detection'"),
]


@pytest.mark.parametrize(("control", "task", "match"), CONFIG_CASES)
def test_label_config_refuses(control, task, match):
    refuses(
        "check_label_config",
        lambda: check_label_config(view(control), ["cat", "dog"], "image", task=task),
        ValueError,
        match,
    )
    assert accepts(lambda: check_label_config(view('<Number name="label" toName="image"/>'), [], "image")) == "number"


TASK_CASES: list[tuple[str, Callable[[], Any], str]] = [
    (
        "MultiLabel.check_label",
        lambda: MultiLabel().check_label([1, 2, 0], num_classes=3),
        r"`labels` to hold multi-hot vectors \(0 or 1 per class\)",
    ),
    (
        "MultiLabel.check_label",
        lambda: MultiLabel().check_label([1, 0], num_classes=3),
        r"multi-hot vectors of 3 classes \(`num_classes`\), but got one of 2",
    ),
    (
        "MultiLabel.check_label",
        lambda: MultiLabel().check_label([[1, 0, 1]], num_classes=3),
        r"`labels` to hold multi-hot vectors",
    ),
    (
        "MultiLabel.check_label",
        lambda: MultiLabel().check_label("101", num_classes=3),
        r"`labels` to hold multi-hot vectors",
    ),
    (
        "MultiLabel.check_label",
        lambda: MultiLabel().check_label([], num_classes=None),
        r"multi-hot vectors of at least 1 classes",
    ),
    (
        "MultiLabel.check_label",
        lambda: MultiLabel().check_label([0.5, 1], num_classes=2),
        r"`labels` to hold multi-hot vectors",
    ),
    (
        "PerPosition.check_label",
        lambda: PerPosition().check_label(torch.zeros(2, 2), num_classes=3),
        r"`labels` to hold class maps .* dtype torch.float32",
    ),
    (
        "PerPosition.check_label",
        lambda: PerPosition().check_label(torch.tensor([[0, 3]]), num_classes=3),
        r"classes in \[0, 3\) or `ignore_index` \(None\), but got \[3\]",
    ),
    (
        "PerPosition.check_label",
        lambda: PerPosition(ignore_index=-100).check_label(torch.tensor([-1]), num_classes=3),
        r"or `ignore_index` \(-100\), but got \[-1\]",
    ),
    (
        "PerPosition.check_label",
        lambda: PerPosition().check_label(torch.tensor(1), num_classes=3),
        r"class maps \(non-empty integer tensors\)",
    ),
    (
        "MultiLabel.metric",
        lambda: MultiLabel().metric(num_classes=1),
        r"`num_classes` to be an integer >= 2, but got 1",
    ),
    ("MultiLabel.metric", lambda: MultiLabel().metric(), r"`num_classes` to be an integer >= 2, but got None"),
]


@pytest.mark.parametrize(("entry", "call", "match"), TASK_CASES)
def test_task_labels_refused(entry, call, match):
    refuses(entry, call, ValueError, match)
    assert accepts(
        lambda: PerPosition(ignore_index=-100).check_label(torch.tensor([-100, 2]), num_classes=3)
    ).tolist() == [-100, 2]


def test_a_datamodule_refuses_a_bad_multi_hot_whole():
    dm = ActiveDataModule(TensorDataset(torch.zeros(5, 1)), task="multilabel", num_classes=3, seed=0)
    labels = [torch.tensor([1, 0, 1]), torch.tensor([1, 0])]
    refuses(
        "MultiLabel.check_label (through a datamodule)",
        lambda: dm.label([1, 3], labels=labels),
        ValueError,
        r"3 classes",
        dm,
    )
    accepts(lambda: dm.label([1, 3], labels=[torch.tensor([1, 0, 1]), torch.tensor([0, 0, 0])]))


def export(folder: Path, result: list[dict[str, Any]]) -> Path:
    path = folder / "export.json"
    path.write_text(
        json.dumps([{"id": 0, "data": {"lbal_id": "b", "lbal_step": 1}, "annotations": [{"result": result}]}])
    )
    return path


def checkpoint(folder: Path, task: str) -> Path:
    classes = None if task == "regression" else 3
    dm = ActiveDataModule(TensorDataset(torch.zeros(5, 1)), ids=list("abcde"), task=task, num_classes=classes, seed=0)
    dm.query([1, 3], new_step=True)
    torch.save({"ActiveDataModule": dm.state_dict()}, folder / "run.ckpt")
    return folder / "run.ckpt"


CHOICE = [{"type": "choices", "value": {"choices": ["cat"]}}]
IMPORT_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any], str]] = [
    (
        "multilabel",
        [{"type": "choices", "value": {"choices": ["cat"]}}],
        {"label_map": {"cat": 3}},
        r"`label_map` to hold classes in \[0, 3\) \(`num_classes`\), but it holds 3",
    ),
    (
        "regression",
        [{"type": "choices", "value": {"choices": ["cat"]}}],
        {},
        r"kind 'number' .* holds \['choices'\] regions",
    ),
    ("regression", [number(float("nan"))], {}, r"`value.number` of task 'b' .* finite number"),
    ("classification", [number(1.0)], {"label_map": {"cat": 0}}, r"kind 'choice' .* holds \['number'\] regions"),
    (
        "classification",
        [],
        {"label_map": {"cat": 0}, "answer": AnswerFormat("choice", {"dog": 0})},
        r"`label_map` to be None or the label map of argument `answer`",
    ),
    (
        "per_position",
        [],
        {"answer": "spans"},
        r"`label_map` \(class names to indices\) to read the Label Studio export",
    ),
    # An answer type the run's task does not read: a class index would become a regression target or a mask.
    (
        "regression",
        CHOICE,
        {"label_map": {"cat": 0}, "answer": "choice"},
        r"a regression run \(number\), but got 'choice'",
    ),
    (
        "per_position",
        CHOICE,
        {"label_map": {"cat": 0}, "answer": "choice"},
        r"`--answer` to be an answer type of a per_position run \(brush, polygon, spans\), but got 'choice'",
    ),
    ("multilabel", CHOICE, {"label_map": {"cat": 0}, "answer": "choice"}, r"multilabel run \(multichoice\), but got"),
    ("classification", [number(1.0)], {"answer": "number"}, r"a classification run \(choice\), but got 'number'"),
    (
        "classification",
        CHOICE,
        {"answer": AnswerFormat("multichoice", {"cat": 0}, num_classes=3)},
        r"a classification run \(choice\), but got 'multichoice'",
    ),
    ("classification", CHOICE, {"label_map": {"cat": 0}, "answer": "brush"}, r"classification run \(choice\), but got"),
]


@pytest.mark.parametrize(("task", "result", "kwargs", "match"), IMPORT_CASES)
def test_bring_in_answers_refuses(tmp_path, task, result, kwargs, match):
    ckpt = checkpoint(tmp_path, task)
    path = export(tmp_path, result)
    refuses(
        "bring_in_answers (Label Studio answer types)",
        lambda: bring_in_answers(ckpt, path, **kwargs),
        ValueError,
        match,
        Folder(tmp_path),
    )


@pytest.mark.parametrize(
    ("name", "text"), [("answers.csv", "id,step,label\nb,1,1\n"), ("answers.json", '[{"id": "b", "label": 1}]')]
)
def test_a_plain_class_is_refused_as_the_answer_of_a_per_position_run(tmp_path, name, text):
    # The labelled view would put one class where the item's mask goes, and training would fail with the label kept.
    ckpt = checkpoint(tmp_path, "per_position")
    (tmp_path / name).write_text(text)
    refuses(
        "bring_in_answers (CSV and JSON answers)",
        lambda: bring_in_answers(ckpt, tmp_path / name),
        ValueError,
        r"`labels` to hold class maps .* for a per-position run, but got 1",
        Folder(tmp_path),
    )


def test_bring_in_answers_accepts_a_number(tmp_path):
    ckpt = checkpoint(tmp_path, "regression")
    assert accepts(lambda: bring_in_answers(ckpt, export(tmp_path, [number(2)]))).labelled.tolist() == [1]


def test_bring_in_answers_accepts_polygons_on_a_per_position_run(tmp_path):
    ckpt = checkpoint(tmp_path, "per_position")
    square = [[0, 0], [100, 0], [100, 100], [0, 100]]
    path = export(tmp_path, [polygon(square)])
    done = accepts(lambda: bring_in_answers(ckpt, path, label_map={"cat": 1}, answer="polygon"))
    assert done.labelled.tolist() == [1]


EXPORT_CASES: list[tuple[str, Callable[[], Any], str]] = [
    (
        "to_label_studio_tasks (kind)",
        lambda: to_label_studio_tasks(["a"], 1, predictions=[(0, 0.5)], kind="brush"),  # type: ignore[arg-type]
        r"argument `kind` to be 'choice' or 'number', but got 'brush'",
    ),
    (
        "to_label_studio_tasks (kind)",
        lambda: to_label_studio_tasks(["a"], 1, predictions=[(float("nan"), 0.5)], kind="number"),
        r"`predictions` to guess finite numbers, but got \[nan\]",
    ),
    (
        "to_label_studio_tasks (kind)",
        lambda: to_label_studio_tasks(["a"], 1, predictions=[(True, 0.5)], kind="number"),
        r"`predictions` to guess finite numbers, but got \[True\]",
    ),
    ("encode_brush_rle", lambda: encode_brush_rle(torch.zeros(2, 2, 2)), r"argument `mask` to be a 2-D tensor"),
    ("encode_brush_rle", lambda: encode_brush_rle([[True]]), r"argument `mask` to be a 2-D tensor"),  # type: ignore[arg-type]
    ("decode_brush_rle", lambda: decode_brush_rle("AAAA", 1, 1), r"`value.rle` of the answer to be a non-empty list"),
    ("decode_brush_rle", lambda: decode_brush_rle(encode_brush_rle(EYE), 3, 4), r"3x4 image\), but it holds 64"),
]


@pytest.mark.parametrize(("entry", "call", "match"), EXPORT_CASES)
def test_export_side_refuses(entry, call, match):
    refuses(entry, call, ValueError, match)
    assert accepts(lambda: decode_brush_rle(encode_brush_rle(EYE), 4, 4)).equal(EYE)
