"""The loop with people, end to end: query, checkpoint, stop; answers imported; resumed in a new process; again."""

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_bal import ActiveLearningCallback
from lightning_bal.annotation import QueryFiles, import_answers, load_label_state
from lightning_bal.annotation.cli import main as cli
from lightning_bal.annotation.sync import bring_in_answers
from tests.annotation.annotation_script import run_round
from tests.helpers.models import blobs
from tests.helpers.runs import SeededDropoutClassifier, make_datamodule, make_trainer

ROOT = Path(__file__).resolve().parents[2]
TARGETS = blobs(60).tensors[1]  # make_datamodule's training data


def answer(query: Path, out: Path, rows: int | None = None) -> list[str]:
    """An annotator answers the first ``rows`` rows of a CSV query with the true classes."""
    lines = list(csv.DictReader(query.open()))
    answered = lines if rows is None else lines[:rows]
    for line in answered:
        line["label"] = str(int(TARGETS[int(line["id"].removeprefix("item"))]))
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(lines[0]))
        writer.writeheader()
        writer.writerows(lines)
    return [line["id"] for line in answered]


def test_constructor_checks():
    with pytest.raises(TypeError, match="`annotator`"):
        ActiveLearningCallback("bald", 4, annotator="csv")
    with pytest.raises(ValueError, match="`format`"):
        QueryFiles("xlsx")
    with pytest.raises(ValueError, match="label_names"):
        QueryFiles("label_studio", predictions=True)


