"""Studies: the grid and its hashes, records, resume after a kill, idempotence, shards, workers, load_study."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import Convergence
from lightning_bal.experiments import Experiment, Study, load_study, read_records, settings_hash, study_status
from lightning_bal.experiments.records import MACHINE_FIELDS, STUDY_FILE
from tests.bad_inputs.harness import snapshot
from tests.helpers.models import DropoutClassifier, blobs

TINY = {
    "name": "tiny",
    "dataset": {"name": "digits", "test_size": 100},
    "model": {"network": "digits"},
    "protocol": {
        "budget": 14,
        "initial_labels": 10,
        "query_size": 2,
        "iterations": 2,
        "epochs_per_step": 1,
        "samples_per_epoch": 32,
        "batch_size": 16,
        "max_pool_size": 40,
    },
    "trainer": {"accelerator": "cpu"},
    "grid": {"heuristics": ["bald", "random"], "seeds": [0, 1]},
}


def _timeless(histories):
    """Histories (``{row: {seed: history}}``, a history, or a step) without the timings they log."""
    if isinstance(histories, list):
        return [_timeless(step) for step in histories]
    if all(isinstance(key, str) and key.startswith("active/") for key in histories):
        return {key: value for key, value in histories.items() if "seconds" not in key}
    return {key: _timeless(value) for key, value in histories.items()}


def _records(folder: Path) -> dict[str, dict]:
    """The records of ``folder`` by file name, without what depends on the machine and the moment."""
    records = {}
    for path in sorted(folder.glob("*.json")):
        if path.name != STUDY_FILE:
            record = {key: value for key, value in json.loads(path.read_text()).items() if key not in MACHINE_FIELDS}
            records[path.name] = {**record, "history": _timeless(record["history"])}
    return records


# The threads a worker of `--jobs 2` gets: float sums depend on how they are split, so every run here uses as many.
THREADS = max(1, len(os.sched_getaffinity(0)) // 2)


@contextlib.contextmanager
def _threads(count: int = THREADS) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def study_run(tmp_path_factory) -> tuple[Study, Path, object]:
    """The tiny study run once, in this process: the reference the other ways of running it must match."""
    folder = tmp_path_factory.mktemp("study") / "records"
    study = Study.from_mapping(TINY)
    with _threads():
        return study, folder, study.run(folder)


def test_the_grid_runs_points_then_seeds_then_rows_and_hashes_settings_only():
    protocol = {key: value for key, value in TINY["protocol"].items() if key != "query_size"}
    grid = {**TINY["grid"], "settings": {"query_size": [2, 4]}}
    study = Study.from_mapping({**TINY, "protocol": protocol, "grid": grid})
    runs = study.runs()
    assert [(r.grid["query_size"], r.seed, r.heuristic) for r in runs] == [
        (q, s, h) for q in (2, 4) for s in (0, 1) for h in ("bald", "random")
    ]
    assert [r.index for r in runs] == list(range(8))
    assert len({r.hash for r in runs}) == 8
    assert runs[0].label == "bald (query_size=2)"
    # The name and the order of the keys do not take part in a hash; any setting does.
    renamed = Study.from_mapping({**dict(reversed(list(TINY.items()))), "name": "another name"})
    assert renamed.hash == Study.from_mapping(TINY).hash
    assert [r.hash for r in renamed.runs()] == [r.hash for r in Study.from_mapping(TINY).runs()]
    changed = Study.from_mapping({**TINY, "protocol": {**TINY["protocol"], "iterations": 3}})
    assert changed.hash != renamed.hash
    assert settings_hash({"a": 1, "b": [1.5]}) == settings_hash({"b": [1.5], "a": 1})


def test_a_study_file_in_yaml_or_json_gives_the_same_study(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(TINY))
    (tmp_path / "s.json").write_text(json.dumps(TINY))
    assert Study.from_file(tmp_path / "s.yaml") == Study.from_file(tmp_path / "s.json") == Study.from_mapping(TINY)


def test_records_are_faithful_and_load_study_gives_the_result(study_run):
    study, folder, result = study_run
    records = read_records(folder)
    assert len(records) == 4
    for record in records:
        history = result.histories[record["heuristic"]][record["seed"]]
        # Every figure as logged, to the last bit (JSON floats are written as their repr).
        assert record["history"] == history
        assert [list(s) for s in record["history"]] == [list(s) for s in history]
        assert record["study_hash"] == study.hash
        assert record["run_hash"] == settings_hash(record["settings"])
        assert record["settings"]["seed"] == record["seed"]
        assert record["settings"]["study"] == study.settings()
        assert record["library"]["version"]
        assert "commit" in record["library"]
        assert record["wall_s"] > 0
        assert record["cpu_s"] > 0
        assert record["threads"] >= 1
    loaded = load_study(folder)
    assert loaded.histories == result.histories
    assert loaded.metric == "active/test_acc"
    assert loaded.summary() == result.summary()
    assert [n for n, _ in loaded.curves()["bald"][0]] == [10, 12, 14]
    assert study_status(folder) == {"done": sorted(_records(folder), key=_order(study)), "running": [], "missing": []}


def _order(study: Study):
    names = [spec.filename for spec in study.runs()]
    return names.index


def test_a_rerun_is_idempotent_and_overwrites_nothing(study_run):
    study, folder, result = study_run
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    seconds = []
    again = study.run(folder, on_run=lambda label, seed, partial, wall: seconds.append(wall))
    assert seconds == [0.0] * 4  # every run read from its record, none run
    assert again.histories == result.histories
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_shards_are_disjoint_complete_and_write_the_same_records(study_run, tmp_path):
    study, folder, _ = study_run
    halves = [{spec.hash for spec in study.runs() if spec.index % 2 == i} for i in (0, 1)]
    assert not halves[0] & halves[1]
    assert halves[0] | halves[1] == {spec.hash for spec in study.runs()}
    with _threads():
        first = study.run(tmp_path, shard="0/2")
        study.run(tmp_path, shard=(1, 2))
    assert {label: sorted(s) for label, s in first.histories.items()} == {"bald": [0, 1]}
    assert _records(tmp_path) == _records(folder)
    assert study_status(tmp_path)["missing"] == []


@pytest.mark.slow
def test_two_workers_write_the_records_one_process_writes(study_run, tmp_path):
    study, folder, result = study_run
    assert _timeless(study.run(tmp_path, jobs=2).histories) == _timeless(result.histories)
    assert _records(tmp_path) == _records(folder)


@pytest.mark.slow
def test_a_study_killed_mid_run_resumes_and_reruns_the_interrupted_run(study_run, tmp_path):
    study, folder, _ = study_run
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "records"
    command = [sys.executable, "-m", "lightning_bal.experiments", "run", str(path), "--out", str(out), "--jobs", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        markers: list[Path] = []
        while not markers and time.monotonic() < deadline and process.poll() is None:
            markers = sorted(out.glob("*.running")) if out.is_dir() else []
            time.sleep(0.02)
        assert markers, f"no run started: {process.stderr.read() if process.poll() is not None else 'timeout'}"
        os.kill(json.loads(markers[0].read_text())["pid"], signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert "A worker process died during a run" in stderr
    status = study_status(out)
    assert markers[0].name.removesuffix(".running") in status["running"]
    kept = {name: (out / name).read_bytes() for name in status["done"]}
    with _threads():
        study.run(out)
    assert study_status(out) == {"done": [spec.filename for spec in study.runs()], "running": [], "missing": []}
    assert not list(out.glob("*.running"))
    assert not list(out.glob(".*.tmp"))
    assert all((out / name).read_bytes() == data for name, data in kept.items())
    assert _records(out) == _records(folder)


# ------------------------------------------------------------------------------ every stateful object fresh per run
STARTS: list[int] = []


class StartCounter(Callback):
    """A trainer callback with state: how many fits it has seen."""

    def __init__(self) -> None:
        self.starts = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.starts += 1
        STARTS.append(self.starts)


def _model(seed: int) -> DropoutClassifier:
    return DropoutClassifier()


def _datamodule(seed: int) -> ActiveDataModule:
    return ActiveDataModule(blobs(60), val_dataset=blobs(30, seed=1), initial_labels=6, batch_size=16, seed=seed)


TRAINER = {"enable_progress_bar": False, "accelerator": "cpu", "log_every_n_steps": 1}


def _experiment(heuristics: list[str], seeds: list[int], **trainer) -> Experiment:
    convergence = Convergence("val_acc", mode="max", patience=1, max_epochs=3)
    return Experiment(
        heuristics,
        seeds,
        model=_model,
        datamodule=_datamodule,
        callback={"query_size": 4, "iterations": 3, "label_budget": 14, "convergence": convergence},
        trainer={**TRAINER, **trainer},
        metric="active/val_acc",
    )


def test_stateful_objects_give_each_run_the_state_it_would_have_alone():
    counter = StartCounter()
    STARTS.clear()
    experiment = _experiment(["bald", "random"], [0], callbacks=[counter])
    convergence = snapshot(experiment.callback["convergence"])
    grid = experiment.run()
    # Each run's copy of the trainer callback starts from the state passed in, as a run alone would.
    assert STARTS == [1, 1]
    assert counter.starts == 0
    assert snapshot(experiment.callback["convergence"]) == convergence
    for name in ("bald", "random"):
        alone = _experiment([name], [0], callbacks=[StartCounter()]).run()
        assert _timeless(alone.histories[name][0]) == _timeless(grid.histories[name][0])


def test_a_hand_written_loop_and_the_api_start_from_the_same_random_state():
    # The recipe of docs/experiments.md: seed, build the model, build the datamodule, train.
    pl.seed_everything(1, verbose=False)
    model = _model(1)
    datamodule = _datamodule(1)
    callback = ActiveLearningCallback("bald", seed=1, query_size=4, iterations=3, label_budget=10)
    trainer = pl.Trainer(
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[callback],
        **TRAINER,
    )
    trainer.fit(model, datamodule=datamodule)
    experiment = Experiment(
        ["bald"],
        [1],
        model=_model,
        datamodule=_datamodule,
        callback={"query_size": 4, "iterations": 3, "label_budget": 10},
        trainer=TRAINER,
        metric="active/val_acc",
    )
    assert _timeless(experiment.run().histories["bald"][1][0]) == _timeless(callback.history[0])


@pytest.mark.slow
def test_an_experiment_runs_in_workers_and_shards_with_the_same_records(tmp_path):
    experiment = _experiment(["bald", "random"], [0])
    torch.set_num_threads(THREADS)  # the autouse fixture restores it
    alone = experiment.run(out=tmp_path / "one")
    assert _timeless(experiment.run(jobs=2).histories) == _timeless(alone.histories)
    experiment.run(out=tmp_path / "shards", shard="1/2")
    experiment.run(out=tmp_path / "shards", shard="0/2")
    assert _records(tmp_path / "shards") == _records(tmp_path / "one")
    assert _timeless(load_study(tmp_path / "shards").histories) == _timeless(alone.histories)
