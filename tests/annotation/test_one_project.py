"""One Label Studio project for the whole run: each round's export holds every round; corrections come back."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_bal.annotation.checkpoint import load_label_state
from lightning_bal.annotation.cli import main
from lightning_bal.annotation.sync import bring_in_answers
from tests.bad_inputs.files import make_checkpoint

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["cat", "dog", "bird"]


def annotation(number: int, choice: str, when: str, by: object = 1) -> dict:
    return {
        "id": number,
        "created_at": "2026-01-01T10:00:00Z",
        "updated_at": when,
        "completed_by": by,
        "was_cancelled": False,
        "result": [{"type": "choices", "from_name": "label", "value": {"choices": [choice]}}],
    }


def task(item: str, step: int, *annotations: dict) -> dict:
    data = {"image": item, "lbal_id": item, "lbal_step": step}
    return {"id": 100 * step + int(item.removeprefix("doc")), "data": data, "annotations": list(annotations)}


def export(folder: Path, tasks: list[dict]) -> Path:
    path = folder / "project.json"
    path.write_text(json.dumps(tasks))
    return path


ROUND1 = [
    task("doc5", 1, annotation(1, "dog", "2026-01-01T10:00:00Z")),
    task("doc9", 1, annotation(2, "cat", "2026-01-01T10:00:00Z")),
    task("doc11", 1),  # left unanswered: asked again at step 2
]


def second_round(checkpoint: Path) -> None:
    """Round 1's answers in, then the run queries the leftover doc11 and doc12 at step 2."""
    state = load_label_state(checkpoint)
    state.ledger.query([11, 12], new_step=True)
    state.save(checkpoint)


def test_the_whole_project_is_imported_after_round_two_with_a_correction(tmp_path):
    checkpoint = make_checkpoint(tmp_path)
    assert main(["import", str(checkpoint), str(export(tmp_path, ROUND1)), "--labels", ",".join(NAMES)]) == 0
    second_round(checkpoint)
    reviewer = {"id": 3, "email": "rev@example.org"}
    project = [
        ROUND1[0],
        task("doc9", 1, annotation(2, "bird", "2026-01-02T09:30:00Z", reviewer)),  # fixed in Label Studio
        ROUND1[2],
        task("doc11", 2, annotation(3, "cat", "2026-01-02T10:00:00Z")),
        task("doc12", 2, annotation(4, "dog", "2026-01-02T10:00:00Z")),
    ]
    done = bring_in_answers(checkpoint, export(tmp_path, project), label_map={n: i for i, n in enumerate(NAMES)})
    assert sorted(done.labelled.tolist()) == [11, 12]
    assert (done.corrected, done.unchanged, done.kept) == (["doc9"], 1, [])
    # The history is part of the checkpoint, which still loads with weights_only=True.
    raw = torch.load(checkpoint, weights_only=True)
    (row,) = raw["callbacks"]["ActiveLearningCallback"]["annotator"]["corrections"]
    assert {k: row[k] for k in ("id", "step", "label", "new", "by", "updated_at")} == {
        "id": "doc9",
        "step": 1,
        "label": 0,
        "new": 2,
        "by": "rev@example.org",
        "updated_at": "2026-01-02T09:30:00Z",
    }
    state = load_label_state(checkpoint)
    assert state.ledger.annotations == {5: 1, 9: 2, 11: 0, 12: 1}
    assert int(state.ledger.acquired_at[9]) == 1, "a correction keeps the step the item was labelled at"
    assert state.pending_ids() == []


