"""Bad inputs to studies: study files, shards and jobs, folders of records, the `run` and `status` commands."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lightning_bal import ActiveDataModule
from lightning_bal.experiments import Experiment, Study, load_study, parse_shard, settings_hash, study_status
from lightning_bal.experiments.__main__ import main
from lightning_bal.experiments.records import RECORD_FORMAT, STUDY_FILE, execute, grid_specs
from tests.bad_inputs.harness import accepts, refuses
from tests.helpers.models import DropoutClassifier, blobs

STUDY: dict[str, Any] = {
    "dataset": {"name": "digits", "test_size": 100},
    "model": {"network": "digits"},
    "protocol": {"budget": 14, "initial_labels": 10, "query_size": 2, "iterations": 2, "samples_per_epoch": 32},
    "trainer": {"accelerator": "cpu"},
    "grid": {"heuristics": ["bald", "random"], "seeds": [0, 1]},
}


def changed(path: str, value: Any) -> dict[str, Any]:
    """STUDY with the entry at the dotted ``path`` set to ``value`` (``...`` removes it)."""
    content = copy.deepcopy(STUDY)
    *parents, last = path.split(".")
    where = content
    for key in parents:
        where = where[key]
    if value is ...:
        del where[last]
    else:
        where[last] = value
    return content


def folder(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes: what a refused call must leave as it was."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("path", "value", "error", "match"),
    [
        ("grids", {}, KeyError, r"`<top level>` to hold only .*unknown keys \['grids'\]"),
        ("dataset.root", "/data", KeyError, r"`dataset` to hold only \['name', 'test_size', 'pool'\].*\['root'\]"),
        ("model.depth", 3, KeyError, r"`model` to hold only .*\['depth'\]"),
        ("protocol.budjet", 30, KeyError, r"`protocol` to hold only .*\['budjet'\]"),
        ("grid.seed", [0], KeyError, r"`grid` to hold only \['heuristics', 'seeds', 'settings'\].*\['seed'\]"),
        ("grid.settings", {"qeury_size": [2]}, KeyError, r"`grid.settings` to hold only .*\['qeury_size'\]"),
        ("trainer.max_epoch", 3, ValueError, r"argument `trainer`.*\['max_epoch'\] are not among"),
        ("grid", ..., KeyError, r"entry `grid`, but it does not"),
        ("grid.seeds", ..., KeyError, r"`grid` to hold `seeds`"),
        ("name", 5, TypeError, r"`name` to be a string, but got 5"),
        ("dataset", {"name": "cifar"}, ValueError, r"`dataset.name` to be one of \['digits', 'mnist'\]"),
        ("dataset.test_size", 1797, ValueError, r"`dataset.test_size` in \(0, 1797\), but got 1797"),
        ("model.network", "gal", ValueError, r"`model.network` to fit the dataset 'digits'.*got 'gal'"),
        ("model.lr", -1, ValueError, r"`model` to be valid: .*`lr` to be a finite positive number.*-1"),
        ("model.channels_last", "yes", TypeError, r"`model` to be valid: .*`channels_last` to be a bool.*'yes'"),
        ("protocol.budget", 1698, ValueError, r"`protocol` \(protocol\) to fit the 1697 training samples of 'digits'"),
        ("protocol.query_size", 0, ValueError, r"`protocol` \(protocol\) to be valid: .*`query_size`.*got 0"),
        (
            "grid.settings",
            {"pool_size": [50, 5000]},
            ValueError,
            r"\(grid point \{'pool_size': 5000\}\) to fit the 1697",
        ),
        ("grid.settings", {"query_size": [4]}, ValueError, r"`query_size` in `protocol` or in `grid.settings`"),
        ("grid.settings", {"iterations": []}, ValueError, r"`grid.settings.iterations` to be a non-empty list"),
        ("grid.heuristics", ["bald", "baldd"], ValueError, r"`grid.heuristics` to name rows, but 'baldd'"),
        ("grid.heuristics", ["bald@dropout"], ValueError, r"`grid.heuristics` to name rows, but 'bald@dropout'"),
        ("grid.heuristics", ["bald", "bald"], ValueError, r"`grid.heuristics` to be a list of distinct names"),
        ("grid.seeds", [0, 0], ValueError, r"`grid.seeds` to be a list of distinct integers, but got \[0, 0\]"),
        ("grid.seeds", "01", ValueError, r"`grid.seeds` to be a list of distinct integers, but got '01'"),
    ],
)
def test_a_study_file_is_refused_naming_the_entry(path, value, error, match, tmp_path):
    content = changed(path, value)
    refuses("experiments.Study.from_mapping", lambda: Study.from_mapping(content), error, match, content)
    file = tmp_path / "study.yaml"
    file.write_text(yaml.safe_dump(content))
    refuses("experiments.Study.from_file", lambda: Study.from_file(file), error, match, folder(tmp_path))


def test_a_study_file_accepts_valid_neighbours(tmp_path):
    assert accepts(lambda: Study.from_mapping(changed("grid.settings", {"epochs_per_step": [1, 2]}))).points() == [
        {"epochs_per_step": 1},
        {"epochs_per_step": 2},
    ]
    assert accepts(lambda: Study.from_mapping(changed("protocol.budget", 1697))).protocol["budget"] == 1697
    assert accepts(lambda: Study.from_mapping(changed("grid.heuristics", ["bald@swag"]))).grid["heuristics"]
    (tmp_path / "s.json").write_text(json.dumps(STUDY))
    assert accepts(lambda: Study.from_file(tmp_path / "s.json")) == Study.from_mapping(STUDY)


@pytest.mark.parametrize(
    ("name", "text", "error", "match"),
    [
        ("missing.yaml", None, FileNotFoundError, r"argument `path` to be a study file, but .*missing.yaml"),
        ("bad.yaml", "grid: [", ValueError, r"study file .*bad.yaml to be valid YAML"),
        ("bad.json", "{", ValueError, r"study file .*bad.json to be valid JSON"),
        ("list.yaml", "- 1\n", TypeError, r"`<top level>` to be a mapping"),
    ],
)
def test_a_study_file_that_cannot_be_read_is_refused(name, text, error, match, tmp_path):
    if text is not None:
        (tmp_path / name).write_text(text)
    refuses("experiments.Study.from_file", lambda: Study.from_file(tmp_path / name), error, match, folder(tmp_path))


@pytest.mark.parametrize("shard", ["3/2", "0/0", "2/2", "-1/2", "1", "a/b", "1/2/3", (2, 2), (True, 2), 5])
def test_a_shard_is_i_of_m_counted_from_zero(shard, tmp_path):
    match = r"argument `shard` to be 'I/M' with 0 <= I < M \(shard I of M, counted from 0\)"
    refuses("experiments.parse_shard", lambda: parse_shard(shard), ValueError, match)
    study = Study.from_mapping(STUDY)
    out = tmp_path / "records"
    refuses("experiments.Study.run", lambda: study.run(out, shard=shard), ValueError, match, folder(tmp_path))
    assert not out.exists()


def test_shards_and_jobs_accept_valid_neighbours():
    assert accepts(lambda: parse_shard("0/1")) == (0, 1)
    assert accepts(lambda: parse_shard("2/3")) == (2, 3)
    assert accepts(lambda: parse_shard((1, 2))) == (1, 2)


@pytest.mark.parametrize("jobs", [0, -1, 1.5, "2", True])
def test_jobs_is_a_positive_integer(jobs, tmp_path):
    study = Study.from_mapping(STUDY)
    match = r"argument `jobs` to be a positive integer"
    refuses("experiments.Study.run", lambda: study.run(tmp_path, jobs=jobs), ValueError, match, folder(tmp_path))


def _record(study: Study, index: int, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """A hand-made record of a study's run (what a finished run writes, with a made-up history)."""
    spec = study.runs()[index]
    record = {
        "format": RECORD_FORMAT,
        "study_hash": study.hash,
        "run_hash": spec.hash,
        "label": spec.label,
        "heuristic": spec.heuristic,
        "seed": spec.seed,
        "grid": spec.grid,
        "settings": spec.settings,
        "history": [{"active/num_labelled": 10, "active/test_acc": 0.5}],
        "wall_s": 1.0,
        **overrides,
    }
    return spec.filename, record


