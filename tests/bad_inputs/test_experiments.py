"""Bad inputs to the experiments API: Experiment, Row, ExperimentResult, the curve helpers, PaperProtocol, the CLIs."""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_bal import ActiveDataModule
from lightning_bal.experiments import (
    DropoutCNN,
    EnsembleCNN,
    Experiment,
    ExperimentResult,
    PaperProtocol,
    Row,
    Standardize,
    add_protocol_arguments,
    area_under_curve,
    cold_start_labels,
    digits_cnn,
    ensemble_loader,
    gal_cnn,
    kirsch_cnn,
    labels_to_reach,
    load_digits,
    load_mnist,
    mean_and_spread,
    pixel_embeddings,
    posterior_row,
    protocol_from_arguments,
    read_idx,
    split_row_name,
)
from lightning_bal.experiments.__main__ import main
from tests.bad_inputs.harness import accepts, refuses
from tests.helpers.models import DropoutClassifier, blobs

NAN, INF = float("nan"), float("inf")


def steps(*points: tuple[int, float]) -> list[dict[str, float]]:
    return [{"active/num_labelled": n, "active/test_acc": acc} for n, acc in points]


def result() -> ExperimentResult:
    return ExperimentResult(
        {"bald": {0: steps((20, 0.5), (30, 0.9)), 1: steps((20, 0.6), (30, 0.8))}, "random": {0: steps((20, 0.4))}}
    )


def folder(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes: what a refused call must leave as it was."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def model(seed: int) -> DropoutClassifier:
    return DropoutClassifier()


def datamodule(seed: int) -> ActiveDataModule:
    return ActiveDataModule(blobs(30), initial_labels=6, seed=seed)


# ---------------------------------------------------------------------------------------------- Experiment
EXPERIMENT = [
    # (keyword arguments over valid ones, error, message pattern)
    ({"model": DropoutClassifier()}, TypeError, r"`model`.*callable that builds.*DropoutClassifier instance"),
    ({"model": 5}, TypeError, r"`model`.*callable that builds.*int"),
    ({"datamodule": datamodule(0)}, TypeError, r"`datamodule`.*callable that builds.*ActiveDataModule instance"),
    ({"datamodule": None}, TypeError, r"`datamodule`.*callable that builds"),
    ({"heuristics": "bald"}, TypeError, r"`heuristics`.*list of names.*'bald'"),
    ({"heuristics": ["bald", "badl"]}, ValueError, r"`heuristics`.*registered heuristics.*'badl'.*Available: .*bald"),
    ({"heuristics": ["bald@swag"]}, ValueError, r"`heuristics`.*registered heuristics.*'bald@swag'"),
    ({"heuristics": [3]}, ValueError, r"`heuristics`.*non-empty list of names"),
    ({"heuristics": 3}, TypeError, r"`heuristics`.*list of names"),
    ({"seeds": [0.5]}, TypeError, r"`seeds`.*integers.*0.5"),
    ({"seeds": [True, 1]}, TypeError, r"`seeds`.*integers.*True"),
    ({"seeds": "01"}, TypeError, r"`seeds`.*list of integers.*'01'"),
    ({"seeds": 0}, TypeError, r"`seeds`.*list of integers"),
    ({"callback": {"query_sise": 3}}, ValueError, r"`callback`.*ActiveLearningCallback.*\['query_sise'\]"),
    ({"callback": [("query_size", 3)]}, TypeError, r"`callback`.*mapping of keyword arguments"),
    ({"callback": {"seed": 3}}, ValueError, r"`callback` without `seed`"),
    ({"trainer": {"max_epoch": 1}}, ValueError, r"`trainer`.*Trainer.*\['max_epoch'\]"),
    ({"trainer": "cpu"}, TypeError, r"`trainer`.*mapping of keyword arguments"),
    ({"metric": ""}, TypeError, r"`metric`.*non-empty"),
    ({"metric": 5}, TypeError, r"`metric`.*non-empty.*5"),
    ({"log_dir": 5}, TypeError, r"`log_dir`.*folder path or None.*5"),
    ({"rows": {"bald": "bald"}}, TypeError, r"`rows`.*to `Row`s.*'bald': 'str'"),
    ({"rows": ["bald"]}, TypeError, r"`rows`.*mapping"),
    ({"rows": {"other": Row("bald")}}, ValueError, r"`rows`.*\['other'\] are not among"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), EXPERIMENT, ids=[repr(c[0])[:50] for c in EXPERIMENT])
def test_experiment_constructor_refuses(kwargs, error, match):
    settings = {"heuristics": ["bald"], "seeds": [0], "model": model, "datamodule": datamodule, **kwargs}
    refuses("experiments.Experiment()", lambda: Experiment(**settings), error, match, settings)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"heuristics": ("BALD", "power-bald"), "seeds": range(2)},
        {"seeds": [np.int64(3), -1]},
        {"callback": {"query_size": 2, "iterations": 3}, "trainer": {"max_epochs": 1}, "log_dir": Path("runs")},
        {"heuristics": ["bald@swag", "random"], "rows": {"bald@swag": Row("bald", callback={"iterations": 2})}},
        {"model": DropoutClassifier, "metric": "active/val_acc", "rows": None},
    ],
    ids=repr,
)
def test_experiment_constructor_accepts_valid_neighbours(kwargs):
    settings = {"heuristics": ["bald"], "seeds": [0], "model": model, "datamodule": datamodule, **kwargs}
    experiment = accepts(lambda: Experiment(**settings))
    assert all(type(seed) is int for seed in experiment.seeds)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": lambda seed: "net"}, TypeError, r"`model`.*LightningModule for seed 0.*str"),
        (
            {"datamodule": lambda seed: blobs(30)},
            TypeError,
            r"`datamodule`.*ActiveDataModule for seed 0.*TensorDataset",
        ),
        (
            {"rows": {"bald": Row("bald", model=lambda m, seed: None)}},
            TypeError,
            r"`rows\['bald'\].model`.*LightningModule.*NoneType",
        ),
    ],
)
def test_experiment_run_refuses_factories_that_build_the_wrong_thing(kwargs, error, match):
    settings = {"heuristics": ["bald"], "seeds": [0], "model": model, "datamodule": datamodule, **kwargs}
    experiment = Experiment(**settings)
    refuses("experiments.Experiment.run", experiment.run, error, match)


