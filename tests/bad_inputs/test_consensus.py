"""Several annotators per item with bad inputs: the consensus functions' tables, unknown reconciliations, malformed
annotators, conflicting answers and malformed recorded answers. Each refused with the argument, flag or field named,
the inputs, the checkpoint's folder and the server's tasks unchanged."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lightning_bal.annotation import (
    LabelState,
    cohen_kappa,
    dawid_skene,
    fleiss_kappa,
    import_answers,
    load_label_state,
    majority_vote,
)
from lightning_bal.annotation.label_studio import AnnotatorAnswer
from lightning_bal.annotation.label_studio_api import LabelStudioClient
from lightning_bal.annotation.sync import sync_label_studio
from tests.annotation.fake_label_studio import PAT, FakeLabelStudio
from tests.bad_inputs.files import PENDING, CliError, Folder, lightning_bal, make_checkpoint
from tests.bad_inputs.harness import accepts, refuses

NAMES = ["cat", "dog", "bird"]
LABELS = {name: index for index, name in enumerate(NAMES)}

# (entry, call on a table, the table, error, message)
TABLE_CASES: list[tuple[str, Callable[[Any], Any], Any, type[Exception], str]] = [
    ("majority_vote", majority_vote, "0,1", TypeError, r"`answers` to be a table .* got str"),
    ("majority_vote", majority_vote, 5, TypeError, r"`answers` to be a table .* got int"),
    ("majority_vote", majority_vote, [0, 1], TypeError, r"every row of argument `answers` to be a sequence .* row 0"),
    ("majority_vote", majority_vote, [[0, 1], [0]], ValueError, r"one cell per annotator \(2\), but row 1 has 1"),
    ("majority_vote", majority_vote, [[0, -1]], ValueError, r"`answers` to hold class indices .* row 0 holds -1"),
    ("majority_vote", majority_vote, [[0, True]], ValueError, r"`answers` to hold class indices .* holds True"),
    ("majority_vote", majority_vote, [[0, 1.0]], ValueError, r"`answers` to hold class indices .* holds 1.0"),
    ("majority_vote", majority_vote, [["cat"]], ValueError, r"`answers` to hold class indices .* holds 'cat'"),
    ("majority_vote", lambda t: majority_vote(t, num_classes=2), [[0, 2]], ValueError, r"below `num_classes` \(2\)"),
    ("majority_vote", lambda t: majority_vote(t, num_classes=0), [[0]], ValueError, r"`num_classes`.* got 0"),
    ("dawid_skene", dawid_skene, [[0, None], ["1", 0]], ValueError, r"`answers` .* row 1 holds '1'"),
    ("dawid_skene", lambda t: dawid_skene(t, max_iterations=0), [[0, 1]], ValueError, r"`max_iterations`.* got 0"),
    ("dawid_skene", lambda t: dawid_skene(t, tolerance=0.0), [[0, 1]], ValueError, r"`tolerance` to be a positive"),
    ("dawid_skene", lambda t: dawid_skene(t, tolerance=float("nan")), [[0]], ValueError, r"`tolerance` .* nan"),
    ("dawid_skene", lambda t: dawid_skene(t, smoothing=-1), [[0, 1]], ValueError, r"`smoothing` to be a positive"),
    ("dawid_skene", lambda t: dawid_skene(t, smoothing=True), [[0, 1]], ValueError, r"`smoothing` .* got True"),
    ("dawid_skene", lambda t: dawid_skene(t, num_classes=1), [[0, 1]], ValueError, r"below `num_classes` \(1\)"),
    ("fleiss_kappa", fleiss_kappa, [[0, None], [None, 1]], ValueError, r"at least one item with two or more answers"),
    ("fleiss_kappa", fleiss_kappa, [], ValueError, r"at least one item with two or more answers"),
    ("fleiss_kappa", fleiss_kappa, [[0, 1], [1, 2, 0]], ValueError, r"one cell per annotator \(2\), but row 1"),
    ("cohen_kappa", lambda t: cohen_kappa(*t), ([0, 1], [0]), ValueError, r"`first` and `second` to answer the same"),
    ("cohen_kappa", lambda t: cohen_kappa(*t), ([0, None], [None, 1]), ValueError, r"both answer at least one item"),
    ("cohen_kappa", lambda t: cohen_kappa(*t), ([], []), ValueError, r"both answer at least one item"),
    ("cohen_kappa", lambda t: cohen_kappa(*t), ("01", [0, 1]), TypeError, r"`first` to be a sequence .* got str"),
    ("cohen_kappa", lambda t: cohen_kappa(*t), ([0, 1], [0, 1.5]), ValueError, r"`second` .* item 1 holds 1.5"),
    ("cohen_kappa", lambda t: cohen_kappa(*t), ([0, -2], [0, 1]), ValueError, r"`first` .* item 1 holds -2"),
]


@pytest.mark.parametrize(("name", "call", "table", "error", "match"), TABLE_CASES)
def test_consensus_functions_refuse_bad_tables(name, call, table, error, match):
    kept = copy.deepcopy(table)
    refuses(f"annotation.{name}", lambda: call(kept), error, match, kept)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: majority_vote([[0, 1, 1], (None, 2, 2)]), [1, 2]),
        (lambda: majority_vote([]), []),
        (lambda: dawid_skene([[0], [1], [None]]).labels, [0, 1, None]),  # one annotator: the answers stand
        (lambda: dawid_skene([[0, 0], [1, 1]], num_classes=4).labels, [0, 1]),
        (lambda: cohen_kappa((0, 1), [0, 1]), 1.0),
        (lambda: fleiss_kappa([[2, 2, None]]), 1.0),
    ],
)
def test_consensus_functions_accept_valid_neighbours(call, expected):
    assert accepts(call) == expected


def export(folder: Path, by: Any = "ann", second: tuple[Any, str] | None = None, item: str = "doc5") -> Path:
    """A Label Studio export answering the pending query with "dog" by ``by`` (and ``second`` on ``item``)."""

    def answer(number: int, who: Any, choice: str) -> dict[str, Any]:
        result = [{"type": "choices", "from_name": "label", "value": {"choices": [choice]}}]
        return {"id": number, "completed_by": who, "created_at": f"2026-01-01T00:00:{number:02d}Z", "result": result}

    tasks = []
    for number, pending in enumerate(PENDING):
        annotations = [answer(number, by, "dog")]
        if second is not None and pending == item:
            annotations.append(answer(10 + number, *second))
        data = {"image": pending, "lbal_id": pending, "lbal_step": 1}
        tasks.append({"id": 100 + number, "data": data, "annotations": annotations})
    path = folder / "export.json"
    path.write_text(json.dumps(tasks))
    return path


BY = r"`completed_by` of every annotation of task 'doc5' \(task 0 of .*\) to be a user id, an email or a user record"

IMPORT_CASES: list[tuple[Callable[[Path], list[Any]], str]] = [
    (lambda f: [export(f), "--labels", "cat,dog,bird", "--on-disagreement", "vote"], r"exit 2: .*--on-disagreement"),
    (lambda f: [export(f), "--labels", "cat,dog,bird", "--on-disagreement", "Majority"], r"exit 2: .*invalid choice"),
    (lambda f: [export(f), "--labels", "cat,dog,bird", "--requeue-disagreements", "yes"], r"exit 2: .*unrecognized"),
    (lambda f: [export(f, by=True), "--labels", "cat,dog,bird"], rf"exit 1: .*{BY} with one, but got True"),
    (lambda f: [export(f, by=1.5), "--labels", "cat,dog,bird"], rf"exit 1: .*{BY} with one, but got 1.5"),
    (lambda f: [export(f, by=""), "--labels", "cat,dog,bird"], rf"exit 1: .*{BY} with one, but got ''"),
    # The message's spaces collapse (the CLI's error is read word by word).
    (lambda f: [export(f, by="  "), "--labels", "cat,dog,bird"], rf"exit 1: .*{BY} with one, but got ' '"),
    (lambda f: [export(f, by=["ann"]), "--labels", "cat,dog,bird"], rf"exit 1: .*{BY} with one, but got \['ann'\]"),
    (
        lambda f: [export(f, by={"name": "Ann"}), "--labels", "cat,dog,bird"],
        rf"exit 1: .*{BY} with one, but got \{{'name'",
    ),
    (
        lambda f: [export(f, by={"email": ""}), "--labels", "cat,dog,bird", "--on-disagreement", "majority"],
        rf"exit 1: .*{BY} with one, but got \{{'email': ''\}}",
    ),
    (
        lambda f: [export(f, second=("bob", "cat")), "--labels", "cat,dog,bird", "--on-disagreement", "error"],
        r"exit 1: .*annotations of task 'doc5' to agree, but got \['dog', 'cat'\]",
    ),
    (
        lambda f: [export(f, second=("bob", "fish")), "--labels", "cat,dog,bird", "--on-disagreement", "dawid_skene"],
        r"exit 1: .*every choice to be in the label map.*'doc5' has \['fish'\]",
    ),
]


@pytest.mark.parametrize(("make", "match"), IMPORT_CASES)
def test_import_refuses_bad_annotators_and_reconciliations(tmp_path, make, match):
    make_checkpoint(tmp_path)
    args = make(tmp_path)
    refuses(
        "lightning-bal import",
        lambda: lightning_bal("import", tmp_path / "run.ckpt", *args),
        CliError,
        match,
        Folder(tmp_path),
    )


def test_an_answer_for_an_unknown_item_in_a_tie_is_refused(tmp_path):
    make_checkpoint(tmp_path)
    path = export(tmp_path)
    tasks = json.loads(path.read_text())
    stray = copy.deepcopy(tasks[0])
    stray["data"]["lbal_id"] = stray["data"]["image"] = "cat42.png"
    stray["annotations"].append(
        {
            **stray["annotations"][0],
            "id": 77,
            "completed_by": "bob",
            "result": [{"type": "choices", "from_name": "label", "value": {"choices": ["cat"]}}],
        }
    )
    path.write_text(json.dumps([*tasks, stray]))
    refuses(
        "lightning-bal import",
        lambda: lightning_bal(
            "import", tmp_path / "run.ckpt", path, "--labels", "cat,dog,bird", "--on-disagreement", "majority"
        ),
        CliError,
        r"exit 1: .*unknown ids \['cat42.png'\]",
        Folder(tmp_path),
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"on_disagreement": "vote"}, ValueError, r"`on_disagreement` to be 'first', .*'dawid_skene', but got 'vote'"),
        ({"on_disagreement": None}, (ValueError, TypeError), r"`on_disagreement`"),
        ({"requeue_disagreements": "yes"}, TypeError, r"`requeue_disagreements` to be a bool, but got 'yes'"),
        ({"requeue_disagreements": 1}, TypeError, r"`requeue_disagreements` to be a bool, but got 1"),
    ],
)
def test_import_answers_refuses_an_unknown_reconciliation(tmp_path, kwargs, error, match):
    make_checkpoint(tmp_path)
    path = export(tmp_path, second=("bob", "cat"))
    refuses(
        "answer files, Label Studio (several annotators)",
        lambda: import_answers(tmp_path / "run.ckpt", path, label_map=LABELS, **kwargs),
        error,
        match,
        Folder(tmp_path),
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"on_disagreement": "majority"},
        {"on_disagreement": "dawid_skene"},
        {"on_disagreement": "majority", "requeue_disagreements": True},
        {"on_disagreement": "skip", "requeue_disagreements": True},
    ],
)
def test_import_answers_accepts_every_reconciliation(tmp_path, kwargs):
    make_checkpoint(tmp_path)
    labelled = accepts(lambda: import_answers(tmp_path / "run.ckpt", export(tmp_path), label_map=LABELS, **kwargs))
    assert labelled.tolist() == [5, 9, 11]


@pytest.mark.parametrize(
    ("entry", "value", "match"),
    [
        ("answers", {"doc5": 1}, r"`callbacks.ActiveLearningCallback.annotator.answers` .* list of dicts with"),
        ("answers", [{"id": "doc5", "label": 1}], r"annotator.answers` .*\['id', 'step', 'by', 'label'\]"),
        ("agreement", [0.5], r"annotator.agreement` .* list of dicts with \['step', 'kappa'\]"),
    ],
)
def test_status_refuses_malformed_recorded_answers(tmp_path, entry, value, match):
    path = make_checkpoint(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["callbacks"]["ActiveLearningCallback"]["annotator"][entry] = value
    torch.save(checkpoint, path)
    refuses(
        "lightning-bal status", lambda: lightning_bal("status", path), CliError, rf"exit 1: .*{match}", Folder(tmp_path)
    )


def answer(item: str, label: Any = 1, by: Any = "ann") -> AnnotatorAnswer:
    return AnnotatorAnswer(item, 1, by, label, None, None)


STATE_CASES: list[tuple[str, Callable[[LabelState], Any], type[Exception], str]] = [
    (
        "check_answers",
        lambda s: s.check_answers([answer("doc5"), answer("cat42")], "x"),
        ValueError,
        r"ids \['cat42'\]",
    ),
    ("check_answers", lambda s: s.check_answers([answer("doc5", 3)], "x"), ValueError, r"`labels` to hold classes in"),
    ("check_answers", lambda s: s.check_answers([answer("doc5", "dog")], "x"), TypeError, r"`labels` .* got 'dog'"),
    ("record_answers", lambda s: s.record_answers([answer("doc5", -1)], "x"), ValueError, r"`labels` .* got -1"),
    ("record_answers", lambda s: s.record_answers([answer("doc99")], "x"), ValueError, r"unknown ids \['doc99'\]"),
    ("requeue", lambda s: s.requeue(["doc5", "cat42"], {}, "x"), ValueError, r"unknown ids \['cat42'\]"),
    ("requeue", lambda s: s.requeue(["doc5", "doc5"], {}, "x"), ValueError, r"ids \['doc5'\] more than once"),
]


@pytest.mark.parametrize(("method", "call", "error", "match"), STATE_CASES)
def test_label_state_refuses_answers_of_unknown_items_or_classes(tmp_path, method, call, error, match):
    state = load_label_state(make_checkpoint(tmp_path))
    refuses(f"LabelState.{method}", lambda: call(state), error, match, state.checkpoint, state.ledger)


def test_label_state_accepts_answers_and_requeues_nothing_pending(tmp_path):
    state = load_label_state(make_checkpoint(tmp_path))
    assert accepts(lambda: state.record_answers([answer("doc5"), answer("doc5", by="bob")], "x")) == 2
    assert accepts(lambda: state.requeue(["doc5"], {}, "x")) == []
    assert state.pending_ids() == PENDING


# ---------------------------------------------------------------- sync


@pytest.fixture
def fake():
    server = FakeLabelStudio(NAMES)
    yield server
    server.stop()


def answer_on(fake: FakeLabelStudio, item: str, who: Any, choice: str) -> None:
    fake.annotate(item, choice)
    task = next(t for t in fake.tasks[7] if t["data"]["lbal_id"] == item)
    task["annotations"][-1]["completed_by"] = who


@pytest.mark.parametrize(
    ("answers", "kwargs", "error", "match"),
    [
        ([("doc5", False, "cat")], {}, ValueError, r"`completed_by` of every annotation of task 'doc5' .* got False"),
        ([("doc5", {"id": None}, "cat")], {"on_disagreement": "majority"}, ValueError, r"`completed_by` .* \{'id'"),
        ([("doc5", "ann", "cat")], {"on_disagreement": "dawid"}, ValueError, r"`on_disagreement` to be .*got 'dawid'"),
        ([("doc5", "ann", "cat")], {"requeue_disagreements": None}, TypeError, r"`requeue_disagreements` to be a bool"),
        (
            [("doc5", "ann", "cat"), ("doc5", "bob", "dog")],
            {"on_disagreement": "error"},
            ValueError,
            r"annotations of task 'doc5' to agree, but got \['cat', 'dog'\]",
        ),
    ],
)
def test_sync_refuses_bad_annotators_and_reconciliations(tmp_path, fake, answers, kwargs, error, match):
    ckpt = make_checkpoint(tmp_path)
    client = LabelStudioClient(fake.url, PAT)
    sync_label_studio(ckpt, client, "blobs", NAMES)
    for item, who, choice in answers:
        answer_on(fake, item, who, choice)
    refuses(
        "lightning-bal sync (Python API, several annotators)",
        lambda: sync_label_studio(ckpt, client, "blobs", NAMES, **kwargs),
        error,
        match,
        Folder(tmp_path),
        fake.tasks,
    )


def test_sync_accepts_dawid_skene_with_one_annotator(tmp_path, fake):
    ckpt = make_checkpoint(tmp_path)
    client = LabelStudioClient(fake.url, PAT)
    sync_label_studio(ckpt, client, "blobs", NAMES)
    for item, choice in zip(PENDING, NAMES, strict=True):
        answer_on(fake, item, 1, choice)
    done = accepts(lambda: sync_label_studio(ckpt, client, "blobs", NAMES, on_disagreement="dawid_skene"))
    assert (done.pulled, done.pending) == (PENDING, [])