def _write(path: Path, record: dict[str, Any]) -> None:
    path.write_text(json.dumps(record))


def test_records_of_another_study_are_refused(tmp_path):
    mine, other = Study.from_mapping(STUDY), Study.from_mapping(changed("protocol.iterations", 3))
    _write(tmp_path / _record(other, 0)[0], _record(other, 0)[1])
    match = rf"`out` to be a new folder or one of this study \(hash {mine.hash}\).*\['{other.hash}'\]"
    refuses("experiments.Study.run", lambda: mine.run(tmp_path), ValueError, match, folder(tmp_path))
    _write(tmp_path / _record(mine, 1)[0], _record(mine, 1)[1])
    match = r"argument `folder` to hold the records of one study, but .* holds records of 2 studies"
    refuses("experiments.load_study", lambda: load_study(tmp_path), ValueError, match, folder(tmp_path))
    # A study file of another study in the folder says the same, even before any record.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / STUDY_FILE).write_text(json.dumps({"study_hash": other.hash, "runs": []}))
    match = rf"`out` to be a new folder or one of this study \(hash {mine.hash}\).*study {other.hash}"
    refuses(
        "experiments.Study.run", lambda: mine.run(tmp_path / "other"), ValueError, match, folder(tmp_path / "other")
    )


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        ({"run_hash": "0" * 16}, ValueError, r"`run_hash` the hash of its `settings`"),
        ({"format": 0}, ValueError, r"of format 1 .*got format 0"),
        ({"history": ...}, KeyError, r"to hold the fields \['history'\]"),
    ],
)
def test_a_damaged_record_is_refused_naming_the_file(edit, error, match, tmp_path):
    study = Study.from_mapping(STUDY)
    name, record = _record(study, 0)
    record = {key: value for key, value in {**record, **edit}.items() if value is not ...}
    _write(tmp_path / name, record)
    refuses("experiments.load_study", lambda: load_study(tmp_path), error, rf"{name}.*" + match, folder(tmp_path))
    refuses("experiments.Study.run", lambda: study.run(tmp_path), error, match, folder(tmp_path))