def test_experiment_run_refuses_an_on_run_that_is_not_callable():
    experiment = Experiment(["bald"], [0], model=model, datamodule=datamodule)
    refuses("experiments.Experiment.run", lambda: experiment.run(on_run="print"), TypeError, r"`on_run`.*callable")


ROWS = [
    ({"heuristic": "bal"}, ValueError, r"`heuristic`.*registered heuristics.*'bal'"),
    ({"heuristic": None}, ValueError, r"`heuristic`.*registered heuristics.*None"),
    ({"model": DropoutClassifier()}, TypeError, r"`model`.*callable that builds.*DropoutClassifier instance"),
    ({"datamodule": 5}, TypeError, r"`datamodule`.*callable that builds"),
    ({"callback": {"posterio": None}}, ValueError, r"`callback`.*\['posterio'\]"),
    ({"callback": "swag"}, TypeError, r"`callback`.*mapping"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), ROWS, ids=[repr(c[0])[:40] for c in ROWS])
def test_row_refuses(kwargs, error, match):
    settings = {"heuristic": "bald", **kwargs}
    refuses("experiments.Row()", lambda: Row(**settings), error, match, settings)


def test_row_accepts_valid_neighbours():
    row = accepts(lambda: Row("Power-BALD", model=lambda m, seed: m, datamodule=lambda dm: dm, callback={}))
    assert row.heuristic == "Power-BALD"


# ---------------------------------------------------------------------------------------------- ExperimentResult
RESULTS = [
    # (histories, metric, error, message pattern)
    ([("bald", {})], "active/test_acc", TypeError, r"`histories`.*mapping"),
    ({"bald": [steps((20, 0.5))]}, "active/test_acc", TypeError, r"`histories`.*\{seed: history\}.*'bald': list"),
    ({"bald": {0: {"active/num_labelled": 20}}}, "active/test_acc", TypeError, r"`histories`.*list of step dicts"),
    ({"bald": {0: [{"active/test_acc": 0.5}]}}, "active/test_acc", ValueError, r"`histories`.*num_labelled.*step 0"),
    ({"bald": {0: [{"active/num_labelled": "20"}]}}, "active/test_acc", TypeError, r"`histories`.*numbers.*'20'"),
    ({"bald": {0: steps((20, 0.5))}}, "", TypeError, r"`metric`.*non-empty"),
    ({"bald": {0: steps((20, 0.5))}}, None, TypeError, r"`metric`.*non-empty"),
]


@pytest.mark.parametrize(("histories", "metric", "error", "match"), RESULTS)
def test_result_constructor_refuses(histories, metric, error, match):
    refuses("experiments.ExperimentResult()", lambda: ExperimentResult(histories, metric), error, match, histories)


def test_a_misspelt_metric_is_refused_with_the_known_ones():
    outcome = result()
    for call in (
        lambda: outcome.curves("active/test_accc"),
        lambda: outcome.labels_to_reach(0.9, metric="active/test_accc"),
        lambda: outcome.area_under_curve("active/test_accc"),
        lambda: outcome.summary(metric="active/test_accc"),
        lambda: ExperimentResult(outcome.histories, "active/val_acc").curves(),
    ):
        refuses(
            "experiments.ExperimentResult.curves",
            call,
            ValueError,
            r"`metric`.*one of \['active/test_acc'\].*'active/(test_accc|val_acc)'",
            outcome,
        )


