"""The experiment API: same start per seed, one history per run, CSV, plot, summaries, TensorBoard layout."""

import csv
import sys

import pytest
import torch

from lightning_bal import ActiveDataModule
from lightning_bal.experiments import Experiment, ExperimentResult, area_under_curve, labels_to_reach, mean_and_spread
from lightning_bal.utilities.tensorboard import plot_curves_from_events, read_scalars
from tests.helpers.models import DropoutClassifier, blobs

BUILT: list[torch.Tensor] = []


def _model(seed: int) -> DropoutClassifier:
    model = DropoutClassifier()
    BUILT.append(model.net[0].weight.detach().clone())
    return model


def _datamodule(seed: int) -> ActiveDataModule:
    return ActiveDataModule(blobs(60), val_dataset=blobs(30, seed=1), initial_labels=6, batch_size=16, seed=seed)


def _experiment(heuristics=("bald", "random"), seeds=(0, 1), **kwargs) -> Experiment:
    return Experiment(
        list(heuristics),
        list(seeds),
        model=_model,
        datamodule=_datamodule,
        callback={"query_size": 4, "iterations": 3, "label_budget": 14},
        trainer={"enable_progress_bar": False, "accelerator": "cpu", "log_every_n_steps": 1},
        metric="active/val_acc",
        **kwargs,
    )


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> tuple[ExperimentResult, object]:
    BUILT.clear()
    log_dir = tmp_path_factory.mktemp("tb")
    calls = []
    outcome = _experiment(log_dir=log_dir).run(on_run=lambda name, seed, partial, seconds: calls.append((name, seed)))
    return outcome, {"calls": calls, "log_dir": log_dir, "built": list(BUILT)}


def test_every_heuristic_runs_every_seed_from_the_same_labels_and_weights(result):
    outcome, seen = result
    assert seen["calls"] == [("bald", 0), ("random", 0), ("bald", 1), ("random", 1)]
    # Each run builds its model from its seed alone: the same weights within a seed, different ones across seeds.
    assert len(seen["built"]) == 4
    assert torch.equal(seen["built"][0], seen["built"][1])
    assert torch.equal(seen["built"][2], seen["built"][3])
    assert not torch.equal(seen["built"][0], seen["built"][2])
    curves = outcome.curves()
    for seed in (0, 1):
        assert [n for n, _ in curves["bald"][seed]] == [6, 10, 14]
        # Same labels, same weights and same training seed: the first point, before any selection, is the same.
        first = {name: outcome.histories[name][seed][0] for name in ("bald", "random")}
        for key in ("active/num_labelled", "active/val_loss", "active/val_acc", "active/labelled_class_0"):
            assert first["bald"][key] == first["random"][key]
    assert outcome.histories["bald"][0][0]["active/val_loss"] != outcome.histories["bald"][1][0]["active/val_loss"]


def test_the_tensorboard_runs_share_a_layout(result):
    _, seen = result
    runs = read_scalars(seen["log_dir"])
    assert sorted(runs) == ["bald/seed_0", "bald/seed_1", "random/seed_0", "random/seed_1"]
    assert [step for step, _ in runs["bald/seed_0"]["active/val_acc"]] == [6, 10, 14]
    # The layout's own event file sits at the root, for every run under it.
    assert list(seen["log_dir"].glob("events.out.tfevents.*"))


def test_csv_round_trip_and_summaries(result, tmp_path):
    outcome, _ = result
    path = outcome.write_csv(tmp_path / "curves.csv")
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 3
    assert {"heuristic", "seed", "labelled", "val_acc", "num_pool", "num_scored"} <= set(rows[0])
    back = ExperimentResult.read_csv(path, metric="active/val_acc")
    for name, by_seed in outcome.curves().items():
        for seed, curve in by_seed.items():
            assert back.curves()[name][seed] == [(n, pytest.approx(v, abs=5e-5)) for n, v in curve]
    table = outcome.summary(thresholds=(0.5, 1.01)).splitlines()
    assert table[0].startswith("| heuristic | seeds | area under the curve")
    assert table[2].startswith("| bald | 2 |")
    assert table[2].endswith("| - / - |")
    areas = outcome.area_under_curve()
    assert areas["random"][1] == pytest.approx(area_under_curve(outcome.curves()["random"][1]))


def test_plot_writes_a_png_or_says_what_is_missing(result, tmp_path, monkeypatch):
    outcome, _ = result
    path = outcome.plot(tmp_path / "curve.png", title="blobs", thresholds=(0.9,))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'lightning-bal\[examples\]'"):
        outcome.plot(tmp_path / "again.png")
    with pytest.raises(ImportError, match="matplotlib"):
        plot_curves_from_events(tmp_path, tmp_path / "x.png")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"heuristics": []}, "`heuristics` to be a non-empty list"),
        ({"heuristics": ["bald", "bald"]}, "each heuristic once"),
        ({"seeds": [0, 0]}, "`seeds` to be distinct"),
        ({"seeds": []}, "`seeds` to be distinct"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _experiment(**kwargs)


def test_the_experiment_sets_heuristic_and_seed_itself():
    with pytest.raises(ValueError, match="without `seed`"):
        Experiment(["bald"], [0], model=_model, datamodule=_datamodule, callback={"query_size": 2, "seed": 3})


@pytest.mark.parametrize(
    ("curve", "threshold", "expected"),
    [([(20, 0.5), (30, 0.9)], 0.9, 30), ([(20, 0.95)], 0.9, 20), ([(20, 0.5), (30, 0.89)], 0.9, None)],
)
def test_labels_to_reach(curve, threshold, expected):
    assert labels_to_reach(curve, threshold) == expected


@pytest.mark.parametrize(
    ("curve", "expected"),
    [([(0, 0.0), (10, 1.0)], 0.5), ([(0, 1.0), (10, 1.0), (30, 0.0)], 2 / 3), ([(5, 0.25)], 0.25)],
)
def test_area_under_curve_is_the_mean_over_the_labelled_range(curve, expected):
    assert area_under_curve(curve) == pytest.approx(expected)


def test_mean_and_spread_cut_to_the_shortest_run():
    xs, mean, low, high = mean_and_spread([[(1, 0.0), (2, 1.0), (3, 1.0)], [(1, 1.0), (2, 0.5)]])
    assert (xs, mean, low, high) == ([1, 2], [0.5, 0.75], [0.0, 0.5], [1.0, 1.0])
    with pytest.raises(ValueError, match="non-empty curve"):
        mean_and_spread([[]])
