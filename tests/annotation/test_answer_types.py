"""Label Studio answers of every type (docs/annotators.md#answer-types): each read from a Label Studio-shaped export
into the label the task expects, the brush RLE against masks encoded here, polygons against a closed-form
point-in-triangle test, spans per token and per character, and the labels brought into a checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule
from lightning_bal.annotation import (
    AnswerFormat,
    decode_brush_rle,
    encode_brush_rle,
    load_label_state,
    read_answer,
    read_label_studio_export,
)
from lightning_bal.annotation.label_studio import to_label_studio_tasks
from lightning_bal.annotation.label_studio_api import LabelStudioClient, check_label_config
from lightning_bal.annotation.regions import rasterize_polygon, spans_to_labels
from lightning_bal.annotation.sync import bring_in_answers, sync_label_studio
from lightning_bal.tasks import MultiLabel, PerPosition, resolve_task
from tests.annotation.fake_label_studio import PAT, FakeLabelStudio

LABELS = {"cat": 0, "dog": 1, "bird": 2}


def export(path: Path, answers: dict[str, list[dict[str, Any]]], **data: Any) -> Path:
    """A Label Studio JSON export: one task per item of step 1, one annotation holding ``answers[item]``."""
    tasks = [
        {
            "id": number,
            "data": {"lbal_id": item, "lbal_step": 1, **data},
            "annotations": [{"id": number, "created_at": "2026-01-01T10:00:00Z", "result": result}],
        }
        for number, (item, result) in enumerate(answers.items())
    ]
    path.write_text(json.dumps(tasks))
    return path


def checkpoint(folder: Path, task: Any, num_classes: int | None = None) -> Path:
    """A run of 5 items (a..e) whose step-1 query asks b and d."""
    dm = ActiveDataModule(
        TensorDataset(torch.zeros(5, 1)), ids=list("abcde"), task=task, num_classes=num_classes, seed=0
    )
    dm.query([1, 3], new_step=True)
    path = folder / "run.ckpt"
    torch.save({"ActiveDataModule": dm.state_dict()}, path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def choices(*names: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": list(names)}}]


def number(value: Any) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "image", "type": "number", "value": {"number": value}}]


def brush(mask: torch.Tensor, name: str, **extra: Any) -> dict[str, Any]:
    value = {"format": "rle", "rle": encode_brush_rle(mask), "brushlabels": [name]}
    height, width = mask.shape
    return {"type": "brushlabels", "original_height": height, "original_width": width, "value": value, **extra}


def polygon(points: list[list[float]], name: str, height: int, width: int) -> dict[str, Any]:
    value = {"points": points, "polygonlabels": [name], "closed": True}
    return {"type": "polygonlabels", "original_height": height, "original_width": width, "value": value}


def span(start: int, end: int, name: str) -> dict[str, Any]:
    return {"type": "labels", "value": {"start": start, "end": end, "labels": [name]}}


# ---- the brush RLE ---------------------------------------------------------------------------------------------


@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_brush_rle_round_trip(height, width, seed):
    mask = torch.rand(height, width, generator=torch.Generator().manual_seed(seed)) > 0.5
    assert torch.equal(decode_brush_rle(encode_brush_rle(mask), height, width), mask)


def test_brush_rle_long_runs_split_and_read_back():
    # 300 * 300 * 4 values: runs longer than one run can say (2**16) are split by the encoder.
    mask = torch.zeros(300, 300, dtype=torch.bool)
    mask[10:200, 50:90] = True
    assert torch.equal(decode_brush_rle(encode_brush_rle(mask), 300, 300), mask)


def test_brush_rle_reads_literal_runs():
    # Written by hand, as Label Studio's packer writes a stretch of unequal bytes: a 1x2 image, the second pixel
    # painted. 32 bits: 8 values; 5 bits: word size 8; 4 x 4 bits: run widths 3, 1, 1, 1; then one literal run
    # (flag 0, selector 00, length-1 = 7 in 3 bits) of 8 bytes.
    bits = f"{8:032b}{7:05b}{2:04b}{0:04b}{0:04b}{0:04b}" + "0" + "00" + "111" + "00000000" * 4 + "11111111" * 4
    bits += "0" * (-len(bits) % 8)
    rle = [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]
    assert decode_brush_rle(rle, 1, 2).tolist() == [[False, True]]


# ---- polygons --------------------------------------------------------------------------------------------------


def inside_triangle(vertices: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel centres inside a triangle by the signs of three cross products, and where that is decidable."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    crosses = []
    for i in range(3):
        (x0, y0), (x1, y1) = vertices[i - 1].tolist(), vertices[i].tolist()
        crosses.append((x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0))
    stacked = torch.stack(crosses)
    inside = (stacked > 0).all(0) | (stacked < 0).all(0)
    return inside, (stacked.abs() > 1e-9).all(0)


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=3, max_size=3, unique=True))
def test_polygon_matches_a_closed_form_inside_test(corners):
    height, width = 7, 11
    percent = [[x * 2.5, y * 2.5] for x, y in corners]
    vertices = torch.tensor([[x * width / 100, y * height / 100] for x, y in percent], dtype=torch.float64)
    expected, decidable = inside_triangle(vertices, height, width)
    painted = rasterize_polygon(percent, height, width)
    assert torch.equal(painted[decidable], expected[decidable])


def test_polygon_rectangle_covers_its_pixels():
    assert rasterize_polygon([[25, 0], [75, 0], [75, 100], [25, 100]], 2, 4).int().tolist() == [[0, 1, 1, 0]] * 2


# ---- spans -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spans", "tokens", "expected"),
    [
        ([(0, 5, 1)], [[0, 5], [6, 11]], [1, 0]),
        ([(0, 3, 2)], [[0, 5], [6, 11]], [2, 0]),  # a token any part of a span covers takes its class
        ([(0, 5, 1), (6, 11, 1)], [[0, 5], [6, 11]], [1, 1]),
        ([(0, 11, 1), (6, 11, 1)], [[0, 5], [6, 11]], [1, 1]),  # overlapping spans of one class are fine
        ([], [[0, 5], [6, 11]], [0, 0]),
    ],
)
def test_spans_to_token_labels(spans, tokens, expected):
    assert spans_to_labels(spans, torch.tensor(tokens)).tolist() == expected


# ---- each answer type, read from an export ---------------------------------------------------------------------


def test_single_choice_reads_a_class(tmp_path):
    answers = read_label_studio_export(export(tmp_path / "e.json", {"b": choices("dog")}), LABELS)
    assert answers.labels == [1]


def test_multiple_choices_read_a_multi_hot_vector(tmp_path):
    path = export(tmp_path / "e.json", {"b": choices("cat", "bird"), "d": choices("dog")})
    answers = read_label_studio_export(path, LABELS, answer="multichoice")
    assert [label.tolist() for label in answers.labels] == [[1, 0, 1], [0, 1, 0]]


def test_several_choices_are_refused_as_single_choice(tmp_path):
    path = export(tmp_path / "e.json", {"b": choices("cat", "bird")})
    with pytest.raises(ValueError, match=r"one choice per annotation .*single-label only.*'multichoice'"):
        read_label_studio_export(path, LABELS)


def test_numbers_read_as_floats(tmp_path):
    answers = read_label_studio_export(
        export(tmp_path / "e.json", {"b": number(2.5), "d": number(-1)}), None, answer="number"
    )
    assert answers.labels == [2.5, -1.0]
    assert all(isinstance(label, float) for label in answers.labels)


def test_brush_regions_make_a_class_map(tmp_path):
    cat = torch.zeros(4, 6, dtype=torch.bool)
    cat[:2, :3] = True
    bird = torch.zeros(4, 6, dtype=torch.bool)
    bird[2:, 4:] = True
    path = export(tmp_path / "e.json", {"b": [brush(cat, "cat"), brush(bird, "bird")]})
    fmt = AnswerFormat("brush", {"cat": 1, "bird": 2}, background=0)
    (mask,) = read_label_studio_export(path, None, answer=fmt).labels
    expected = torch.zeros(4, 6, dtype=torch.long)
    expected[cat], expected[bird] = 1, 2
    assert torch.equal(mask, expected)


def test_unpainted_pixels_take_the_ignore_index(tmp_path):
    cat = torch.eye(3, dtype=torch.bool)
    path = export(tmp_path / "e.json", {"b": [brush(cat, "cat")]})
    (mask,) = read_label_studio_export(path, None, answer=AnswerFormat("brush", {"cat": 1}, background=-100)).labels
    assert mask.tolist() == [[1, -100, -100], [-100, 1, -100], [-100, -100, 1]]
    assert torch.equal(PerPosition(ignore_index=-100).check_label(mask, num_classes=2), mask)


def test_polygon_regions_make_a_class_map(tmp_path):
    path = export(tmp_path / "e.json", {"b": [polygon([[0, 0], [50, 0], [50, 100], [0, 100]], "dog", 2, 4)]})
    (mask,) = read_label_studio_export(path, None, answer=AnswerFormat("polygon", LABELS)).labels
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]


def test_an_empty_mask_answer_of_known_size_is_all_background(tmp_path):
    path = export(tmp_path / "e.json", {"b": []})
    fmt = AnswerFormat("polygon", LABELS, sizes={"b": (2, 3)})
    assert read_label_studio_export(path, None, answer=fmt).labels[0].tolist() == [[0, 0, 0]] * 2
    assert read_label_studio_export(path, None, answer=AnswerFormat("polygon", LABELS)).unanswered == ["b"]


def test_spans_label_characters_of_the_task_text(tmp_path):
    path = export(tmp_path / "e.json", {"b": [span(0, 3, "cat"), span(8, 11, "dog")]}, text="Tom met Ann")
    fmt = AnswerFormat("spans", {"O": 0, "cat": 1, "dog": 2})
    (labels,) = read_label_studio_export(path, None, answer=fmt).labels
    assert labels.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 2, 2, 2]


def test_spans_label_tokens_given_their_offsets(tmp_path):
    path = export(tmp_path / "e.json", {"b": [span(0, 3, "cat"), span(8, 11, "dog")]}, text="Tom met Ann")
    fmt = AnswerFormat("spans", {"cat": 1, "dog": 2}, token_offsets={"b": [(0, 3), (4, 7), (8, 11)]}, background=-100)
    (labels,) = read_label_studio_export(path, None, answer=fmt).labels
    assert labels.tolist() == [1, -100, 2]


def test_disagreeing_tensor_answers_are_found(tmp_path):
    tasks = [
        {
            "id": 1,
            "data": {"lbal_id": "b", "lbal_step": 1},
            "annotations": [
                {"id": 1, "created_at": "2026-01-01T10:00:00Z", "result": choices("cat", "bird")},
                {"id": 2, "created_at": "2026-01-01T11:00:00Z", "result": choices("cat")},
            ],
        }
    ]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(tasks))
    answers = read_label_studio_export(path, LABELS, answer="multichoice", on_disagreement="skip")
    assert answers.disagreements == ["b"]
    assert answers.ids == []
    with pytest.raises(ValueError, match=r"task 'b' to agree, but got \[\['cat', 'bird'\], \['cat'\]\]"):
        read_label_studio_export(path, LABELS, answer="multichoice", on_disagreement="error")


# ---- into a checkpoint -----------------------------------------------------------------------------------------


def test_number_answers_come_into_a_regression_checkpoint(tmp_path):
    ckpt = checkpoint(tmp_path, "regression")
    path = export(tmp_path / "e.json", {"b": number(2.5), "d": number(-1.25)})
    assert bring_in_answers(ckpt, path).labelled.tolist() == [1, 3]
    assert load_label_state(ckpt).ledger.annotations == {1: 2.5, 3: -1.25}


def test_choice_answers_come_into_a_classification_checkpoint(tmp_path):
    ckpt = checkpoint(tmp_path, "classification", num_classes=3)
    path = export(tmp_path / "e.json", {"b": choices("bird"), "d": choices("cat")})
    bring_in_answers(ckpt, path, label_map=LABELS)
    assert load_label_state(ckpt).ledger.annotations == {1: 2, 3: 0}


def test_multi_hot_answers_label_a_multilabel_datamodule(tmp_path):
    dm = ActiveDataModule(TensorDataset(torch.zeros(5, 1)), ids=list("abcde"), task="multilabel", num_classes=3, seed=0)
    path = export(tmp_path / "e.json", {"b": choices("cat", "bird"), "d": choices("dog")})
    answers = read_label_studio_export(path, LABELS, answer="multichoice")
    dm.label([1, 3], labels=answers.labels)
    assert {index: label.tolist() for index, label in dm.ledger.annotations.items()} == {1: [1, 0, 1], 3: [0, 1, 0]}


# ---- the task, the config, the export side ---------------------------------------------------------------------


def test_multilabel_task_is_resolved_by_name_and_checks_its_labels():
    task = resolve_task("multilabel")
    assert isinstance(task, MultiLabel)
    assert task.check_label(torch.tensor([True, False]), num_classes=2).tolist() == [1, 0]
    metric = task.metric(num_classes=3)
    metric.update(torch.tensor([[5.0, -5.0, 5.0]]), torch.tensor([[1, 0, 1]]))
    assert float(metric.compute()) == pytest.approx(2 / 3)  # the absent class scores 0 in the macro average


def config(control: str, data: str = '<Image name="image" value="$image"/>') -> str:
    return f"<View>{data}{control}</View>"


CHOICES = '<Choice value="cat"/><Choice value="dog"/><Choice value="bird"/>'
TAGS = '<Label value="cat"/><Label value="dog"/>'


@pytest.mark.parametrize(
    ("control", "task", "kind"),
    [
        (f'<Choices name="label" toName="image">{CHOICES}</Choices>', "classification", "choice"),
        (f'<Choices name="label" toName="image">{CHOICES}</Choices>', None, "choice"),
        (f'<Choices name="label" toName="image" choice="multiple">{CHOICES}</Choices>', "multilabel", "multichoice"),
        ('<Number name="label" toName="image"/>', "regression", "number"),
        (f'<BrushLabels name="label" toName="image">{TAGS}</BrushLabels>', "per_position", "brush"),
        (f'<PolygonLabels name="label" toName="image">{TAGS}</PolygonLabels>', "per_position", "polygon"),
        (f'<Labels name="label" toName="image">{TAGS}</Labels>', "per_position", "spans"),
    ],
)
def test_label_config_gives_the_answer_kind(control, task, kind):
    assert check_label_config(config(control), list(LABELS), "image", task=task) == kind


def test_number_pre_annotations_go_with_the_tasks():
    tasks = to_label_studio_tasks(["a", "b"], step=1, predictions=[(2.5, 0.9), (-1, 0.1)], kind="number")
    assert [t["predictions"][0]["result"][0]["value"] for t in tasks] == [{"number": 2.5}, {"number": -1.0}]
    assert [t["predictions"][0]["score"] for t in tasks] == [0.9, 0.1]


def test_a_number_answer_round_trips_through_its_pre_annotation(tmp_path):
    (task,) = to_label_studio_tasks(["b"], step=1, predictions=[(4.5, 0.5)], kind="number")
    task["annotations"] = [{"id": 1, "result": task["predictions"][0]["result"]}]
    path = tmp_path / "e.json"
    path.write_text(json.dumps([task]))
    assert read_label_studio_export(path, None, answer="number").labels == [4.5]
    assert read_answer(task["annotations"][0]["result"], AnswerFormat("number"), "task 'b'") == 4.5


# ---- through a (stand-in) Label Studio server ------------------------------------------------------------------


@pytest.fixture
def fake():
    server = FakeLabelStudio(list(LABELS))
    yield server
    server.stop()


def test_sync_reads_numbers_from_a_number_project(tmp_path, fake):
    fake.projects[7]["label_config"] = config('<Number name="label" toName="image"/>')
    ckpt = checkpoint(tmp_path, "regression")
    client = LabelStudioClient(fake.url, PAT)
    assert sync_label_studio(ckpt, client, "blobs", []).pushed == ["b", "d"]
    for task, value in zip(fake.tasks[7], [2.5, -4.0], strict=True):
        task["annotations"] = [{"id": 1, "created_at": "2026-01-01T10:00:00Z", "result": number(value)}]
    assert sync_label_studio(ckpt, client, "blobs", []).pulled == ["b", "d"]
    assert load_label_state(ckpt).ledger.annotations == {1: 2.5, 3: -4.0}


BRUSH_TAGS = '<Label value="cat"/><Label value="dog"/><Label value="bird"/>'


@pytest.mark.parametrize(
    ("task", "control", "results", "expected"),
    [
        (
            "per_position",
            f'<BrushLabels name="label" toName="image">{BRUSH_TAGS}</BrushLabels>',
            [
                [brush(torch.eye(2, dtype=torch.bool), "dog", from_name="label", to_name="image")],
                [brush(torch.ones(2, 2, dtype=torch.bool), "bird", from_name="label", to_name="image")],
            ],
            {1: [[1, 0], [0, 1]], 3: [[2, 2], [2, 2]]},
        ),
        (
            "multilabel",
            f'<Choices name="label" toName="image" choice="multiple">{CHOICES}</Choices>',
            [choices("cat", "bird"), choices("dog")],
            {1: [1, 0, 1], 3: [0, 1, 0]},
        ),
    ],
)
def test_sync_pulls_tensor_answers_into_the_checkpoint(tmp_path, fake, task, control, results, expected):
    fake.projects[7]["label_config"] = config(control)
    ckpt = checkpoint(tmp_path, task, num_classes=3)
    client = LabelStudioClient(fake.url, PAT)
    assert sync_label_studio(ckpt, client, "blobs", list(LABELS)).pushed == ["b", "d"]
    for server_task, result in zip(fake.tasks[7], results, strict=True):
        server_task["annotations"] = [{"id": 1, "created_at": "2026-01-01T10:00:00Z", "result": result}]
    assert sync_label_studio(ckpt, client, "blobs", list(LABELS)).pulled == ["b", "d"]
    labels = load_label_state(ckpt).ledger.annotations
    assert {index: label.tolist() for index, label in labels.items()} == expected
    # Pulled again, the same answers agree with the labels the checkpoint keeps: nothing changes.
    before = digest(ckpt)
    assert sync_label_studio(ckpt, client, "blobs", list(LABELS)).pulled == []
    assert digest(ckpt) == before


def test_sync_refuses_a_project_of_another_answer_type(tmp_path, fake):
    fake.projects[7]["label_config"] = config('<Number name="label" toName="image"/>')
    ckpt = checkpoint(tmp_path, "classification", num_classes=3)
    before = digest(ckpt)
    with pytest.raises(ValueError, match=r"one <Choices name=\"label\"> control, but it holds 0 \(it has <Number>"):
        sync_label_studio(ckpt, LabelStudioClient(fake.url, PAT), "blobs", list(LABELS))
    assert digest(ckpt) == before
    assert fake.tasks[7] == []


# ---- against Label Studio's own converter (in Label Studio's environment, when it is installed) ----------------

LABEL_STUDIO = os.environ.get("LABEL_STUDIO_BIN") or shutil.which("label-studio")
REFERENCE = """
import json, sys
import numpy as np
from label_studio_sdk.converter import brush
asked = json.load(sys.stdin)
mask = np.array(asked["mask"], dtype=np.uint8) * 255
ours = brush.decode_rle(asked["rle"]).reshape(*mask.shape, 4)[:, :, 3] > 0
print(json.dumps({"rle": [int(b) for b in brush.mask2rle(mask)], "ours": ours.tolist()}))
"""


@pytest.mark.skipif(LABEL_STUDIO is None, reason="label-studio is not installed (set LABEL_STUDIO_BIN)")
@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 5), (40, 33)])
def test_brush_rle_agrees_with_label_studio_converter(height, width):
    python = Path(str(LABEL_STUDIO)).resolve().parent / "python"
    mask = torch.rand(height, width, generator=torch.Generator().manual_seed(height)) > 0.6
    asked = json.dumps({"mask": mask.tolist(), "rle": encode_brush_rle(mask)})
    done = subprocess.run([python, "-c", REFERENCE], input=asked, capture_output=True, text=True, timeout=120)
    if done.returncode and "No module named" in done.stderr:
        pytest.skip("Label Studio's environment has no label_studio_sdk converter")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ours"] == mask.tolist()  # Label Studio's decoder reads our RLE
    assert torch.equal(decode_brush_rle(answer["rle"], height, width), mask)  # we read Label Studio's