def test_a_result_without_steps_has_empty_curves_for_any_metric():
    # Rank > 0 of a DDP experiment, or a run just begun: nothing to check the metric against.
    empty = accepts(lambda: ExperimentResult({"bald": {0: []}}, "active/anything"))
    assert empty.curves() == {"bald": {0: []}}


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r: r.labels_to_reach(NAN), ValueError, r"`threshold`.*finite number.*nan"),
        (lambda r: r.labels_to_reach("0.9"), ValueError, r"`threshold`.*finite number.*'0.9'"),
        (lambda r: r.summary(thresholds=0.9), TypeError, r"`thresholds`.*sequence of numbers.*0.9"),
        (lambda r: r.summary(thresholds="0.9"), TypeError, r"`thresholds`.*sequence of numbers"),
        (lambda r: r.summary(thresholds=[0.9, INF]), ValueError, r"`thresholds`.*finite number.*inf"),
        (lambda r: r.curves(metric=3), TypeError, r"`metric`.*non-empty.*3"),
        (lambda r: r.merge({"bald": {}}), TypeError, r"`other`.*ExperimentResult.*dict"),
    ],
)
def test_result_methods_refuse(call, error, match):
    outcome = result()
    refuses("experiments.ExperimentResult methods", lambda: call(outcome), error, match, outcome)


def test_result_methods_accept_valid_neighbours():
    outcome = result()
    assert accepts(lambda: outcome.labels_to_reach(np.float32(0.85))) == {"bald": {0: 30, 1: None}, "random": {0: None}}
    assert "labels to 1" in accepts(lambda: outcome.summary(thresholds=(1, 0.5)))
    assert accepts(lambda: outcome.curves("active/test_acc")) == outcome.curves()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r, d: r.plot(d / "c.png", metric="active/tes_acc"), ValueError, r"`metric`.*\['active/test_acc'\]"),
        (lambda r, d: r.plot(d / "c.png", thresholds=[NAN]), ValueError, r"`thresholds`.*finite number"),
        (lambda r, d: r.plot(5), TypeError, r"`path`.*file path.*5"),
        (lambda r, d: r.write_csv(d / "c.csv", columns=["test_acc"]), TypeError, r"`columns`.*map column names"),
        (lambda r, d: r.write_csv(d / "c.csv", columns={"seed": "active/test_acc"}), ValueError, r"`columns`.*'seed'"),
        (lambda r, d: r.write_csv(None), TypeError, r"`path`.*file path"),
    ],
)
def test_plot_and_write_csv_refuse_and_write_nothing(call, error, match, tmp_path):
    outcome = result()
    outcome.write_csv(tmp_path / "c.csv")
    refuses(
        "experiments.ExperimentResult.plot / write_csv", lambda: call(outcome, tmp_path), error, match, folder(tmp_path)
    )
    assert folder(tmp_path) == {"c.csv": (tmp_path / "c.csv").read_bytes()}


def test_write_csv_interrupted_keeps_the_previous_file(tmp_path, monkeypatch):
    outcome = result()
    path = outcome.write_csv(tmp_path / "c.csv")
    before = folder(tmp_path)

    rows = iter(range(3))

    class Failing:
        def __init__(self, stream):
            self.stream = stream

        def writerow(self, row):
            if next(rows) == 2:
                raise OSError("disk full")
            self.stream.write(",".join(map(str, row)) + "\n")

    monkeypatch.setattr(csv, "writer", Failing)
    with pytest.raises(OSError, match="disk full"):
        outcome.write_csv(path)
    assert folder(tmp_path) == before


# ---------------------------------------------------------------------------------------------- read_csv
HEADER = "heuristic,seed,labelled,test_acc\n"
READ_CSV = [
    # (file text, keyword arguments, error, message pattern)
    (
        HEADER + "bald,0,20.5,0.5\n",
        {},
        ValueError,
        r"c.csv, row 1 \(line 2\).*`labelled`|`labelled` of the CSV .*c.csv, row 1",
    ),
    (
        HEADER + "bald,0,20,0.5\nbald,0,abc,0.6\n",
        {},
        ValueError,
        r"`labelled` of the CSV .*c.csv, row 2 \(line 3\).*'abc'",
    ),
    (HEADER + "bald,0,-10,0.5\n", {}, ValueError, r"non-negative integer in column `labelled`.*row 1.*'-10'"),
    (HEADER + "bald,x,20,0.5\n", {}, ValueError, r"integer in column `seed`.*row 1.*'x'"),
    (HEADER + "bald,1.5,20,0.5\n", {}, ValueError, r"integer in column `seed`.*row 1.*'1.5'"),
    (HEADER + "bald,0,20,high\n", {}, ValueError, r"number in column `test_acc`.*row 1.*'high'"),
    (HEADER + "bald,0,20\n", {}, ValueError, r"4 cells in the CSV .*c.csv, row 1"),
    (HEADER + "bald,0,20,0.5,0.6\n", {}, ValueError, r"4 cells in the CSV .*c.csv, row 1"),
    ("heuristic,labelled,test_acc\nbald,20,0.5\n", {}, ValueError, r"CSV .*c.csv to have the columns \['seed'\]"),
    ("", {}, ValueError, r"CSV .*c.csv to have the columns \['heuristic', 'seed', 'labelled'\]"),
    (
        HEADER + "bald,0,20,0.5\n",
        {"columns": {"test_accuracy": "active/test_acc"}},
        ValueError,
        r"`columns`.*'test_accuracy'",
    ),
    (HEADER + "bald,0,20,0.5\n", {"columns": ["test_acc"]}, TypeError, r"`columns`.*map column names"),
    (HEADER + "bald,0,20,0.5\n", {"metric": 5}, TypeError, r"`metric`.*non-empty"),
]