def test_twice_the_same_run_is_refused(tmp_path):
    study = Study.from_mapping(STUDY)
    name, record = _record(study, 0)
    _write(tmp_path / name, record)
    _write(tmp_path / "copy.json", record)
    match = r"one record per row and seed, but 'bald' seed 0 is recorded twice"
    refuses("experiments.load_study", lambda: load_study(tmp_path), ValueError, match, folder(tmp_path))


@pytest.mark.parametrize(
    ("where", "error", "match"),
    [
        (None, TypeError, r"argument `folder` to be a folder path, but got None"),
        ("missing", FileNotFoundError, r"argument `folder` to be a folder of run records, but .*missing is not one"),
    ],
)
def test_load_study_refuses_what_is_not_a_folder(where, error, match, tmp_path):
    target = None if where is None else tmp_path / where
    refuses("experiments.load_study", lambda: load_study(target), error, match)


def test_load_study_and_status_accept_valid_neighbours(tmp_path):
    study = Study.from_mapping(STUDY)
    for index in (0, 3):
        _write(tmp_path / _record(study, index)[0], _record(study, index)[1])
    assert accepts(lambda: load_study(tmp_path)).histories == {
        "bald": {0: [{"active/num_labelled": 10, "active/test_acc": 0.5}]},
        "random": {1: [{"active/num_labelled": 10, "active/test_acc": 0.5}]},
    }
    refuses(
        "experiments.study_status",
        lambda: study_status(tmp_path),
        FileNotFoundError,
        rf"`folder` to hold the {STUDY_FILE} a study run writes",
        folder(tmp_path),
    )


