"""Answer files of every format the project reads (CSV, JSON query rows, Label Studio's JSON export), bad ones refused
by :func:`import_answers` with the file, the row or task, and the field named, and the checkpoint bit-identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightning_bal.annotation import QueryFiles, import_answers, load_label_state, to_label_studio_tasks
from tests.bad_inputs.files import Folder, make_checkpoint
from tests.bad_inputs.harness import accepts, refuses

LABELS = {"cat": 0, "dog": 1, "bird": 2}
HEADER = "id,index,step,score,label\n"


def refused(folder: Path, entry: str, answers: Path, match: str, **kwargs: object) -> None:
    checkpoint = folder / "run.ckpt"
    refuses(
        entry, lambda: import_answers(checkpoint, answers, **kwargs), (ValueError, TypeError), match, Folder(folder)
    )


CSV_CASES = [
    (HEADER + "doc5,5,1,,1_0\n", r"every `label` .* number or empty, but got '1_0'"),
    (HEADER + "doc5,5,1,,1_000.5\n", r"every `label` .* number or empty, but got '1_000.5'"),
    (HEADER + "doc5,5,1,,\u0661\n", r"every `label` .* number or empty, but got '\u0661'"),
    (HEADER + "doc5,5,1,,0x1\n", r"every `label` .* number or empty, but got '0x1'"),
    (HEADER + "doc5,5,\u0661,,1\n", r"every `step` .* integer, but got '\u0661'"),
    (HEADER + "doc5,5,1_0,,1\n", r"every `step` .* integer, but got '1_0'"),
    (HEADER.encode("utf-16"), r"'.*answers.csv' to be UTF-8 text.*not UTF-8"),
    ((HEADER + "d\u00e9j\u00e0,5,1,,1\n").encode("latin-1"), r"'.*answers.csv' to be UTF-8 text.*not UTF-8"),
    (HEADER + "doc1,1,1,,1\n", r"ids \['doc1'\] that are already labelled"),
    (HEADER + "doc3,3,1,,1\n", r"pending query only, but .* ids \['doc3'\], which were not queried"),
    ('[{"id": "doc5", "step": 1, "label": 1}]', r"header `id,index,step,score,label`.*looks like JSON"),
]


@pytest.mark.parametrize(("content", "match"), CSV_CASES)
def test_csv_answers_refused(tmp_path, content, match):
    make_checkpoint(tmp_path)
    path = tmp_path / "answers.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(tmp_path, "answer files, CSV", path, match)


JSON_CASES = [
    ([{"id": "doc5", "step": 1, "label": "1_0"}], r"every `label` .* number or empty, but got '1_0'"),
    ([{"id": "doc5", "step": 1, "label": " 2 "}], None),
    ([{"id": "doc5", "step": 1, "label": True}], r"every `label` .* number or empty, but got True"),
    ([{"id": "doc5", "step": "1_0", "label": 1}], r"every `step` .* integer, but got '1_0'"),
    ([{"data": {"lbal_id": "doc5", "lbal_step": 1}, "annotations": []}], r"`label_map` .* Label Studio export"),
    ([{"id": "doc9", "step": 1, "label": 1}, {"id": "doc1", "step": 1, "label": 1}], r"\['doc1'\] that are already"),
]


@pytest.mark.parametrize(("rows", "match"), JSON_CASES)
def test_json_answers_refused(tmp_path, rows, match):
    make_checkpoint(tmp_path)
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(rows))
    if match is None:  # a padded number is a valid neighbour
        assert accepts(lambda: import_answers(tmp_path / "run.ckpt", path)).tolist() == [5]
        return
    refused(tmp_path, "answer files, JSON", path, match)


def task(item: str = "doc5", step: object = 1, annotations: object = None) -> dict:
    if annotations is None:
        annotations = [{"id": 1, "result": [{"type": "choices", "value": {"choices": ["dog"]}}]}]
    return {"id": 7, "data": {"image": item, "lbal_id": item, "lbal_step": step}, "annotations": annotations}


def annotated(result: object) -> list:
    return [{"id": 1, "created_at": "2024-05-01T10:00:00Z", "result": result}]


STUDIO_CASES = [
    (task(annotations=annotated({"type": "choices", "value": {"choices": ["dog"]}})), r"`result` .* task 'doc5'"),
    (task(annotations=annotated("dog")), r"`result` of every annotation of task 'doc5' .* list of objects.*'dog'"),
    (task(annotations=annotated(["dog"])), r"`result` of every annotation of task 'doc5'"),
    (task(annotations={"id": 1, "result": []}), r"`annotations` of task 'doc5' .* list of objects"),
    (task(annotations="dog"), r"`annotations` of task 'doc5' .* list of objects, but got 'dog'"),
    (task(annotations=["dog"]), r"`annotations` of task 'doc5' .* list of objects"),
    (task(annotations=annotated([{"type": "choices", "value": {"choices": "dog"}}])), r"`value.choices` .* 'doc5'"),
    (task(annotations=annotated([{"type": "choices", "value": "dog"}])), r"`value.choices` .* task 'doc5'"),
    (task(annotations=annotated([{"type": "choices", "value": {"choices": [1]}}])), r"`value.choices` .* names"),
    (task(step=1.7), r"`data.lbal_step` of task 'doc5' .* integer step, but got 1.7"),
    (task(step=True), r"`data.lbal_step` of task 'doc5' .* integer step, but got True"),
    (task(step="1"), r"`data.lbal_step` of task 'doc5' .* integer step, but got '1'"),
    (task(item="doc1"), r"\['doc1'\] that are already labelled"),
]


@pytest.mark.parametrize(("content", "match"), STUDIO_CASES)
def test_label_studio_exports_refused(tmp_path, content, match):
    make_checkpoint(tmp_path)
    path = tmp_path / "export.json"
    path.write_text(json.dumps([task("doc9"), content]))
    refused(tmp_path, "answer files, Label Studio", path, match, label_map=LABELS)


@pytest.mark.parametrize(
    ("content", "kwargs", "match"),
    [
        ('[{"data": {"lbal_id": "d\u00e9j\u00e0"}}]'.encode("latin-1"), {"label_map": LABELS}, r"to be UTF-8 text"),
        (json.dumps([task()]).encode(), {"format": "label_studio"}, r"`label_map` .* Label Studio export .* None"),
        (json.dumps([task()]).encode(), {}, r"`label_map` .* Label Studio export .* None"),
        (json.dumps([task()]).encode(), {"format": "xml"}, r"`format` .* 'csv', 'json' or 'label_studio'.*'xml'"),
        (json.dumps([task()]).encode(), {"format": "json"}, r"query rows .* holds Label Studio tasks"),
        (json.dumps([task()]).encode(), {"format": "csv"}, r"header `id,index,step,score,label`.*looks like JSON"),
        (HEADER.encode(), {"format": "label_studio", "label_map": LABELS}, r"hold JSON, but it does not parse"),
    ],
)
def test_label_studio_files_refused(tmp_path, content, kwargs, match):
    make_checkpoint(tmp_path)
    path = tmp_path / "export.json"
    path.write_bytes(content)
    refused(tmp_path, "answer files, Label Studio", path, match, **kwargs)


@pytest.mark.parametrize(
    ("name", "content", "kwargs"),
    [
        ("answers.csv", b"\xef\xbb\xbf" + (HEADER + "doc5,5,1,,2\n").encode(), {}),
        ("answers.json", b"\xef\xbb\xbf" + json.dumps([{"id": "doc5", "step": 1, "label": 2}]).encode(), {}),
        (
            "export.json",
            b"\xef\xbb\xbf" + json.dumps([task(annotations=annotated(None))]).encode(),
            {"label_map": LABELS},
        ),
        ("answers.txt", (HEADER + "doc5,5,1,,2\n").encode(), {"format": "csv"}),
        ("answers.csv", json.dumps([{"id": "doc5", "step": 1, "label": 2}]).encode(), {"format": "json"}),
    ],
)
def test_valid_neighbours_are_read(tmp_path, name, content, kwargs):
    make_checkpoint(tmp_path)
    path = tmp_path / name
    path.write_bytes(content)
    labelled = accepts(lambda: import_answers(tmp_path / "run.ckpt", path, **kwargs)).tolist()
    expected = [] if name == "export.json" else [5]  # the Label Studio task has no result: it stays pending
    assert labelled == expected
    assert load_label_state(tmp_path / "run.ckpt").ledger.annotations == dict.fromkeys(expected, 2)


@pytest.mark.parametrize("data_key", ["lbal_id", "lbal_step", "lbal_score", "", None])
def test_a_data_key_taking_a_library_field_is_refused(data_key):
    error = TypeError if not data_key else ValueError
    match = r"`data_key` .* non-empty string" if not data_key else r"`data_key` .* lightning_bal's own"
    refuses("QueryFiles", lambda: QueryFiles("label_studio", data_key=data_key), error, match)
    refuses(
        "answer files, Label Studio tasks", lambda: to_label_studio_tasks(["a"], 1, data_key=data_key), error, match
    )
    accepts(lambda: QueryFiles("label_studio", data_key="text"))


def test_label_names_must_cover_the_guesses():
    refuses(
        "answer files, Label Studio tasks",
        lambda: to_label_studio_tasks(["a", "b"], 1, predictions=[(0, 0.5), (2, 0.5)], label_names=["cat", "dog"]),
        ValueError,
        r"`label_names` .* every class .* 2 names .* classes \[0, 2\]",
    )
    accepts(lambda: to_label_studio_tasks(["a"], 1, predictions=[(1, 0.5)], label_names=["cat", "dog"]))
