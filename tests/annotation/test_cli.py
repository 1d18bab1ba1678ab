"""The `lightning-bal` command line on a checkpoint: status, export, import; bad input changes nothing."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_bal import ActiveDataModule
from lightning_bal.annotation import load_label_state
from lightning_bal.annotation.checkpoint_entries import status_path, temporary_path
from lightning_bal.annotation.cli import main
from tests.helpers.models import blobs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checkpoint(tmp_path):
    dm = ActiveDataModule(blobs(15), ids=[f"doc{i}" for i in range(15)], seed=0)
    dm.label([0, 1, 2])
    dm.query([5, 9, 11], new_step=True)
    path = tmp_path / "run.ckpt"
    callback = {"steps_done": 1, "history": [{"active/val_acc": 0.5}], "annotator": {"scores": {"doc9": 0.25}}}
    torch.save({"ActiveDataModule": dm.state_dict(), "callbacks": {"ActiveLearningCallback": callback}}, path)
    return path


def test_status(checkpoint, capsys):
    assert main(["status", str(checkpoint)]) == 0
    text = capsys.readouterr().out
    assert "15 items: 3 labelled (0 by annotators), 12 in the pool" in text
    assert "step 1; pending query: 3 items ['doc5', 'doc9', 'doc11']" in text
    assert main(["status", str(checkpoint), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["last_metrics"] == {"active/val_acc": 0.5}
    assert status["steps_done"] == 1


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_export_then_import(checkpoint, tmp_path, suffix):
    query = tmp_path / f"query{suffix}"
    assert main(["export", str(checkpoint), str(query)]) == 0
    if suffix == ".csv":
        rows = list(csv.DictReader(query.open()))
        assert [(r["id"], r["step"], r["score"]) for r in rows] == [
            ("doc5", "1", ""),
            ("doc9", "1", "0.25"),
            ("doc11", "1", ""),
        ]
        rows[1]["label"] = "2"
        with query.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        rows = json.loads(query.read_text())
        rows[1]["label"] = 2
        query.write_text(json.dumps(rows))
    assert main(["import", str(checkpoint), str(query)]) == 0
    state = load_label_state(checkpoint)
    assert state.ledger.annotations == {9: 2}
    assert state.pending_ids() == ["doc5", "doc11"]
    checkpoint_keys = torch.load(checkpoint, weights_only=True)
    assert "callbacks" in checkpoint_keys, "the rest of the checkpoint is kept"


def test_export_label_studio(checkpoint, tmp_path):
    tasks = tmp_path / "tasks.json"
    args = ["export", str(checkpoint), str(tasks), "--format", "label_studio", "--data-key", "text"]
    assert main([*args, "--data-prefix", "s3://docs/"]) == 0
    data = [t["data"] for t in json.loads(tasks.read_text())]
    assert data[1] == {"text": "s3://docs/doc9", "lbal_id": "doc9", "lbal_step": 1, "lbal_score": 0.25}


@pytest.mark.parametrize(
    ("content", "extra", "match"),
    [
        ('[{"id": "doc99", "step": 1, "label": 1}]', [], "unknown ids"),
        ('[{"id": "doc1", "step": 1, "label": 1}]', [], "\\['doc1'\\] that are already\\s+labelled"),
        ('[{"id": "doc3", "step": 1, "label": 1}]', [], "\\['doc3'\\], which were\\s+not\\s+queried"),
        ('[{"id": "doc5", "step": 1, "label": 7}]', [], "classes in"),
        ('[{"id": "doc5", "step": 1, "label": 1}', [], "truncated"),
        ('[{"id": "doc5", "step": 2, "label": 1}]', [], "step\\(s\\) \\[2\\]: it belongs to another run"),
        ('[{"data": {"lbal_id": "doc5", "lbal_step": 1}, "annotations": []}]', ["--labels", "a,b"], "not in"),
    ],
)
def test_bad_answers_exit_1_and_leave_the_checkpoint_alone(checkpoint, tmp_path, capsys, content, extra, match):
    answers = tmp_path / "answers.json"
    answers.write_text(content)
    before = checkpoint.read_bytes()
    if match == "not in":  # a Label Studio export whose choice is outside the label map
        rows = json.loads(content)
        rows[0]["annotations"] = [{"id": 1, "result": [{"type": "choices", "value": {"choices": ["zebra"]}}]}]
        answers.write_text(json.dumps(rows))
        match = "label map"
    assert main(["import", str(checkpoint), str(answers), *extra]) == 1
    assert re.search(match, capsys.readouterr().err)
    assert checkpoint.read_bytes() == before


@pytest.mark.slow
def test_console_script_runs_as_a_module(checkpoint):
    result = subprocess.run(
        [sys.executable, "-m", "lightning_bal.annotation.cli", "status", str(checkpoint)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "pending query: 3 items" in result.stdout


KILLED_MID_WRITE = """
import os, signal, sys, torch
from lightning_bal.annotation.cli import main