def _model(seed: int) -> DropoutClassifier:
    return DropoutClassifier()


def _datamodule(seed: int) -> ActiveDataModule:
    return ActiveDataModule(blobs(40), initial_labels=6, batch_size=16, seed=seed)


def test_an_existing_record_is_never_overwritten(tmp_path):
    experiment = Experiment(
        ["random"],
        [0],
        model=_model,
        datamodule=_datamodule,
        callback={"query_size": 4, "iterations": 2, "label_budget": 10},
        trainer={"enable_progress_bar": False, "accelerator": "cpu", "log_every_n_steps": 1},
        metric="active/num_labelled",
    )
    spec = grid_specs(experiment.study_settings(), [{}], ["random"], [0])[0]
    (tmp_path / spec.filename).write_text("an earlier record\n")
    match = rf"run record .*{spec.filename} not to exist \(never overwritten\)"
    refuses(
        "experiments.execute", lambda: execute(experiment, spec, tmp_path), FileExistsError, match, folder(tmp_path)
    )
    (tmp_path / "new").mkdir()
    assert accepts(lambda: execute(experiment, spec, tmp_path / "new"))["run_hash"] == spec.hash
    assert [path.name for path in (tmp_path / "new").iterdir()] == [spec.filename]


def test_settings_hash_refuses_what_json_cannot_hold():
    refuses("experiments.settings_hash", lambda: settings_hash({"a": float("nan")}), ValueError, r"not JSON compliant")
    refuses(
        "experiments.Experiment",
        lambda: Experiment(["random"], [0], model=_model, datamodule=_datamodule, settings={"a": object()}),
        TypeError,
        r"argument `settings` to hold only finite JSON values",
    )


# ---------------------------------------------------------------------------------------------- python -m
class CommandError(Exception):
    """What the command wrote to stderr before exiting with status 2."""


def command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> int:
    try:
        return main(argv)
    except SystemExit as err:
        if err.code != 2:
            raise
        raise CommandError(capsys.readouterr().err) from None


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["run", "{study}", "--out", "{out}", "--shard", "3/2"], r"--shard: expected I/M with 0 <= I < M.*'3/2'"),
        (["run", "{study}", "--out", "{out}", "--shard", "0/0"], r"--shard: expected I/M with 0 <= I < M.*'0/0'"),
        (["run", "{study}", "--out", "{out}", "--jobs", "0"], r"--jobs: expected a positive integer, got '0'"),
        (["run", "{study}"], r"the following arguments are required: --out"),
        (["run", "{bad}", "--out", "{out}"], r"argument study: .*`protocol` to hold only .*\['budjet'\]"),
        (["run", "{study}", "--out", "{file}"], r"argument --out: .*is a file, expected a folder"),
        (["status", "{out}"], r"argument folder: .*to be a folder of run records"),
    ],
)
def test_the_run_and_status_commands_refuse_naming_the_flag(argv, match, tmp_path, capsys):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(STUDY))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(changed("protocol.budjet", 3)))
    (tmp_path / "file").write_text("")
    paths = {name: str(tmp_path / file) for name, file in [("study", "study.yaml"), ("bad", "bad.yaml"), ("out", "o")]}
    argv = [part.format(**paths, file=tmp_path / "file") for part in argv]
    refuses(
        "experiments.__main__ (python -m lightning_bal.experiments run / status)",
        lambda: command(argv, capsys),
        CommandError,
        match,
        folder(tmp_path),
    )


def test_the_status_command_accepts_a_study_folder(tmp_path, capsys):
    study = Study.from_mapping(STUDY)
    _write(tmp_path / _record(study, 2)[0], _record(study, 2)[1])
    runs = [{"label": s.label, "seed": s.seed, "file": s.filename} for s in study.runs()]
    (tmp_path / STUDY_FILE).write_text(json.dumps({"study_hash": study.hash, "runs": runs}))
    (tmp_path / (study.runs()[1].filename + ".running")).write_text("{}")
    assert accepts(lambda: command(["status", str(tmp_path)], capsys)) == 0
    out = capsys.readouterr().out
    assert "done: 1" in out
    assert "running: 1" in out
    assert "missing: 2" in out