@pytest.mark.parametrize(("text", "kwargs", "error", "match"), READ_CSV, ids=[f"case{i}" for i in range(len(READ_CSV))])
def test_read_csv_refuses_naming_the_file_row_and_column(text, kwargs, error, match, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(text)
    refuses(
        "experiments.ExperimentResult.read_csv",
        lambda: ExperimentResult.read_csv(path, **kwargs),
        error,
        match,
        folder(tmp_path),
    )


@pytest.mark.parametrize(
    ("path", "error", "match"),
    [("missing.csv", FileNotFoundError, r"`path`.*missing.csv.*not a file"), (5, TypeError, r"`path`.*file path")],
)
def test_read_csv_refuses_a_path_that_is_not_a_file(path, error, match, tmp_path):
    target = tmp_path / path if isinstance(path, str) else path
    refuses("experiments.ExperimentResult.read_csv", lambda: ExperimentResult.read_csv(target), error, match)


def test_read_csv_accepts_valid_neighbours(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "bald,-3,20.0,nan\nbald,-3,30,\nrandom,0,20,0.7\n")
    back = accepts(lambda: ExperimentResult.read_csv(path))
    assert back.histories["bald"][-3][0]["active/num_labelled"] == 20.0
    assert math.isnan(back.histories["bald"][-3][0]["active/test_acc"])
    assert back.histories["bald"][-3][1] == {"active/num_labelled": 30.0}
    assert back.curves()["random"] == {0: [(20, 0.7)]}


# ---------------------------------------------------------------------------------------------- curve helpers
CURVES = [
    ("labels_to_reach", lambda: labels_to_reach([(20, 0.5)], NAN), ValueError, r"`threshold`.*finite number.*nan"),
    ("labels_to_reach", lambda: labels_to_reach([(20, 0.5)], None), ValueError, r"`threshold`.*finite number.*None"),
    ("labels_to_reach", lambda: labels_to_reach("20,0.5", 0.9), TypeError, r"`curve`.*list of \(labelled, value\)"),
    ("labels_to_reach", lambda: labels_to_reach([(20,)], 0.9), TypeError, r"`curve`.*pairs of numbers.*point 0"),
    ("labels_to_reach", lambda: labels_to_reach([(20, "0.5")], 0.9), TypeError, r"`curve`.*pairs of numbers"),
    ("labels_to_reach", lambda: labels_to_reach([(True, 0.5)], 0.9), TypeError, r"`curve`.*pairs of numbers.*True"),
    ("labels_to_reach", lambda: labels_to_reach([(20, False)], 0.9), TypeError, r"`curve`.*pairs of numbers.*False"),
    ("labels_to_reach", lambda: labels_to_reach([(30, 0.5), (20, 0.9)], 0.9), ValueError, r"`curve`.*point 1 has 20"),
    ("area_under_curve", lambda: area_under_curve([]), ValueError, r"`curve`.*at least one"),
    ("area_under_curve", lambda: area_under_curve([(30, 0.5), (20, 0.7)]), ValueError, r"`curve`.*never falling"),
    ("area_under_curve", lambda: area_under_curve(None), TypeError, r"`curve`.*list of \(labelled, value\)"),
    ("mean_and_spread", lambda: mean_and_spread([[(20, 0.5)], [(25, 0.6)]]), ValueError, r"`curves`.*share.*\[25\]"),
    ("mean_and_spread", lambda: mean_and_spread([[(20, 0.5)], []]), ValueError, r"`curves`.*non-empty"),
    ("mean_and_spread", lambda: mean_and_spread("curves"), TypeError, r"`curves`.*list of curves"),
    ("mean_and_spread", lambda: mean_and_spread([[(20, None)]]), TypeError, r"`curves`.*pairs of numbers"),
]


@pytest.mark.parametrize(("entry", "call", "error", "match"), CURVES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CURVES)])
def test_curve_helpers_refuse(entry, call, error, match):
    refuses(f"experiments.{entry}", call, error, match)