@pytest.mark.slow
def test_several_rounds_with_a_process_restart(tmp_path):
    # Round 1: the run selects, writes the query and a checkpoint, and stops without labelling anything.
    dm, callback, trainer = run_round(tmp_path)
    assert trainer.should_stop
    assert dm.step == 1
    assert dm.num_labelled == 6
    query1, ckpt1 = tmp_path / "annotation/query-step001.csv", tmp_path / "annotation/annotation-step001.ckpt"
    assert callback.annotator.written == [query1]
    assert ckpt1.exists()
    rows = list(csv.DictReader(query1.open()))
    assert [r["id"] for r in rows] == [dm.ids[i] for i in dm.pending_query.tolist()]
    assert {r["step"] for r in rows} == {"1"}
    assert all(float(r["score"]) > 0 for r in rows)
    first_query = [r["id"] for r in rows]

    # Three of four answers come back, through the command line; the fourth stays pending.
    answered1 = answer(query1, tmp_path / "answers1.csv", rows=3)
    assert cli(["import", str(ckpt1), str(tmp_path / "answers1.csv")]) == 0
    assert load_label_state(ckpt1).pending_ids() == first_query[3:]

    # Round 2 in a fresh process, resumed from the checkpoint.
    out = tmp_path / "round2.json"
    subprocess.run(
        [sys.executable, "-m", "tests.annotation.annotation_script", str(tmp_path), str(out), "--ckpt", str(ckpt1)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    round2 = json.loads(out.read_text())
    assert round2["step"] == 2
    assert round2["history"] == 2
    ids = [f"item{i:02d}" for i in range(60)]
    assert sorted(ids[i] for i in round2["labelled"]) == sorted(
        [ids[i] for i in dm.labelled_indices.tolist()] + answered1
    )
    pending2 = [ids[i] for i in round2["pending"]]
    assert pending2[0] == first_query[3], "the unanswered item is asked again, first"
    assert len(pending2) == 5
    assert len(set(pending2)) == 5, "and is not selected a second time"
    assert not set(pending2) & set(answered1)
    assert {ids[int(k)]: v for k, v in round2["annotations"].items()} == {
        i: int(TARGETS[int(i[4:])]) for i in answered1
    }

    # The first round's answers file again: recognised as imported, nothing changes.
    ckpt2 = tmp_path / "annotation/annotation-step002.ckpt"
    again = bring_in_answers(ckpt2, tmp_path / "answers1.csv")
    assert (again.labelled.numel(), again.unchanged, again.corrected) == (0, 3, [])
    assert load_label_state(ckpt2).pending_ids() == pending2

    answered2 = answer(tmp_path / "annotation/query-step002.csv", tmp_path / "answers2.csv")
    assert import_answers(ckpt2, tmp_path / "answers2.csv").numel() == 5

    # Round 3 back in this process, writing Label Studio tasks with the model's guesses.
    annotator = QueryFiles("label_studio", predictions=True, label_names=["a", "b", "c"])
    dm3, callback3, _ = run_round(tmp_path, ckpt=ckpt2, annotator=annotator)
    assert dm3.step == 3
    assert dm3.num_labelled == 6 + 3 + 5
    assert len(callback3.history) == 3
    steps = {dm3.ids[i]: int(dm3.acquired_at[i]) for i in dm3.labelled_indices.tolist()}
    assert {steps[i] for i in answered1} == {1}
    assert {steps[i] for i in answered2} == {2}
    tasks = json.loads((tmp_path / "annotation/query-step003.json").read_text())
    assert [t["data"]["lbal_id"] for t in tasks] == [dm3.ids[i] for i in dm3.pending_query.tolist()]
    assert all(t["data"]["lbal_step"] == 3 and t["data"]["lbal_score"] > 0 for t in tasks)
    assert all(t["predictions"][0]["result"][0]["value"]["choices"][0] in "abc" for t in tasks)
    assert not torch.isin(dm3.pending_query, dm3.labelled_indices).any()


def test_the_query_checkpoint_is_a_full_one_written_without_a_weights_only_notice(tmp_path):
    # Lightning logs "`weights_only` was not set" for every checkpoint saved without it.
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger = logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        run_round(tmp_path)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [r.getMessage() for r in records if "weights_only" in r.getMessage()] == []
    checkpoint = torch.load(tmp_path / "annotation/annotation-step001.ckpt", weights_only=True)
    assert {"callbacks", "optimizer_states", "loops"} <= set(checkpoint)


def test_pending_items_count_against_the_label_budget(tmp_path):
    """Queried, unanswered items are labels already bought: the budget stops the queries, not the answers."""
    ids = [f"item{i:02d}" for i in range(60)]
    ckpt = None
    pending = []
    for _ in range(3):
        dm = make_datamodule(n=60, initial=6, ids=ids)
        callback = ActiveLearningCallback("bald", query_size=4, iterations=3, label_budget=12, annotator=QueryFiles())
        trainer = make_trainer(tmp_path, [callback], max_epochs=-1)
        trainer.fit(SeededDropoutClassifier(), datamodule=dm, ckpt_path=ckpt)
        pending.append(len(dm.pending_query))
        ckpt = tmp_path / f"annotation/annotation-step{dm.step:03d}.ckpt"
    assert pending == [4, 6, 6], "4 asked, then 2 more up to the budget, then none"
    assert dm.step == 2
    assert dm.num_labelled == 6


def test_new_items_between_rounds_join_the_pool(tmp_path):
    ids = [f"item{i:02d}" for i in range(60)]
    dm, _, _ = run_round(tmp_path)
    ckpt = tmp_path / "annotation/annotation-step001.ckpt"
    answered = answer(tmp_path / "annotation/query-step001.csv", tmp_path / "answers.csv")
    import_answers(ckpt, tmp_path / "answers.csv")
    # New data arrived: a fresh process builds the datamodule, appends the items, and resumes.
    grown = make_datamodule(n=60, initial=6, ids=ids)
    grown.add_items(blobs(15, seed=7), ids=[f"new{i:02d}" for i in range(15)])
    callback = ActiveLearningCallback("bald", query_size=4, iterations=4, annotator=QueryFiles())
    trainer = make_trainer(tmp_path, [callback], max_epochs=-1)
    trainer.fit(SeededDropoutClassifier(), datamodule=grown, ckpt_path=ckpt)
    assert len(grown) == 75
    assert sorted(grown.ids[i] for i in grown.labelled_indices.tolist()) == sorted(
        [dm.ids[i] for i in dm.labelled_indices.tolist()] + answered
    )
    assert callback.history[-1]["active/num_scored"] == 75 - 10, "the new items were scored with the old pool"
    assert grown.step == 2


def _scalars(folder: Path) -> dict[str, list[int]]:
    """The steps of every scalar of every event file under ``folder``, by tag, as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps: dict[str, list[int]] = {}
    for events in sorted(folder.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            steps.setdefault(tag, []).extend(event.step for event in accumulator.Scalars(tag))
    return steps


@pytest.mark.slow
def test_a_resumed_run_logs_queries_checkpoints_and_curves_into_one_version(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    ids = [f"item{i:02d}" for i in range(60)]
    runs = tmp_path / "tb"
    ckpt = None
    for _ in range(3):
        dm = make_datamodule(n=60, initial=6, ids=ids)
        callback = ActiveLearningCallback("bald", query_size=4, iterations=4, annotator=QueryFiles())
        # A fresh logger per process, as a user writes it: no `version=`.
        logger = TensorBoardLogger(tmp_path, name="tb")
        trainer = make_trainer(tmp_path, [callback], max_epochs=-1, logger=logger, enable_checkpointing=True)
        trainer.fit(SeededDropoutClassifier(), datamodule=dm, ckpt_path=ckpt)
        folder = runs / "version_0" / "annotation"
        ckpt = folder / f"annotation-step{dm.step:03d}.ckpt"
        answer(folder / f"query-step{dm.step:03d}.csv", tmp_path / "answers.csv")
        assert cli(["import", str(ckpt), str(tmp_path / "answers.csv")]) == 0
    assert [p.name for p in runs.iterdir()] == ["version_0"], "no version_1, version_2 left behind"
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".csv") == [f"query-step00{s}.csv" for s in (1, 2, 3)]
    assert {p.parent for p in runs.rglob("epoch=*.ckpt")} == {runs / "version_0" / "checkpoints"}
    curve = _scalars(runs / "version_0")["active/num_labelled"]
    assert len(curve) == 3, "one curve of the three rounds"
    assert curve == sorted(curve)