def test_a_grid_point_that_does_not_fit_is_refused():
    study = Study.from_mapping(changed("protocol.budget", ...))
    match = r"`protocol` \(grid point \{'budget': 5000\}\) to fit the 1697 training samples"
    refuses("experiments.Study.check_fits", lambda: study.check_fits({"budget": 5000}), ValueError, match, study)
    refuses("experiments.Study.experiment", lambda: study.experiment({"budget": 5000}), ValueError, match, study)
    match = r"`protocol` \(grid point \{'budjet': 5\}\) to be valid: .*unexpected keyword argument 'budjet'"
    refuses("experiments.Study.check_fits", lambda: study.check_fits({"budjet": 5}), TypeError, match, study)
    assert accepts(lambda: study.check_fits({"budget": 1697})).budget == 1697


@pytest.mark.parametrize(
    ("entry", "value", "match"),
    [
        ("dataset", "digits", r"study entry `dataset` to be a dict \(build a study with `Study.from_file`"),
        ("grid", None, r"study entry `grid` to be a dict"),
    ],
)
def test_a_study_built_by_hand_needs_dicts(entry, value, match):
    fields = {**copy.deepcopy(STUDY), "protocol": {}, "trainer": {}, entry: value}
    refuses("experiments.Study()", lambda: Study(**fields), TypeError, match, fields)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"index": -1}, TypeError, r"`index` and `seed` to be integers \(index >= 0\), got -1, 0"),
        ({"seed": "0"}, TypeError, r"`index` and `seed` to be integers .*got 0, '0'"),
        ({"heuristic": None}, TypeError, r"`heuristic` to be a row name and `grid` and `settings` dicts"),
        ({"settings": {"a": float("inf")}}, TypeError, r"argument `settings` to hold only finite JSON values"),
    ],
)
def test_a_run_spec_is_checked(change, error, match):
    from lightning_bal.experiments import RunSpec

    fields = {"index": 0, "heuristic": "bald", "seed": 0, "grid": {}, "settings": {"seed": 0}, **change}
    refuses("experiments.RunSpec()", lambda: RunSpec(**fields), error, match, fields)
    assert accepts(lambda: RunSpec(0, "bald", 0, {}, {"seed": 0})).filename.startswith("bald_seed0_")


def test_read_records_refuses_what_load_study_refuses(tmp_path):
    from lightning_bal.experiments import read_records

    refuses("experiments.read_records", lambda: read_records(5), TypeError, r"`folder` to be a folder path, but got 5")
    (tmp_path / "broken.json").write_text("{")
    refuses(
        "experiments.read_records",
        lambda: read_records(tmp_path),
        ValueError,
        r"run record .*broken.json to be a JSON file",
        folder(tmp_path),
    )


def test_an_experiment_runs_its_own_rows_from_its_own_point():
    experiment = Experiment(["random"], [0], model=_model, datamodule=_datamodule, metric="active/num_labelled")
    match = r"argument `heuristic` to be a row of the experiment, one of \['random'\], but got 'bald'"
    refuses(
        "experiments.Experiment.run_seeded", lambda: experiment.run_seeded("bald", 0), ValueError, match, experiment
    )
    match = r"argument `seed` to be an integer, but got 0.5"
    refuses("experiments.Experiment.run_seeded", lambda: experiment.run_seeded("random", 0.5), TypeError, match)
    match = r"argument `grid` to be \{\}, the one point of an experiment, but got \{'budget': 3\}"
    refuses("experiments.Experiment.experiment", lambda: experiment.experiment({"budget": 3}), ValueError, match)
    assert accepts(lambda: experiment.experiment({})) is experiment