def test_curve_helpers_accept_valid_neighbours():
    assert accepts(lambda: labels_to_reach(((20, 0.5), (20, 0.95)), 1)) is None
    assert accepts(lambda: labels_to_reach([(np.int64(20), np.float32(0.95))], np.float64(0.9))) == 20
    assert accepts(lambda: area_under_curve([[10, 1], [10, 0]])) == 0.5
    assert accepts(lambda: mean_and_spread([[(20, 0.5), (30, 1.0)], [(20, 0.7)]])) == ([20], [0.6], [0.5], [0.7])


# ---------------------------------------------------------------------------------------------- PaperProtocol
PROTOCOL = [
    ({"pool_size": -3}, ValueError, r"`pool_size`.*positive integer or None.*-3"),
    ({"pool_size": 0}, ValueError, r"`pool_size`.*positive integer or None"),
    ({"pool_size": 2.5}, TypeError, r"`pool_size`.*positive integer or None.*2.5"),
    ({"pool_size": 10}, ValueError, r"`pool_size`.*`initial_labels=20`.*10"),
    ({"balanced_initial": "yes"}, TypeError, r"`balanced_initial`.*bool.*'yes'"),
    ({"balanced_initial": 1}, TypeError, r"`balanced_initial`.*bool.*1"),
    ({"budget": 0}, ValueError, r"`budget`.*positive integer.*0"),
    ({"budget": "300"}, TypeError, r"`budget`.*positive integer.*'300'"),
    ({"budget": 10}, ValueError, r"`budget`.*exceed `initial_labels=20`.*10"),
    ({"initial_labels": -1}, ValueError, r"`initial_labels`.*non-negative integer.*-1"),
    ({"initial_labels": 2.0}, TypeError, r"`initial_labels`.*non-negative integer.*2.0"),
    ({"query_size": 0}, ValueError, r"`query_size`.*positive integer.*0"),
    ({"query_size": 1.5}, TypeError, r"`query_size`.*positive integer.*1.5"),
    ({"iterations": 0}, ValueError, r"`iterations`.*positive integer"),
    ({"iterations": True}, TypeError, r"`iterations`.*positive integer.*True"),
    ({"epochs_per_step": 0}, ValueError, r"`epochs_per_step`.*positive integer"),
    ({"samples_per_epoch": -64}, ValueError, r"`samples_per_epoch`.*positive integer.*-64"),
    ({"val_size": -1}, ValueError, r"`val_size`.*non-negative integer.*-1"),
    ({"patience": 0}, ValueError, r"`patience`.*positive integer"),
    ({"max_epochs_per_step": 0}, ValueError, r"`max_epochs_per_step`.*positive integer"),
    ({"max_pool_size": 0}, ValueError, r"`max_pool_size`.*positive integer or None"),
    ({"max_pool_size": "all"}, TypeError, r"`max_pool_size`.*positive integer or None"),
    ({"batch_size": 0}, ValueError, r"`batch_size`.*positive integer"),
    ({"stop_at": 0.0}, ValueError, r"`stop_at`.*\(0, 1\].*0.0"),
    ({"stop_at": 1.5}, ValueError, r"`stop_at`.*\(0, 1\].*1.5"),
    ({"stop_at": NAN}, ValueError, r"`stop_at`.*\(0, 1\].*nan"),
    ({"stop_at": "0.9"}, ValueError, r"`stop_at`.*\(0, 1\]"),
    ({"cold_start": "kmeans"}, ValueError, r"`cold_start`.*\('typiclust', 'probcover'\).*'kmeans'"),
    ({"risk_weights": "lura"}, ValueError, r"`risk_weights`.*'lure', 'pure' or None.*'lura'"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), PROTOCOL, ids=[repr(c[0])[:40] for c in PROTOCOL])
def test_paper_protocol_refuses(kwargs, error, match):
    refuses("experiments.PaperProtocol()", lambda: PaperProtocol(**kwargs), error, match, kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_labels": 0, "budget": 1},
        {"pool_size": 20, "max_pool_size": None, "stop_at": 1.0},
        {"cold_start": "probcover", "balanced_initial": False, "risk_weights": "pure"},
        {"val_size": 0, "stop_at": 1, "max_pool_size": 1},
    ],
    ids=repr,
)
def test_paper_protocol_accepts_valid_neighbours(kwargs):
    protocol = accepts(lambda: PaperProtocol(**kwargs))
    assert protocol.callback_kwargs()["label_budget"] == protocol.budget


def _datasets(seed: int):
    return blobs(40), blobs(10, seed=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"datasets": _datasets(0)}, TypeError, r"`datasets`.*callable that builds the \(train, test\).*tuple"),
        ({"model": DropoutClassifier()}, TypeError, r"`model`.*callable that builds.*DropoutClassifier instance"),
        ({"heuristics": "bald"}, TypeError, r"`heuristics`.*list of names.*'bald'"),
        ({"heuristics": ["bald@hmc"]}, ValueError, r"`heuristic@posterior`.*'bald@hmc'"),
        ({"heuristics": ["bladd@swag"]}, ValueError, r"`heuristic`.*registered heuristics.*'bladd'"),
        ({"trainer": ["cpu"]}, TypeError, r"`trainer`.*mapping"),
        ({"trainer": {"acelerator": "cpu"}}, ValueError, r"`trainer`.*\['acelerator'\]"),
    ],
)
def test_paper_protocol_experiment_refuses(kwargs, error, match):
    protocol = PaperProtocol(budget=30, initial_labels=10)
    settings = {"heuristics": ["bald"], "seeds": [0], "model": model, "datasets": _datasets, **kwargs}
    refuses("experiments.PaperProtocol.experiment", lambda: protocol.experiment(**settings), error, match, protocol)