def save_then_die(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is whole, the rename never happens

real_save, torch.save = torch.save, save_then_die
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_a_killed_import_leaves_the_checkpoint_and_no_litter_after_the_next_write(checkpoint, tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text('[{"id": "doc9", "step": 1, "label": 2}]')
    before = checkpoint.read_bytes()
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_WRITE, "import", str(checkpoint), str(answers)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert checkpoint.read_bytes() == before
    litter = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert litter == [temporary_path(checkpoint).name], "the killed write leaves its one fixed-name temporary"
    assert main(["import", str(checkpoint), str(answers)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [status_path(checkpoint).name, "answers.json", "run.ckpt"]
    assert load_label_state(checkpoint).ledger.annotations == {9: 2}


STATUS_WITHOUT_TORCH = """
import sys
from lightning_bal.annotation.cli import main

code = main(sys.argv[1:])
print("torch imported:", "torch" in sys.modules)
sys.exit(code)
"""


def run_status(*args):
    return subprocess.run(
        [sys.executable, "-c", STATUS_WITHOUT_TORCH, "status", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_status_reads_the_saved_summary_without_torch_and_says_the_same(checkpoint, tmp_path, capsys, flags):
    answers = tmp_path / "answers.json"
    answers.write_text('[{"id": "doc9", "step": 1, "label": 2}]')
    assert main(["import", str(checkpoint), str(answers)]) == 0
    assert main(["relabel", str(checkpoint), "doc9", "1", "--by", "ann"]) == 0
    capsys.readouterr()
    fast = run_status(checkpoint, *flags)
    assert fast.returncode == 0, fast.stderr
    assert fast.stdout.endswith("torch imported: False\n")
    status_path(checkpoint).unlink()
    assert main(["status", str(checkpoint), *flags]) == 0
    assert fast.stdout.removesuffix("torch imported: False\n") == capsys.readouterr().out


@pytest.mark.slow
def test_a_summary_out_of_step_with_its_checkpoint_is_not_used(checkpoint):
    state = load_label_state(checkpoint)
    state.save(checkpoint)
    assert status_path(checkpoint).is_file()
    state.ledger.answer([5], [1])
    saved = {**state.checkpoint["ActiveDataModule"], **state.ledger.state_dict()}
    torch.save({**state.checkpoint, "ActiveDataModule": saved}, checkpoint)  # not through `save`
    slow = run_status(checkpoint)
    assert slow.returncode == 0, slow.stderr
    assert "pending query: 2 items ['doc9', 'doc11']" in slow.stdout
    assert slow.stdout.endswith("torch imported: True\n")
    status_path(checkpoint).write_text("{torn")
    assert "pending query: 2 items" in run_status(checkpoint).stdout
    state.save(checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])  # torn after its summary was written
    torn = run_status(checkpoint)
    assert torn.returncode == 1
    assert "to be a readable checkpoint" in torn.stderr