def test_a_change_made_here_later_wins_over_the_older_answer_in_the_project(tmp_path):
    checkpoint = make_checkpoint(tmp_path)
    project = export(tmp_path, ROUND1[:2])
    labels = ["--labels", ",".join(NAMES)]
    assert main(["import", str(checkpoint), str(project), *labels]) == 0
    assert main(["relabel", str(checkpoint), "doc9", "bird", *labels, "--by", "lead"]) == 0
    assert main(["unlabel", str(checkpoint), "doc5", "--by", "lead"]) == 0
    before = load_label_state(checkpoint)
    done = bring_in_answers(checkpoint, project, label_map={n: i for i, n in enumerate(NAMES)})
    assert (done.labelled.numel(), done.corrected, done.unchanged, sorted(done.kept)) == (0, [], 0, ["doc5", "doc9"])
    after = load_label_state(checkpoint)
    assert after.ledger.annotations == before.ledger.annotations == {9: 2}
    assert [(row["id"], row["label"], row["new"], row["by"]) for row in after.history] == [
        ("doc9", 0, 2, "lead"),
        ("doc5", 1, None, "lead"),
    ]
    # A reviewer's change made in Label Studio after the relabel is a correction again.
    later = task("doc9", 1, annotation(2, "dog", "2999-01-01T00:00:00Z"))
    done = bring_in_answers(checkpoint, export(tmp_path, [later]), label_map={n: i for i, n in enumerate(NAMES)})
    assert done.corrected == ["doc9"]
    assert load_label_state(checkpoint).ledger.annotations == {9: 1}


def test_status_says_where_the_query_is_the_budget_left_and_what_to_run_next(tmp_path, capsys):
    annotator = {
        "scores": {},
        "query_file": "runs/version_0/annotation/query-step001.json",
        "label_budget": 10,
        "label_names": NAMES,
        "corrections": [],
    }
    checkpoint = make_checkpoint(
        tmp_path, callbacks={"ActiveLearningCallback": {"steps_done": 1, "history": [], "annotator": annotator}}
    )
    assert main(["status", str(checkpoint)]) == 0
    text = capsys.readouterr().out
    assert "query file: runs/version_0/annotation/query-step001.json" in text
    assert "label budget: 10, 4 left" in text, "3 labelled and 3 pending of 10"
    assert "next: import the tasks runs/version_0/annotation/query-step001.json into the Label Studio project" in text
    assert f"lightning-bal import {checkpoint} EXPORT.json --labels cat,dog,bird" in text
    answered = export(tmp_path, [*ROUND1[:2], task("doc11", 1, annotation(5, "cat", "2026-01-01T10:00:00Z"))])
    assert main(["import", str(checkpoint), str(answered), "--labels", "cat,dog,bird"]) == 0
    capsys.readouterr()
    assert main(["status", str(checkpoint), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["next"] == (
        f"resume training on the answers: trainer.fit(model, datamodule=dm, ckpt_path={str(checkpoint)!r})"
    )
    assert (status["budget_left"], status["pending"]) == (4, 0)


@pytest.mark.parametrize("command", ["--help", "status"])
def test_the_command_line_starts_without_lightning(tmp_path, command):
    """Startup time is import time: `--help` loads neither torch nor Lightning, `status` torch only."""
    checkpoint = make_checkpoint(tmp_path)
    code = (
        "import sys\nfrom lightning_bal.annotation.cli import main\n"
        f"try:\n    main([{command!r}, {str(checkpoint)!r}] if {command!r} == 'status' else [{command!r}])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'lightning', 'lightning.pytorch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.strip().splitlines()[-1]
    assert loaded == ("[]" if command == "--help" else "['torch']")


def test_a_corrected_answers_file_records_who_gave_it(tmp_path):
    checkpoint = make_checkpoint(tmp_path)
    answers = tmp_path / "answers.csv"
    answers.write_text("id,step,label\ndoc5,1,1\ndoc9,1,0\n")
    assert main(["import", str(checkpoint), str(answers)]) == 0
    answers.write_text("id,step,label\ndoc5,1,1\ndoc9,1,2\n")  # a reviewer fixed doc9 in the spreadsheet
    assert main(["import", str(checkpoint), str(answers), "--by", "reviewer"]) == 0
    (row,) = load_label_state(checkpoint).history
    assert (row["id"], row["label"], row["new"], row["by"], row["updated_at"]) == ("doc9", 0, 2, "reviewer", None)