def test_paper_protocol_experiment_accepts_valid_neighbours():
    protocol = PaperProtocol(budget=30, initial_labels=10)
    experiment = accepts(
        lambda: protocol.experiment(("bald@laplace", "random"), range(2), model=model, datasets=_datasets, trainer={})
    )
    assert experiment.heuristics == ["bald@laplace", "random"]


# ---------------------------------------------------------------------------------------------- command-line options
def protocol_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_protocol_arguments(parser)
    return parser


FLAGS = [
    (["--query-size", "0"], r"--query-size: expected an integer of at least 1, got 0"),
    (["--budget", "-5"], r"--budget: expected an integer of at least 1, got -5"),
    (["--budget", "ten"], r"--budget: expected an integer, got 'ten'"),
    (["--initial-labels", "-1"], r"--initial-labels: expected an integer of at least 0"),
    (["--iterations", "2.5"], r"--iterations: expected an integer, got '2.5'"),
    (["--epochs-per-step", "0"], r"--epochs-per-step: expected an integer of at least 1"),
    (["--samples-per-epoch", "0"], r"--samples-per-epoch: expected an integer of at least 1"),
    (["--val-size", "-100"], r"--val-size: expected an integer of at least 0"),
    (["--patience", "0"], r"--patience: expected an integer of at least 1"),
    (["--max-epochs-per-step", "0"], r"--max-epochs-per-step: expected an integer of at least 1"),
    (["--max-pool-size", "-1"], r"--max-pool-size: expected an integer of at least 0"),
    (["--stop-at", "nan"], r"--stop-at: expected an accuracy in \(0, 1\], got 'nan'"),
    (["--stop-at", "95"], r"--stop-at: expected an accuracy in \(0, 1\], got '95'"),
]


@pytest.mark.parametrize(("argv", "match"), FLAGS, ids=[" ".join(f[0]) for f in FLAGS])
def test_protocol_options_refuse_naming_the_flag(argv, match):
    parser = protocol_parser()
    refuses(
        f"experiments.add_protocol_arguments ({argv[0]})",
        lambda: parser.parse_args(argv),
        argparse.ArgumentError,
        match,
    )


def test_protocol_from_arguments_refuses_a_budget_below_the_initial_labels():
    args = protocol_parser().parse_args(["--budget", "20"])
    refuses(
        "experiments.protocol_from_arguments",
        lambda: protocol_from_arguments(args),
        ValueError,
        r"`budget`.*exceed `initial_labels=20`.*20",
        args,
    )


def test_protocol_options_accept_valid_neighbours():
    args = accepts(lambda: protocol_parser().parse_args(["--initial-labels", "0", "--budget", "1", "--stop-at", "1"]))
    protocol = protocol_from_arguments(args, pool_size=5)
    assert (protocol.initial_labels, protocol.budget, protocol.stop_at, protocol.pool_size) == (0, 1, 1.0, 5)


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
    ("text", "argv", "match"),
    [
        (
            None,
            ["--metric", "test_accc"],
            r"--metric: the CSV has no column 'test_accc' with values; its columns: \['test_acc'\]",
        ),
        (None, ["--metric", ""], r"--metric: expected a column name"),
        (None, ["--thresholds", "nan"], r"--thresholds: expected a finite number, got 'nan'"),
        (None, ["--thresholds", "0.9", "high"], r"--thresholds: expected a finite number, got 'high'"),
        (HEADER + "bald,0,20.5,0.5\n", [], r"argument csv: .*non-negative integer in column `labelled`.*row 1.*'20.5'"),
        (HEADER + "bald,0,20,x\n", [], r"argument csv: .*number in column `test_acc`.*row 1"),
        ("", [], r"argument csv: .*to have the columns"),
    ],
)
def test_the_command_refuses_naming_the_flag(text, argv, match, tmp_path, capsys):
    path = tmp_path / "c.csv"
    if text is None:
        result().write_csv(path)
    else:
        path.write_text(text)
    plot = ["--plot", str(tmp_path / "c.png")]
    refuses(
        "experiments.__main__ (python -m lightning_bal.experiments)",
        lambda: command([str(path), *argv, *plot], capsys),
        CommandError,
        match,
        folder(tmp_path),
    )


