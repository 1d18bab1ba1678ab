"""Several annotators per item through `import` (export files) and `sync` (a stand-in Label Studio): every answer
kept, majority / Dawid-Skene reconciliation, ties and disagreements back in the queue, kappa per step."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from lightning_bal.annotation import QueryFiles, load_label_state
from lightning_bal.annotation.agreement import log_agreement
from lightning_bal.annotation.consensus import cohen_kappa, fleiss_kappa
from lightning_bal.annotation.label_studio_api import LabelStudioClient
from lightning_bal.annotation.sync import bring_in_answers, import_answers, sync_label_studio
from tests.annotation.fake_label_studio import PAT, FakeLabelStudio
from tests.bad_inputs.files import lightning_bal, make_checkpoint

NAMES = ["cat", "dog", "bird"]
LABELS = {name: index for index, name in enumerate(NAMES)}


def annotation(number: int, by: Any, choice: str) -> dict[str, Any]:
    return {
        "id": number,
        "completed_by": by,
        "created_at": f"2026-01-01T00:00:{number:02d}Z",
        "result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}],
    }


def export(path: Path, answers: dict[str, list[tuple[Any, str]]], step: int = 1) -> Path:
    """A Label Studio export: one task per item, its ``(annotator, choice)`` answers in the order given."""
    tasks, number = [], 0
    for item, given in answers.items():
        annotations = []
        for by, choice in given:
            number += 1
            annotations.append(annotation(number, by, choice))
        data = {"image": item, "lbal_id": item, "lbal_step": step}
        tasks.append({"id": len(tasks) + 1, "data": data, "annotations": annotations})
    path.write_text(json.dumps(tasks))
    return path


THREE = {
    "doc5": [("ann", "cat"), ("bob", "cat"), ("cy", "dog")],
    "doc9": [("ann", "dog"), ("bob", "bird"), ("cy", "cat")],
    "doc11": [("ann", "bird"), ("bob", "bird"), ("cy", "bird")],
}


def test_majority_labels_what_most_annotators_gave_and_keeps_every_answer(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    out = lightning_bal(
        "import", ckpt, export(tmp_path / "x.json", THREE), "--labels", "cat,dog,bird", "--on-disagreement", "majority"
    )
    assert "Imported 2 answers" in out
    state = load_label_state(ckpt)  # weights_only=True
    assert state.pending_ids() == ["doc9"]  # a three-way tie stays pending
    assert {state.ids[i]: label for i, label in state.ledger.annotations.items()} == {"doc5": 0, "doc11": 2}
    assert [(row["id"], row["by"], row["label"], row["step"]) for row in state.answers] == [
        (item, by, LABELS[choice], 1) for item, given in THREE.items() for by, choice in given
    ]
    assert all(row["time"] is not None and row["annotation"] is not None for row in state.answers)
    table = [[LABELS[choice] for _, choice in given] for given in THREE.values()]
    assert state.status()["agreement"] == [
        {"step": 1, "kappa": pytest.approx(fleiss_kappa(table)), "method": "fleiss", "annotators": 3, "items": 3}
    ]
    status = json.loads(lightning_bal("status", ckpt, "--json"))
    assert status["agreement"][0]["method"] == "fleiss"
    assert status["agreement"][0]["kappa"] == pytest.approx(fleiss_kappa(table))


def test_the_same_export_imported_twice_records_each_answer_once(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    path = export(tmp_path / "x.json", THREE)
    for _ in range(2):
        bring_in_answers(ckpt, path, label_map=LABELS, on_disagreement="majority")
    assert len(load_label_state(ckpt).answers) == 9


def test_first_skip_and_error_work_as_before_and_keep_every_answer(tmp_path):
    path = export(tmp_path / "x.json", THREE)
    first = make_checkpoint(tmp_path)
    assert import_answers(first, path, label_map=LABELS).tolist() == [5, 9, 11]
    state = load_label_state(first)
    assert state.ledger.annotations == {5: 0, 9: 1, 11: 2}  # the first answer wins
    assert len(state.answers) == 9
    assert (
        import_answers(first, path, output=tmp_path / "skip.ckpt", label_map=LABELS, on_disagreement="skip").numel()
        == 0
    )
    skip = make_checkpoint(tmp_path)
    import_answers(skip, path, label_map=LABELS, on_disagreement="skip")
    assert load_label_state(skip).pending_ids() == ["doc5", "doc9"]
    with pytest.raises(ValueError, match=r"annotations of task 'doc5' to agree, but got \['cat', 'cat', 'dog'\]"):
        import_answers(skip, path, label_map=LABELS, on_disagreement="error")


def test_two_annotators_agreement_is_cohens_kappa(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    given = {
        "doc5": [("ann", "cat"), ("bob", "cat")],
        "doc9": [("ann", "dog"), ("bob", "bird")],
        "doc11": [("ann", "bird"), ("bob", "bird")],
    }
    bring_in_answers(ckpt, export(tmp_path / "x.json", given), label_map=LABELS, on_disagreement="majority")
    state = load_label_state(ckpt)
    assert state.pending_ids() == ["doc9"]  # one against one
    assert state.status()["agreement"] == [
        {
            "step": 1,
            "kappa": pytest.approx(cohen_kappa([0, 1, 2], [0, 2, 2])),
            "method": "cohen",
            "annotators": 2,
            "items": 3,
        }
    ]


def test_requeue_sends_a_labelled_item_whose_answers_now_tie_back_to_the_queue(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    alone = {item: given[:1] for item, given in THREE.items()}
    bring_in_answers(ckpt, export(tmp_path / "one.json", alone), label_map=LABELS, on_disagreement="majority")
    assert load_label_state(ckpt).pending_ids() == []
    two = {item: given[:2] for item, given in THREE.items()}
    path = export(tmp_path / "two.json", two)
    kept = bring_in_answers(ckpt, path, tmp_path / "kept.ckpt", label_map=LABELS, on_disagreement="majority")
    assert kept.requeued == ()
    assert load_label_state(tmp_path / "kept.ckpt").ledger.annotations[9] == 1  # without the option: kept
    out = lightning_bal(
        "import", ckpt, path, "--labels", "cat,dog,bird", "--on-disagreement", "majority", "--requeue-disagreements"
    )
    assert "1 items went back to the queue (their answers disagree): ['doc9']" in out
    state = load_label_state(ckpt)
    assert state.pending_ids() == ["doc9"]
    assert 9 not in state.ledger.annotations
    assert state.history[-1]["id"] == "doc9"
    assert state.history[-1]["new"] is None
    assert state.history[-1]["label"] == 1
    assert "answers disagree" in state.history[-1]["source"]
    # The third annotator breaks the tie: doc9 is labelled again.
    done = bring_in_answers(
        ckpt,
        export(tmp_path / "three.json", THREE | {"doc9": [*two["doc9"], ("cy", "bird")]}),
        label_map=LABELS,
        on_disagreement="majority",
        requeue_disagreements=True,
    )
    assert done.labelled.tolist() == [9]
    assert load_label_state(ckpt).ledger.annotations[9] == 2


def test_majority_corrects_a_label_when_later_answers_outvote_it(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    given = {"doc5": [("ann", "dog")], "doc9": [("ann", "dog")], "doc11": [("ann", "bird")]}
    bring_in_answers(ckpt, export(tmp_path / "one.json", given), label_map=LABELS, on_disagreement="majority")
    more = {**given, "doc5": [("ann", "dog"), ("bob", "cat"), ("cy", "cat")]}
    done = bring_in_answers(ckpt, export(tmp_path / "more.json", more), label_map=LABELS, on_disagreement="majority")
    assert done.corrected == ["doc5"]
    state = load_label_state(ckpt)
    assert state.ledger.annotations[5] == 0
    assert (state.history[-1]["label"], state.history[-1]["new"], state.history[-1]["by"]) == (1, 0, "bob")


def test_dawid_skene_trusts_the_annotator_who_agrees_with_the_others(tmp_path):
    # ann and bob agree throughout; cy answers "cat" for everything. On doc9 cy's "cat" faces ann alone.
    ckpt = make_checkpoint(tmp_path)
    given = {
        "doc5": [("ann", "dog"), ("bob", "dog"), ("cy", "cat")],
        "doc9": [("ann", "bird"), ("cy", "cat")],
        "doc11": [("ann", "bird"), ("bob", "bird"), ("cy", "cat")],
    }
    path = export(tmp_path / "x.json", given)
    import_answers(ckpt, path, tmp_path / "majority.ckpt", label_map=LABELS, on_disagreement="majority")
    assert load_label_state(tmp_path / "majority.ckpt").pending_ids() == ["doc9"]
    import_answers(ckpt, path, label_map=LABELS, on_disagreement="dawid_skene")
    state = load_label_state(ckpt)
    assert state.pending_ids() == []
    assert state.ledger.annotations == {5: 1, 9: 2, 11: 2}


def test_dawid_skene_with_one_annotator_takes_their_answers(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    given = {"doc5": [("ann", "dog")], "doc9": [("ann", "bird")], "doc11": [("ann", "cat")]}
    import_answers(ckpt, export(tmp_path / "x.json", given), label_map=LABELS, on_disagreement="dawid_skene")
    state = load_label_state(ckpt)
    assert state.ledger.annotations == {5: 1, 9: 2, 11: 0}
    assert state.status()["agreement"] == []  # nothing answered twice


def test_csv_answers_are_kept_with_who_gave_them(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    answers = tmp_path / "answers.csv"
    answers.write_text("id,step,label\ndoc5,1,1\ndoc9,1,0\n")
    bring_in_answers(ckpt, answers, by="ann")
    assert [(row["id"], row["by"], row["label"], row["step"]) for row in load_label_state(ckpt).answers] == [
        ("doc5", "ann", 1, 1),
        ("doc9", "ann", 0, 1),
    ]


class Recorder:
    def __init__(self) -> None:
        self.logged: list[tuple[dict[str, float], int]] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.logged.append((metrics, step))


def test_the_resumed_callback_logs_the_newest_kappa_and_keeps_the_answers(tmp_path):
    ckpt = make_checkpoint(tmp_path)
    bring_in_answers(ckpt, export(tmp_path / "x.json", THREE), label_map=LABELS, on_disagreement="majority")
    checkpoint = torch.load(ckpt, weights_only=True)
    state = checkpoint["callbacks"]["ActiveLearningCallback"]
    recorder = Recorder()
    annotator = QueryFiles()
    annotator.on_load_checkpoint(SimpleNamespace(logger=None, loggers=[recorder]), state)
    kappa = state["annotator"]["agreement"][-1]["kappa"]
    assert recorder.logged == [({"annotation/kappa": kappa}, 1)]
    annotator.load_state_dict(state["annotator"])
    saved = annotator.state_dict()
    assert saved["answers"] == state["annotator"]["answers"]
    assert saved["agreement"] == state["annotator"]["agreement"]
    assert log_agreement(SimpleNamespace(loggers=[recorder]), {}) == {}


# ---------------------------------------------------------------- sync with a stand-in server


@pytest.fixture
def fake():
    server = FakeLabelStudio(NAMES)
    yield server
    server.stop()


def sync(ckpt: Path, fake: FakeLabelStudio, **kwargs: Any):
    return sync_label_studio(ckpt, LabelStudioClient(fake.url, PAT), "blobs", NAMES, **kwargs)


def annotate(fake: FakeLabelStudio, item: str, by: str, choice: str) -> None:
    fake.annotate(item, choice)
    task = next(t for t in fake.tasks[7] if t["data"]["lbal_id"] == item)
    task["annotations"][-1]["completed_by"] = {"id": 3, "email": by}


def test_sync_with_two_annotators_settles_by_majority_and_requeues_a_tie(tmp_path, fake):
    ckpt = make_checkpoint(tmp_path)
    assert sync(ckpt, fake).pushed == ["doc5", "doc9", "doc11"]
    for item, choice in (("doc5", "cat"), ("doc9", "dog"), ("doc11", "bird")):
        annotate(fake, item, "ann@example.org", choice)
    done = sync(ckpt, fake, on_disagreement="majority")
    assert (done.pulled, done.pending) == (["doc5", "doc9", "doc11"], [])
    for item, choice in (("doc5", "cat"), ("doc9", "bird"), ("doc11", "bird")):
        annotate(fake, item, "bob@example.org", choice)
    done = sync(ckpt, fake, on_disagreement="majority", requeue_disagreements=True)
    assert (done.pulled, done.pending, done.requeued, done.pushed) == ([], ["doc9"], ["doc9"], [])
    assert done.disagreements == ["doc9"]
    state = load_label_state(ckpt)
    assert len(state.answers) == 6
    assert {row["by"] for row in state.answers} == {"ann@example.org", "bob@example.org"}
    assert state.status()["agreement"][0]["method"] == "cohen"
    assert state.status()["agreement"][0]["kappa"] == pytest.approx(cohen_kappa([0, 1, 2], [0, 2, 2]))
    annotate(fake, "doc9", "cy@example.org", "bird")
    done = sync(ckpt, fake, on_disagreement="majority", requeue_disagreements=True)
    assert (done.pulled, done.pending, done.requeued) == (["doc9"], [], [])
    assert load_label_state(ckpt).ledger.annotations[9] == 2


def test_sync_with_three_annotators_by_dawid_skene(tmp_path, fake):
    ckpt = make_checkpoint(tmp_path)
    sync(ckpt, fake)
    for item, given in THREE.items():
        for by, choice in given:
            annotate(fake, item, by, choice)
    done = sync(ckpt, fake, on_disagreement="dawid_skene")
    state = load_label_state(ckpt)
    assert done.disagreements == ["doc5", "doc9"]
    assert state.ledger.annotations[5] == 0
    assert state.ledger.annotations[11] == 2
    assert len(state.answers) == 9
    assert state.status()["agreement"][0]["annotators"] == 3
    # Nothing new on the server: the next sync writes nothing.
    before = ckpt.read_bytes()
    sync(ckpt, fake, on_disagreement="dawid_skene")
    assert ckpt.read_bytes() == before


def test_sync_first_still_refuses_a_changed_answer(tmp_path, fake):
    ckpt = make_checkpoint(tmp_path)
    sync(ckpt, fake)
    annotate(fake, "doc5", "ann", "cat")
    sync(ckpt, fake)
    task = next(t for t in fake.tasks[7] if t["data"]["lbal_id"] == "doc5")
    task["annotations"][0]["result"][0]["value"]["choices"] = ["dog"]
    with pytest.raises(ValueError, match=r"answer for 'doc5' to agree with the label pulled before \('cat'\)"):
        sync(ckpt, fake)


def test_sync_command_line_takes_the_reconciliation_flags(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("LS_SEVERAL_TOKEN", PAT)
    ckpt = make_checkpoint(tmp_path)
    flags = ["--url", fake.url, "--project", "blobs", "--labels", ",".join(NAMES), "--token-env", "LS_SEVERAL_TOKEN"]
    lightning_bal("sync", ckpt, *flags)
    for item, choice in (("doc5", "cat"), ("doc9", "dog"), ("doc11", "bird")):
        annotate(fake, item, "ann", choice)
    lightning_bal("sync", ckpt, *flags, "--on-disagreement", "majority")
    annotate(fake, "doc9", "bob", "cat")
    out = lightning_bal("sync", ckpt, *flags, "--on-disagreement", "majority", "--requeue-disagreements")
    assert "1 items went back to the queue (answers disagree)." in out
    assert load_label_state(ckpt).pending_ids() == ["doc9"]
