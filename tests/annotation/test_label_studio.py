"""Label Studio: tasks written for import, and Label Studio's JSON export read back, with its bad cases."""

import json

import pytest
import torch

from lightning_bal import ActiveDataModule
from lightning_bal.annotation import import_answers, load_label_state, read_label_studio_export, to_label_studio_tasks
from tests.helpers.models import blobs

LABELS = {"cat": 0, "dog": 1, "bird": 2}


def annotation(choice, annotation_id, created, cancelled=False, from_name="label"):
    """One annotation as Label Studio 1.x exports it (Export -> JSON)."""
    return {
        "id": annotation_id,
        "completed_by": 1,
        "result": []
        if choice is None
        else [
            {
                "value": {"choices": [choice]},
                "id": f"r{annotation_id}",
                "from_name": from_name,
                "to_name": "image",
                "type": "choices",
                "origin": "manual",
            }
        ],
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": created,
        "updated_at": created,
        "draft_created_at": None,
        "lead_time": 4.2,
        "prediction": {},
        "result_count": 0,
        "unique_id": f"u{annotation_id}",
        "import_id": None,
        "last_action": None,
        "task": 1,
        "project": 3,
        "updated_by": 1,
        "parent_prediction": None,
        "parent_annotation": None,
        "last_created_by": None,
    }


def exported(tasks, annotations):
    """Label Studio's export of imported ``tasks``: its own ids and bookkeeping around our ``data``."""
    return [
        {
            "id": 100 + number,
            "annotations": annotations[number],
            "file_upload": None,
            "drafts": [],
            "predictions": [],
            "data": task["data"],
            "meta": {},
            "created_at": "2024-05-01T09:00:00.000000Z",
            "updated_at": "2024-05-01T09:30:00.000000Z",
            "inner_id": number + 1,
            "total_annotations": len(annotations[number]),
            "cancelled_annotations": 0,
            "total_predictions": 0,
            "comment_count": 0,
            "unresolved_comment_count": 0,
            "last_comment_updated_at": None,
            "project": 3,
            "updated_by": 1,
            "comment_authors": [],
        }
        for number, task in enumerate(tasks)
    ]


def test_tasks_carry_the_data_reference_id_step_score_and_guess():
    tasks = to_label_studio_tasks(
        ["a.png", "b.png"],
        step=4,
        data_prefix="https://bucket/",
        scores=[0.9, None],
        predictions=[(2, 0.6), (0, 0.99)],
        label_names=list(LABELS),
    )
    assert tasks[0]["data"] == {"image": "https://bucket/a.png", "lbal_id": "a.png", "lbal_step": 4, "lbal_score": 0.9}
    assert tasks[1]["data"]["lbal_score"] is None
    result = tasks[0]["predictions"][0]["result"][0]
    assert (result["from_name"], result["to_name"], result["type"]) == ("label", "image", "choices")
    assert result["value"] == {"choices": ["bird"]}
    assert tasks[0]["predictions"][0]["score"] == 0.6
    text = to_label_studio_tasks(["the cat sat"], step=1, data_key="text")
    assert text[0]["data"]["text"] == "the cat sat"
    assert "predictions" not in text[0]


def test_first_completed_annotation_wins_and_disagreements_are_reported(tmp_path):
    tasks = to_label_studio_tasks(["a", "b", "c", "d", "e"], step=2)
    annotations = [
        [annotation("dog", 2, "2024-05-01T10:05:00Z"), annotation("cat", 1, "2024-05-01T10:00:00Z")],
        [annotation("bird", 3, "2024-05-01T10:00:00Z", cancelled=True), annotation("cat", 4, "2024-05-01T11:00:00Z")],
        [],  # not annotated yet
        [annotation(None, 5, "2024-05-01T10:00:00Z")],  # skipped without a choice
        [annotation("dog", 6, "2024-05-01T10:00:00Z"), annotation("dog", 7, "2024-05-01T12:00:00Z")],
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(exported(tasks, annotations)))
    first = read_label_studio_export(path, LABELS)
    assert (first.ids, first.labels, first.steps) == (["a", "b", "e"], [0, 0, 1], {2})
    assert first.disagreements == ["a"]
    assert first.unanswered == ["c", "d"]
    skipped = read_label_studio_export(path, LABELS, on_disagreement="skip")
    assert skipped.ids == ["b", "e"]
    with pytest.raises(ValueError, match="agree"):
        read_label_studio_export(path, LABELS, on_disagreement="error")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda rows: rows[0]["annotations"][0]["result"][0]["value"].update(choices=["horse"]), "label map"),
        (lambda rows: rows[0]["data"].pop("lbal_id"), "another project"),
        (lambda rows: rows[0]["annotations"][0]["result"][0]["value"].update(choices=["cat", "dog"]), "one choice"),
    ],
)
def test_bad_exports_are_refused(tmp_path, mutate, match):
    rows = exported(to_label_studio_tasks(["a"], step=1), [[annotation("cat", 1, "2024-05-01T10:00:00Z")]])
    mutate(rows)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=match):
        read_label_studio_export(path, LABELS)


def test_truncated_export_is_refused(tmp_path):
    rows = exported(to_label_studio_tasks(["a"], step=1), [[annotation("cat", 1, "2024-05-01T10:00:00Z")]])
    path = tmp_path / "export.json"
    path.write_text(json.dumps(rows)[:-40])
    with pytest.raises(ValueError, match="truncated"):
        read_label_studio_export(path, LABELS)


def make_checkpoint(tmp_path):
    dm = ActiveDataModule(blobs(12), ids=[f"p{i}.jpg" for i in range(12)], seed=0)
    dm.label([0, 1, 2])
    dm.query([4, 6, 8], new_step=True)
    path = tmp_path / "run.ckpt"
    torch.save({"ActiveDataModule": dm.state_dict(), "callbacks": {}}, path)
    return path


def test_export_import_through_a_checkpoint(tmp_path):
    path = make_checkpoint(tmp_path)
    state = load_label_state(path)
    tasks_path = state.export(tmp_path / "tasks.json", "label_studio", data_prefix="/data/local-files/?d=")
    tasks = json.loads(tasks_path.read_text())
    assert [t["data"]["image"] for t in tasks] == [f"/data/local-files/?d=p{i}.jpg" for i in (4, 6, 8)]
    answers = [[annotation("bird", 1, "2024-05-01T10:00:00Z")], [], [annotation("dog", 2, "2024-05-01T10:00:00Z")]]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(exported(tasks, answers)))
    assert import_answers(path, export, label_map=LABELS).tolist() == [4, 8]
    after = load_label_state(path)
    assert after.ledger.annotations == {4: 2, 8: 1}
    assert after.pending_ids() == ["p6.jpg"]
    assert after.ledger.acquired_at[[4, 8]].tolist() == [1, 1]


def test_an_export_of_another_project_imports_nothing(tmp_path):
    path = make_checkpoint(tmp_path)
    before = path.read_bytes()
    foreign = to_label_studio_tasks(["other1.jpg", "p4.jpg"], step=1)
    export = tmp_path / "export.json"
    annotations = [[annotation("cat", 1, "2024-05-01T10:00:00Z")], [annotation("cat", 2, "2024-05-01T10:00:00Z")]]
    export.write_text(json.dumps(exported(foreign, annotations)))
    with pytest.raises(ValueError, match=r"unknown ids \['other1.jpg'\]"):
        import_answers(path, export, label_map=LABELS)
    assert path.read_bytes() == before