def test_the_command_accepts_valid_neighbours(tmp_path, capsys):
    path = result().write_csv(tmp_path / "c.csv")
    assert accepts(lambda: command([str(path), "--metric", "test_acc", "--thresholds", "1", "0.85"], capsys)) == 0
    assert "| bald | 2 |" in capsys.readouterr().out


def test_history_figures_may_be_one_element_tensors():
    outcome = accepts(lambda: ExperimentResult({"bald": {0: [{"active/num_labelled": torch.tensor(20)}]}}))
    assert outcome.metrics() == []


# ------------------------------------------------------------------------------------ cold start, data, models
def cold_datamodule() -> ActiveDataModule:
    return ActiveDataModule(blobs(30), seed=0)


def pixels() -> torch.Tensor:
    return torch.randn(30, 1, 4, 4, generator=torch.Generator().manual_seed(0))


def spoilt_pixels() -> torch.Tensor:
    x = pixels()
    x[3, 0, 1, 1] = NAN
    return x


OTHERS = [
    # (entry, call, error, message pattern)
    ("pixel_embeddings", lambda: pixel_embeddings(pixels(), dims=2.5), ValueError, r"`dims`.*integer in \[1, 16\]"),
    ("pixel_embeddings", lambda: pixel_embeddings(pixels(), dims=True), ValueError, r"`dims`.*integer.*True"),
    ("pixel_embeddings", lambda: pixel_embeddings(pixels(), dims=17), ValueError, r"`dims`.*\[1, 16\].*17"),
    ("pixel_embeddings", lambda: pixel_embeddings(spoilt_pixels(), dims=2), ValueError, r"`inputs`.*finite.*row 3"),
    ("pixel_embeddings", lambda: pixel_embeddings([[1.0, 2.0]], dims=1), ValueError, r"`inputs`.*real tensor.*list"),
    ("pixel_embeddings", lambda: pixel_embeddings(torch.zeros(5), dims=1), ValueError, r"`inputs`.*\[N, \.\.\.\]"),
    ("pixel_embeddings", lambda: pixel_embeddings(pixels(), dims=2, seed=1.5), TypeError, r"`seed`.*integer.*1.5"),
    (
        "cold_start_labels",
        lambda: cold_start_labels(cold_datamodule(), pixels(), "kmeans", 2, 3, 0),
        ValueError,
        r"`method`.*\('typiclust', 'probcover'\).*'kmeans'",
    ),
    (
        "cold_start_labels",
        lambda: cold_start_labels(cold_datamodule(), pixels(), "typiclust", 0, 3, 0),
        ValueError,
        r"`count`.*\[1, 30\].*0",
    ),
    (
        "cold_start_labels",
        lambda: cold_start_labels(cold_datamodule(), pixels(), "typiclust", 2.0, 3, 0),
        ValueError,
        r"`count`.*integer.*2.0",
    ),
    (
        "cold_start_labels",
        lambda: cold_start_labels(cold_datamodule(), pixels()[:20], "typiclust", 2, 3, 0),
        ValueError,
        r"`inputs`.*30 training inputs.*20 rows",
    ),
    (
        "cold_start_labels",
        lambda: cold_start_labels(cold_datamodule(), pixels(), "probcover", 2, 1, 0),
        ValueError,
        r"`num_classes`.*>= 2.*1",
    ),
    (
        "cold_start_labels",
        lambda: cold_start_labels(blobs(30), pixels(), "typiclust", 2, 3, 0),
        TypeError,
        r"`datamodule`.*ActiveDataModule.*TensorDataset",
    ),
    (
        "cold_start_labels",
        lambda: cold_start_labels(cold_datamodule(), pixels(), "typiclust", 2, 3, "0"),
        TypeError,
        r"`seed`.*integer",
    ),
    (
        "cold_start_labels",
        lambda: cold_start_labels(cold_datamodule(), spoilt_pixels(), "probcover", 2, 3, 0),
        ValueError,
        r"`inputs`.*finite.*row 3",
    ),
    ("load_digits", lambda: load_digits(test_size=0.5), ValueError, r"`test_size`.*integer in \(0, 1797\).*0.5"),
    ("load_digits", lambda: load_digits(test_size=1797), ValueError, r"`test_size`.*\(0, 1797\).*1797"),
    ("load_digits", lambda: load_digits(seed="a"), TypeError, r"`seed`.*integer.*'a'"),
    ("load_mnist", lambda: load_mnist(5), TypeError, r"`root`.*folder path or None.*5"),
    ("read_idx", lambda: read_idx("/nonexistent/x-idx1-ubyte.gz"), FileNotFoundError, r"`path`.*IDX.*not a file"),
    ("read_idx", lambda: read_idx(None), TypeError, r"`path`.*file path.*None"),
    ("DropoutCNN", lambda: DropoutCNN("digits", image_size=8, lr=-1), ValueError, r"`lr`.*finite positive.*-1"),
    ("DropoutCNN", lambda: DropoutCNN("digits", image_size=8, lr=NAN), ValueError, r"`lr`.*finite positive.*nan"),
    ("DropoutCNN", lambda: DropoutCNN("digits", image_size=8.5), TypeError, r"`image_size`.*integer.*8.5"),
    ("DropoutCNN", lambda: DropoutCNN("digits", image_size=2), ValueError, r"`image_size`.*at least 4.*2"),
    ("DropoutCNN", lambda: DropoutCNN("digits", image_size=8, num_classes=1), ValueError, r"`num_classes`.*>= 2"),
    ("DropoutCNN", lambda: DropoutCNN("digits", image_size=8, weight_decay=-0.1), ValueError, r"`weight_decay`"),
    ("DropoutCNN", lambda: DropoutCNN("resnet"), ValueError, r"`network`.*\['digits', 'gal', 'kirsch'\]"),
    ("DropoutCNN", lambda: DropoutCNN("kirsch", channels_last=1), TypeError, r"`channels_last`.*bool.*1"),
    ("networks", lambda: gal_cnn(image_size="28"), TypeError, r"`image_size`.*integer.*'28'"),
    ("networks", lambda: kirsch_cnn(num_classes=0), ValueError, r"`num_classes`.*>= 2.*0"),
    ("networks", lambda: digits_cnn(num_classes=2.0), ValueError, r"`num_classes`.*>= 2.*2.0"),
    ("networks", lambda: Standardize(0.1, 0.0), ValueError, r"`std`.*finite positive.*0.0"),
    ("networks", lambda: Standardize(NAN, 1.0), ValueError, r"`mean`.*finite.*nan"),
    ("posterior_row", lambda: posterior_row(5), TypeError, r"row name.*5"),
    ("posterior_row", lambda: posterior_row("bald"), ValueError, r"`name`.*`heuristic@posterior`.*'bald'"),
    ("posterior_row", lambda: posterior_row("bald@ensemble", members=1), ValueError, r"`members`.*at least 2.*1"),
    ("posterior_row", lambda: posterior_row("bald@swag", swag={"rnk": 3}), ValueError, r"`swag`.*SWAG.*\['rnk'\]"),
    ("posterior_row", lambda: posterior_row("bald@swag", swag=[3]), TypeError, r"`swag`.*mapping"),
    ("posterior_row", lambda: split_row_name(None), TypeError, r"row name.*None"),
    ("posterior_row", lambda: split_row_name("bald@"), ValueError, r"`heuristic@posterior`.*'bald@'"),
    ("ensemble", lambda: ensemble_loader(cold_datamodule(), 0), ValueError, r"`num_members`.*positive.*0"),
    ("ensemble", lambda: ensemble_loader(blobs(30), 2), TypeError, r"`datamodule`.*ActiveDataModule"),
    ("ensemble", lambda: EnsembleCNN([digits_cnn(), digits_cnn()], lr=0), ValueError, r"`lr`.*finite positive.*0"),
    ("ensemble", lambda: EnsembleCNN([digits_cnn()] * 2, own_data_order="yes"), TypeError, r"`own_data_order`.*bool"),
    (
        "ensemble",
        lambda: EnsembleCNN.around(DropoutCNN("digits", image_size=8), 3, seed="x"),
        TypeError,
        r"`seed`.*integer.*'x'",
    ),
    ("ensemble", lambda: EnsembleCNN.around(DropoutCNN("digits", image_size=8), 1), ValueError, r"`num_members`"),
]


