"""`lightning-bal serve`, the Label Studio ML backend, against a stand-in Label Studio on 127.0.0.1: predictions from
the recorded guesses, answers by webhook into the journal and the checkpoint, background training, and crashes of the
server and of the training that lose no answer (the real server: tests/annotation/test_label_studio_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lightning_bal.annotation.checkpoint import load_label_state
from lightning_bal.annotation.checkpoint_entries import journal_path, read_journal, serve_summary_path
from lightning_bal.annotation.label_studio_api import LabelStudioClient
from lightning_bal.annotation.ml_backend import MLBackend
from lightning_bal.annotation.serve import make_server
from tests.annotation.fake_label_studio import PAT, FakeLabelStudio, config
from tests.bad_inputs.files import lightning_bal, make_checkpoint

NAMES = ["cat", "dog", "bird"]
TRAIN = [sys.executable, "-m", "tests.annotation.serve_train", "{checkpoint}", "{output}"]
ENV = "LS_SERVE_TEST_TOKEN"
ANY = type("Any", (), {"__eq__": lambda self, other: True})()


def event(
    item: str, choice: str, step: int = 1, action: str = "ANNOTATION_CREATED", number: int = 1, by: int = 1
) -> dict:
    """A webhook body as Label Studio 1.23 posts it for annotation ``number`` submitted in the UI by user ``by``."""
    result = [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]
    return {
        "action": action,
        "project": {"id": 7},
        "task": {"id": 100 + number, "project": 7, "data": {"image": item, "lbal_id": item, "lbal_step": step}},
        "annotation": {
            "id": number,
            "completed_by": by,
            "result": result,
            "was_cancelled": False,
            "created_at": f"2026-01-01T00:00:{number:02d}Z",
            "updated_at": f"2026-01-01T00:01:{number:02d}Z",
        },
    }


def post(url: str, route: str, body: Any) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}{route}", data=raw, method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for(condition, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Served:
    """A backend over a fresh checkpoint, listening on a free port in a thread, connected to a stand-in server."""

    def __init__(
        self,
        folder: Path,
        fake: FakeLabelStudio,
        train: list[str] | None = None,
        threshold: int = 2,
        on_disagreement: str = "first",
        requeue: bool = False,
    ):
        self.path = make_checkpoint(folder)
        self.lines: list[str] = []
        client = LabelStudioClient(fake.url, PAT)
        self.backend = MLBackend(
            self.path,
            NAMES,
            train or TRAIN,
            threshold,
            client,
            7,
            token_env=ENV,
            log=self.lines.append,
            on_disagreement=on_disagreement,
            requeue_disagreements=requeue,
        )
        self.server = make_server(self.backend, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def trained(self, count: int) -> bool:
        # What `status` reads, written after the new checkpoint: the backend's memory holds the new marker while the
        # checkpoint is still being saved, and a test that read it then would load the previous checkpoint.
        summary = serve_summary_path(self.path)
        if not summary.is_file():
            return False
        shown = json.loads(summary.read_text())
        return not shown["training"] and shown["trainings"] == count

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.backend.close()


@pytest.fixture
def fake(monkeypatch):
    server = FakeLabelStudio(NAMES)
    monkeypatch.setenv(ENV, PAT)
    yield server
    server.stop()


@pytest.fixture
def served(tmp_path, fake):
    backend = Served(tmp_path, fake)
    yield backend
    backend.stop()


def test_health_setup_and_predictions_come_from_the_recorded_guesses(served):
    with urllib.request.urlopen(f"{served.url}/health", timeout=30) as response:
        assert json.loads(response.read())["status"] == "UP"
    status, answer = post(served.url, "/setup", {"project": "7.1700000000", "schema": config(NAMES)})
    assert (status, answer) == (200, {"model_version": "lightning_bal-step1-0"})
    tasks = [{"id": 1, "data": {"lbal_id": "doc9"}}, {"id": 2, "data": {"lbal_id": "doc0"}}, {"id": 3, "data": {}}]
    status, answer = post(served.url, "/predict", {"tasks": tasks, "project": "7.1700000000"})
    assert status == 200
    first, labelled, foreign = answer["results"]
    # doc9: pending, guessed class 2 with its acquisition score; doc0 is labelled and the third is no task of ours.
    assert first["result"][0]["value"] == {"choices": ["bird"]}
    assert (first["score"], first["model_version"]) == (0.25, "lightning_bal-step1-0")
    assert (labelled["result"], foreign["result"]) == ([], [])


def test_an_answer_goes_to_the_journal_then_the_checkpoint_once(served):
    assert post(served.url, "/webhook", event("doc5", "dog")) == (201, {"status": "labelled", "model_version": ANY})
    state = load_label_state(served.path)
    assert state.pending_ids() == ["doc9", "doc11"]
    assert state.ledger.annotations[5] == 1
    (entry,) = read_journal(journal_path(served.path))
    assert (entry["id"], entry["label"], entry["step"], entry["by"]) == ("doc5", 1, 1, "1")
    # A second annotator disagrees: the answer is kept (journal and checkpoint), the first one stays the label.
    status = post(served.url, "/webhook", event("doc5", "cat", number=2, by=2))[1]["status"]
    assert status == "recorded; the label stays 'dog' (first)"
    state = load_label_state(served.path)
    assert state.ledger.annotations[5] == 1
    assert [(row["by"], row["label"], row["annotation"]) for row in state.answers] == [("1", 1, 1), ("2", 0, 2)]
    assert [row["kappa"] for row in state.status()["agreement"]] == [0.0]
    # Label Studio sends the event again (a retry, an update without change): recorded once.
    assert post(served.url, "/webhook", event("doc5", "dog", action="ANNOTATION_UPDATED"))[1]["status"] == "unchanged"
    assert post(served.url, "/webhook", event("doc5", "cat", number=2, by=2))[1]["status"] == "unchanged"
    assert len(read_journal(journal_path(served.path))) == 2
    # A reviewer changes the answer in Label Studio: a correction, with the earlier label kept in the history.
    assert post(served.url, "/webhook", event("doc5", "bird", action="ANNOTATION_UPDATED"))[1]["status"] == "corrected"
    (row,) = load_label_state(served.path).history
    assert (row["id"], row["label"], row["new"], row["updated_at"]) == ("doc5", 1, 2, "2026-01-01T00:01:01Z")


# Three annotators answer doc5 in turn (dog, cat, dog): the status of each answer and the label after it (None:
# pending), by reconciliation, with labelled items whose answers now disagree sent back to the queue.
RECONCILED = [
    ("first", ["labelled", "recorded; the label stays 'dog' (first)", "recorded; the label stays 'dog' (first)"], 1),
    ("majority", ["labelled", "requeued (its answers disagree)", "labelled"], 1),
    ("dawid_skene", ["labelled", "requeued (its answers disagree)", "labelled"], 1),
    ("skip", ["labelled", "requeued (its answers disagree)", "recorded; 'doc5' stays pending (its answers"], None),
]


@pytest.mark.parametrize(("mode", "statuses", "final"), RECONCILED)
def test_several_annotators_are_reconciled_requeued_and_replayed_from_the_journal(
    tmp_path, fake, mode, statuses, final
):
    served = Served(tmp_path, fake, threshold=99, on_disagreement=mode, requeue=True)
    try:
        before = served.path.read_bytes()
        seen, labels = [], []
        for number, (choice, by) in enumerate([("dog", 1), ("cat", 2), ("dog", 3)], start=1):
            seen.append(post(served.url, "/webhook", event("doc5", choice, number=number, by=by))[1]["status"])
            labels.append(load_label_state(served.path).ledger.annotations.get(5))
        assert [status[: len(expected)] for status, expected in zip(seen, statuses, strict=True)] == statuses
        assert labels == [1, 1 if mode == "first" else None, final]
        state = load_label_state(served.path)
        assert ("doc5" in state.pending_ids()) == (final is None)
        # Every answer is kept, and the agreement of step 1 (three annotators on one item) is Fleiss' kappa.
        assert [row["by"] for row in state.answers] == ["1", "2", "3"]
        (step1,) = state.status()["agreement"]
        assert (step1["step"], step1["method"], step1["annotators"]) == (1, "fleiss", 3)
        requeued = [row for row in state.history if row["new"] is None]
        assert len(requeued) == (0 if mode == "first" else 1)
    finally:
        served.stop()
    # The checkpoint is lost back to before the answers: the journal alone brings back the same state.
    answers, agreement = state.answers, state.status()["agreement"]
    served.path.write_bytes(before)
    again = MLBackend(served.path, NAMES, TRAIN, 99, on_disagreement=mode, requeue_disagreements=True)
    replayed = load_label_state(served.path)
    assert replayed.answers == answers
    assert replayed.status()["agreement"] == agreement
    assert replayed.ledger.annotations == state.ledger.annotations
    assert replayed.pending_ids() == state.pending_ids()
    again.close()


def test_without_requeue_a_tie_leaves_the_label_and_an_update_of_an_answer_replaces_it(served_majority):
    served = served_majority
    assert post(served.url, "/webhook", event("doc5", "dog"))[1]["status"] == "labelled"
    status = post(served.url, "/webhook", event("doc5", "cat", number=2, by=2))[1]["status"]
    assert status == "recorded; its answers disagree, the label stays"
    assert load_label_state(served.path).ledger.annotations[5] == 1
    # The second annotator changes their answer to agree: still one answer each, no correction.
    status = post(served.url, "/webhook", event("doc5", "dog", 1, "ANNOTATION_UPDATED", 2, 2))
    assert status[1]["status"] == "recorded; the label stays 'dog' (majority)"
    # The first annotator changes theirs: one vote each again, the label stays; then both say bird: a correction.
    post(served.url, "/webhook", event("doc5", "bird", action="ANNOTATION_UPDATED", number=1))
    assert load_label_state(served.path).ledger.annotations[5] == 1
    status = post(served.url, "/webhook", event("doc5", "bird", 1, "ANNOTATION_UPDATED", 2, 2))
    assert status[1]["status"] == "corrected"
    state = load_label_state(served.path)
    assert state.ledger.annotations[5] == 2
    assert [(row["label"], row["new"], row["by"]) for row in state.history] == [(1, 2, "2")]


@pytest.fixture
def served_majority(tmp_path, fake):
    backend = Served(tmp_path, fake, threshold=99, on_disagreement="majority")
    yield backend
    backend.stop()


@pytest.mark.slow
def test_threshold_starts_training_whose_query_is_pushed_and_predicted(served, fake):
    served.backend.push()
    assert [t["data"]["lbal_id"] for t in fake.tasks[7]] == ["doc5", "doc9", "doc11"]
    post(served.url, "/webhook", event("doc5", "dog"))
    assert served.backend.training is None  # 1 of 2 answers
    post(served.url, "/webhook", event("doc9", "cat", number=2))
    wait_for(lambda: served.trained(1))
    state = load_label_state(served.path)
    # The new query: the unanswered doc11 again, and two items of the pool; the answers stay labelled.
    assert (state.ledger.step, state.pending_ids()) == (2, ["doc11", "doc3", "doc4"])
    assert (state.ledger.annotations[5], state.ledger.annotations[9]) == (1, 0)
    wait_for(lambda: len(fake.tasks[7]) == 6)
    assert [(t["data"]["lbal_id"], t["data"]["lbal_step"]) for t in fake.tasks[7][3:]] == [
        ("doc4", 2),
        ("doc3", 2),
        ("doc11", 2),
    ]  # most informative first
    results = post(served.url, "/predict", {"tasks": [{"data": {"lbal_id": "doc4"}}]})[1]["results"]
    assert results[0]["model_version"] == "lightning_bal-step2-1"
    assert results[0]["score"] == pytest.approx(0.7)


@pytest.mark.slow
def test_answers_given_during_training_are_folded_into_its_checkpoint(tmp_path, fake):
    gate = tmp_path / "go"
    served = Served(tmp_path, fake, train=[*TRAIN, "--wait-for", str(gate)])
    try:
        post(served.url, "/webhook", event("doc5", "dog"))
        post(served.url, "/webhook", event("doc9", "cat", number=2))
        wait_for(lambda: served.backend.training is not None)
        # Training reads its copy; meanwhile an answer arrives, and a predict is not held up by training.
        assert post(served.url, "/webhook", event("doc11", "bird", number=3))[1]["status"] == "labelled"
        assert post(served.url, "/predict", {"tasks": []})[0] == 200
        gate.touch()
        wait_for(lambda: served.trained(1))
        state = load_label_state(served.path)
        assert {state.ids[i]: v for i, v in state.ledger.annotations.items()} == {"doc5": 1, "doc9": 0, "doc11": 2}
        assert state.pending_ids() == ["doc3", "doc4"]
        assert served.backend.waiting() == 1  # doc11 came after the training's copy
    finally:
        served.stop()


@pytest.mark.slow
def test_a_failed_training_loses_nothing_and_the_next_answer_tries_again(tmp_path, fake):
    served = Served(tmp_path, fake, train=[*TRAIN, "--fail"], threshold=1)
    try:
        post(served.url, "/webhook", event("doc5", "dog"))
        wait_for(lambda: served.backend.last_training is not None and served.backend.training is None)
        assert served.backend.last_training.startswith("failed: the training command failed (exit status 1)")
        state = load_label_state(served.path)
        assert (state.ledger.step, state.ledger.annotations[5]) == (1, 1)
        served.backend.train = TRAIN
        post(served.url, "/webhook", event("doc9", "cat", number=2))
        wait_for(lambda: served.trained(1))
        assert load_label_state(served.path).ledger.annotations[9] == 0
    finally:
        served.stop()


def test_a_crash_between_the_journal_and_the_checkpoint_is_recovered_on_start(tmp_path, fake, monkeypatch):
    path = make_checkpoint(tmp_path)
    backend = MLBackend(path, NAMES, TRAIN, 5, log=lambda line: None)
    backend.record("doc5", 1, 1, "1", None, "ANNOTATION_CREATED")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("lightning_bal.annotation.checkpoint.LabelState.save", crash)
    backend.record("doc9", 0, 1, "1", None, "ANNOTATION_CREATED")
    monkeypatch.undo()
    assert 9 not in load_label_state(path).ledger.annotations  # only the journal holds it
    again = MLBackend(path, NAMES, TRAIN, 5, log=lambda line: None)
    assert {again.state.ids[i]: v for i, v in again.state.ledger.annotations.items()} == {"doc5": 1, "doc9": 0}
    assert load_label_state(path).ledger.annotations[9] == 0
    assert again.marker["journal"] == 2


def start_cli(path: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    log = path.with_name(f"serve-{time.monotonic_ns()}.log")
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "lightning_bal.annotation.cli", "serve", str(path), "--port", "0", *flags],
            stderr=handle,
        )
    wait_for(lambda: "listening at" in log.read_text() or process.poll() is not None)
    text = log.read_text()
    assert "listening at" in text, f"serve did not start: {text}"
    return process, text.split("listening at ")[1].split()[0]


def kill_trainings(folder: Path) -> int:
    found = subprocess.run(["pgrep", "-f", f"serve_train {folder}"], capture_output=True, text=True).stdout.split()
    for pid in found:
        os.kill(int(pid), signal.SIGKILL)
    return len(found)


@pytest.mark.slow
def test_killed_server_and_training_lose_no_answer(tmp_path):
    path = make_checkpoint(tmp_path)
    gate = tmp_path / "go"
    train = " ".join([*TRAIN, "--wait-for", str(gate)])
    flags = ("--labels", ",".join(NAMES), "--train", train, "--threshold", "2")
    process, url = start_cli(path, *flags)
    try:
        post(url, "/webhook", event("doc5", "dog"))
        post(url, "/webhook", event("doc9", "cat", number=2))  # a training starts and waits at the gate
        wait_for(lambda: any(tmp_path.glob(".run.ckpt.lbal-train-*-in.ckpt")))
        post(url, "/webhook", event("doc11", "bird", number=3))
    finally:
        process.kill()  # SIGKILL: no clean-up, its training is orphaned
        process.wait()
        kill_trainings(tmp_path)
    assert len(read_journal(journal_path(path))) == 3
    state = load_label_state(path)
    assert {state.ids[i]: v for i, v in state.ledger.annotations.items()} == {"doc5": 1, "doc9": 0, "doc11": 2}
    # Restarted, serve trains on the answers that were waiting for the killed training.
    process, url = start_cli(path, *flags)
    try:
        # The training itself is killed: the checkpoint keeps every answer.
        wait_for(lambda: kill_trainings(tmp_path) > 0)
        wait_for(lambda: "failed" in lightning_bal("status", path))
        state = load_label_state(path)
        assert (state.ledger.step, len(state.ledger.annotations)) == (1, 3)
        text = lightning_bal("status", path)
        assert f"3 in all in the journal {journal_path(path)}" in text
        assert "answers waiting: 3 since the last training (it starts at 2)" in text
        assert "lightning-bal serve" in text.split("next: ")[1]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        kill_trainings(tmp_path)


def test_a_journal_line_cut_short_by_a_crash_is_left_out_and_a_bad_one_named(tmp_path):
    journal = tmp_path / "run.ckpt.answers.jsonl"
    whole = json.dumps({"id": "doc5", "label": 1, "step": 1})
    journal.write_text(f'{whole}\n{{"id": "doc9", "lab')  # never acknowledged: written without its newline
    assert read_journal(journal) == [json.loads(whole)]
    journal.write_text(f'{whole}\n{{"id": "doc9"}}\n')
    with pytest.raises(ValueError, match=r"line 2 of the answer journal .* to be an answer \(id, label, step\)"):
        read_journal(journal)
    journal.write_text(f"{whole}\nnot json\n")
    with pytest.raises(ValueError, match=r"line 2 of the answer journal .* to be JSON"):
        read_journal(journal)


def test_status_names_the_query_file_budget_and_answers_waiting_or_says_none_is_recorded(tmp_path, served):
    (tmp_path / "plain").mkdir()
    plain = make_checkpoint(tmp_path / "plain")
    text = lightning_bal("status", plain)
    assert "query file: none recorded (write one with `lightning-bal export`)" in text
    assert "label budget: not recorded by the run (the callback has no `label_budget`)" in text
    assert "answers waiting: none (no `lightning-bal serve` journal)" in text
    served.backend.command = "lightning-bal serve run.ckpt --labels cat,dog,bird --train T"
    post(served.url, "/webhook", event("doc5", "dog"))
    status = json.loads(lightning_bal("status", served.path, "--json"))
    assert (status["serve"]["waiting"], status["serve"]["threshold"], status["serve"]["training"]) == (1, 2, False)
    assert status["serve"]["journal"] == str(journal_path(served.path))
    assert status["next"].startswith("keep `lightning-bal serve run.ckpt --labels cat,dog,bird --train T` running")
