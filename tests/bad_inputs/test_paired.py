"""Bad inputs to the paired comparisons: paired_comparison, confidence_interval, t_quantile, the table, the figure, the
command's --paired."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_bal.experiments import (
    ExperimentResult,
    confidence_interval,
    paired_comparison,
    paired_table,
    plot_paired,
    t_quantile,
)
from tests.bad_inputs.harness import accepts, refuses
from tests.bad_inputs.test_experiments import CommandError, command

NAN, INF = float("nan"), float("inf")


def run(*accuracies: float, step: int = 10) -> list[dict[str, float]]:
    return [{"active/num_labelled": 20 + step * i, "active/test_acc": a} for i, a in enumerate(accuracies)]


def paired() -> dict[str, dict[int, list[dict[str, float]]]]:
    return {
        "bald": {0: run(0.5, 0.9), 1: run(0.6, 0.8), 2: run(0.5, 0.7)},
        "random": {0: run(0.5, 0.7), 1: run(0.6, 0.7), 2: run(0.5, 0.6)},
    }


def folder(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _without(histories, name, seed):
    histories[name].pop(seed)
    return histories


def _extra(histories, name, seed):
    histories[name][seed] = run(0.5, 0.6)
    return histories


def _regrid(histories):
    histories["bald"][1] = run(0.6, 0.8, step=20)
    return histories


def _one_seed(histories):
    return {name: {0: by_seed[0]} for name, by_seed in histories.items()}


def _empty(histories):
    histories["bald"][2] = [{"active/num_labelled": 20.0}]
    return histories


RESULTS = [
    (lambda h: h, {"baseline": "Random"}, ValueError, r"`baseline`.*one of \['bald', 'random'\].*'Random'"),
    (lambda h: h, {"baseline": None}, ValueError, r"`baseline`.*row of the result.*None"),
    (lambda h: _without(h, "bald", 2), {}, ValueError, r"same seeds.*'bald' has \[0, 1\].*missing \[2\]"),
    (lambda h: _extra(h, "bald", 7), {}, ValueError, r"same seeds.*'bald'.*unpaired \[7\]"),
    (lambda h: _without(h, "random", 0), {}, ValueError, r"same seeds.*'bald'.*\[0, 1, 2\].*\[1, 2\]"),
    (_regrid, {}, ValueError, r"paired runs \(the same labelled counts.*'bald' seed 1 has \[20, 40\]"),
    (_one_seed, {}, ValueError, r"at least 2 seeds of the baseline 'random'.*\[0\]"),
    (lambda h: {"random": h["random"]}, {}, ValueError, r"a row besides the baseline 'random'"),
    (_empty, {}, ValueError, r"hold the metric at some step.*'bald' seed 2"),
    (lambda h: h, {"metric": ""}, TypeError, r"`metric`.*non-empty"),
    (lambda h: h, {"metric": "active/val_acc"}, ValueError, r"`metric`.*one of \['active/test_acc'\]"),
    (lambda h: h, {"target": NAN}, ValueError, r"`target`.*finite number.*nan"),
    (lambda h: h, {"target": "0.9"}, ValueError, r"`target`.*finite number"),
    (lambda h: h, {"level": 95}, ValueError, r"`level`.*\(0, 1\).*95"),
    (lambda h: h, {"level": 1.0}, ValueError, r"`level`.*\(0, 1\)"),
    (lambda h: h, {"method": "bca"}, ValueError, r"`method`.*'t' or 'bootstrap'.*'bca'"),
    (lambda h: h, {"resamples": 0}, ValueError, r"`resamples`.*positive integer.*0"),
    (lambda h: h, {"resamples": 10.0}, ValueError, r"`resamples`.*positive integer"),
    (lambda h: h, {"seed": -1}, ValueError, r"`seed`.*non-negative integer.*-1"),
]


@pytest.mark.parametrize(("change", "kwargs", "error", "match"), RESULTS)
def test_paired_comparison_refuses(change, kwargs, error, match):
    outcome = ExperimentResult(change(paired()))
    refuses("experiments.paired_comparison", lambda: paired_comparison(outcome, **kwargs), error, match, outcome)


def test_paired_comparison_refuses_a_non_result():
    histories = paired()
    refuses(
        "experiments.paired_comparison",
        lambda: paired_comparison(histories),
        TypeError,
        r"`result`.*ExperimentResult.*dict",
        histories,
    )


def test_paired_comparison_accepts_valid_neighbours():
    outcome = ExperimentResult(paired())
    assert accepts(lambda: paired_comparison(outcome, "bald"))["random"].area.above == 0
    assert accepts(lambda: paired_comparison(outcome, target=None, level=0.9, method="bootstrap", resamples=10))
    two = ExperimentResult(_without(_without(paired(), "random", 2), "bald", 2))
    assert accepts(lambda: paired_comparison(two))["bald"].area.seeds == 2
    # A row stopped early is compared over the steps it shares with the baseline.
    early = paired()
    early["bald"][0] = early["bald"][0][:1]
    assert [n for n, _ in accepts(lambda: paired_comparison(ExperimentResult(early)))["bald"].steps] == [20]


@pytest.mark.parametrize(
    ("values", "kwargs", "error", "match"),
    [
        ({0: 0.1}, {}, ValueError, r"`values`.*at least 2 seeds.*got 1"),
        ({}, {}, ValueError, r"`values`.*at least 2 seeds.*got 0"),
        ([0.1, 0.2], {}, TypeError, r"`values`.*mapping \{seed: difference\}"),
        ({0: 0.1, 1: NAN}, {}, ValueError, r"`values`.*finite numbers.*seed 1 has nan"),
        ({0: 0.1, 1: True}, {}, ValueError, r"`values`.*finite numbers.*seed 1 has True"),
        ({0: 0.1, "1": 0.2}, {}, TypeError, r"`values`.*integer seeds.*'1'"),
        ({0: 0.1, 1: 0.2}, {"level": 0}, ValueError, r"`level`.*\(0, 1\)"),
        ({0: 0.1, 1: 0.2}, {"method": "T"}, ValueError, r"`method`.*'T'"),
    ],
)
def test_confidence_interval_refuses(values, kwargs, error, match):
    refuses(
        "experiments.confidence_interval", lambda: confidence_interval(values, **kwargs), error, match, values, kwargs
    )


@pytest.mark.parametrize(
    ("level", "df", "match"),
    [
        (0.0, 3, r"`level`.*\(0, 1\)"),
        (NAN, 3, r"`level`"),
        (0.95, 0, r"`df`.*positive integer.*0"),
        (0.95, 2.0, r"`df`"),
    ],
)
def test_t_quantile_refuses(level, df, match):
    refuses("experiments.t_quantile", lambda: t_quantile(level, df), ValueError, match)


def test_the_table_and_the_figure_refuse(tmp_path):
    comparisons = paired_comparison(ExperimentResult(paired()))
    against_bald = paired_comparison(ExperimentResult(paired()), "bald")
    mixed = {"bald": comparisons["bald"], "random": against_bald["random"]}
    for call, error, match in [
        (lambda: paired_table({}), TypeError, r"`comparisons`.*non-empty"),
        (lambda: paired_table({"bald": 0.1}), TypeError, r"`comparisons`.*PairedComparison"),
        (lambda: paired_table(mixed), ValueError, r"`comparisons` against one baseline.*\['bald', 'random'\]"),
        (lambda: plot_paired(comparisons, 5), TypeError, r"`path`.*file path.*5"),
        (lambda: plot_paired({}, tmp_path / "p.png"), TypeError, r"`comparisons`"),
        (lambda: plot_paired(comparisons, tmp_path / "p.png", result={}), TypeError, r"`result`.*ExperimentResult"),
    ]:
        refuses("experiments.paired_table / plot_paired", call, error, match, comparisons, folder(tmp_path))
    assert folder(tmp_path) == {}


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--paired", "Random"], r"argument --paired: .*`baseline`.*'Random'"),
        (["--paired-plot", "p.png"], r"argument --paired-plot: needs --paired"),
        (["--paired", "random", "--metric", "val_acc"], r"argument --metric"),
        (["--rows", "bald", "BALD"], r"argument --rows: \['BALD'\] are not rows.*\['bald', 'random'\]"),
        (["--seeds", "0", "5"], r"argument --seeds: no run of seed \[5\]; the runs hold seeds \[0, 1, 2\]"),
        (["--seeds", "0", "x"], r"argument --seeds: invalid int value: 'x'"),
        (["--rows"], r"argument --rows: expected at least one argument"),
        (["--seeds", "1", "--paired", "random"], r"argument --paired: .*at least 2 seeds.*\[1\]"),
    ],
)
def test_the_command_refuses_a_bad_paired_baseline(argv, match, tmp_path, capsys):
    path = ExperimentResult(paired()).write_csv(tmp_path / "curves.csv")
    before = folder(tmp_path)
    plot = ["--plot", str(tmp_path / "c.png")]
    refuses(
        "experiments.__main__ (python -m lightning_bal.experiments)",
        lambda: command([str(path), *argv, *plot], capsys),
        CommandError,
        match,
        folder(tmp_path),
    )
    assert folder(tmp_path) == before


def test_the_command_prints_the_paired_table_and_draws_it(tmp_path, capsys):
    path = ExperimentResult(paired()).write_csv(tmp_path / "curves.csv")
    plot = tmp_path / "paired.png"
    assert accepts(lambda: command([str(path), "--paired", "random", "--paired-plot", str(plot)], capsys)) == 0
    out = capsys.readouterr().out
    assert "Paired differences to random, 95% t interval over 3 seeds." in out
    assert "| bald | +0.0667 [" in out  # areas 0.1, 0.05, 0.05
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_the_command_refuses_seeds_that_leave_a_row_empty(tmp_path, capsys):
    histories = paired()
    histories["bald"] = {seed: histories["bald"][seed] for seed in (0, 1)}
    path = ExperimentResult(histories).write_csv(tmp_path / "curves.csv")
    refuses(
        "experiments.__main__ (python -m lightning_bal.experiments)",
        lambda: command([str(path), "--seeds", "2"], capsys),
        CommandError,
        r"argument --seeds: rows \['bald'\] have no run of seeds \[2\].*--rows",
        folder(tmp_path),
    )
    assert accepts(lambda: command([str(path), "--seeds", "2", "--rows", "random"], capsys)) == 0


def test_the_command_compares_the_chosen_seeds_and_rows(tmp_path, capsys):
    histories = paired()
    histories["badge"] = {seed: run(0.5, 0.5) for seed in (0, 1, 2)}
    path = ExperimentResult(histories).write_csv(tmp_path / "curves.csv")
    argv = [str(path), "--paired", "random", "--seeds", "0", "1", "--rows", "random", "bald"]
    assert accepts(lambda: command(argv, capsys)) == 0
    out = capsys.readouterr().out
    assert "Paired differences to random, 95% t interval over 2 seeds" in out
    assert "| bald | +0.0750 [" in out  # areas 0.1 and 0.05
    assert "badge" not in out