@pytest.mark.parametrize(("entry", "call", "error", "match"), OTHERS, ids=[f"{c[0]}-{i}" for i, c in enumerate(OTHERS)])
def test_cold_start_data_and_model_entries_refuse(entry, call, error, match):
    refuses(f"experiments.{entry}", call, error, match)


def test_a_refused_cold_start_leaves_the_datamodule_as_it_was():
    dm = cold_datamodule()
    refuses(
        "experiments.cold_start_labels",
        lambda: cold_start_labels(dm, pixels(), "typiclust", 31, 3, 0),
        ValueError,
        r"`count`.*\[1, 30\].*31",
        dm,
    )
    refuses(
        "experiments.ensemble_loader",
        lambda: ensemble_loader(dm, -2),
        ValueError,
        r"`num_members`.*positive.*-2",
        dm,
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: pixel_embeddings(pixels().double(), dims=16, seed=-1),
        lambda: cold_start_labels(cold_datamodule(), pixels(), "probcover", 30, 2, 3),
        lambda: DropoutCNN("digits", image_size=4, num_classes=2, lr=1, weight_decay=0),
        lambda: Standardize(-1, 1e-3),
        lambda: posterior_row("bald@swag", members=2, swag={"rank": 2}),
        lambda: ensemble_loader(cold_datamodule(), 1),
        lambda: EnsembleCNN.around(DropoutCNN("digits", image_size=8), 2, seed=-4, own_data_order=False),
    ],
)
def test_cold_start_data_and_model_entries_accept_valid_neighbours(call):
    assert accepts(call) is not None
