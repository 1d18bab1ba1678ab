"""Paired comparisons against a baseline: known numbers (scipy), properties (hypothesis), the table and the figure."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from lightning_bal.experiments import (
    ExperimentResult,
    PairedDifference,
    confidence_interval,
    paired_comparison,
    paired_table,
    plot_paired,
    t_quantile,
)


def _run(accuracies, start=20, step=10):
    return [{"active/num_labelled": start + step * i, "active/test_acc": a} for i, a in enumerate(accuracies)]


def _result(rows):
    return ExperimentResult(
        {name: {seed: _run(curve) for seed, curve in by_seed.items()} for name, by_seed in rows.items()}
    )


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 9, 10, 29, 30, 100])
@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.99])
def test_t_quantile_matches_scipy(df, level):
    assert t_quantile(level, df) == pytest.approx(stats.t.ppf((1 + level) / 2, df), rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_t_interval_matches_scipy(seed, n):
    values = np.random.default_rng(seed).normal(0.02, 0.05, size=n)
    difference = confidence_interval(dict(enumerate(values.tolist())))
    low, high = stats.t.interval(0.95, n - 1, loc=values.mean(), scale=stats.sem(values))
    assert (difference.mean, difference.low, difference.high) == pytest.approx((values.mean(), low, high), rel=1e-9)
    assert difference.above == int((values > 0).sum())
    assert difference.seeds == n


def test_bootstrap_is_seeded_and_its_interval_holds_the_mean():
    values = {0: 0.01, 1: 0.05, 2: -0.02, 3: 0.03, 4: 0.04}
    first = confidence_interval(values, method="bootstrap", seed=3)
    assert first == confidence_interval(values, method="bootstrap", seed=3)
    assert first != confidence_interval(values, method="bootstrap", seed=4)
    assert min(values.values()) <= first.low < first.mean < first.high <= max(values.values())
    # The percentile interval is narrower than t's with 5 seeds (it ignores the small-sample correction).
    t = confidence_interval(values)
    assert t.low < first.low
    assert first.high < t.high


def test_two_seeds_give_the_wide_t_interval():
    difference = confidence_interval({0: 0.0, 1: 0.1})
    # mean +- 12.706 * sd / sqrt(2), sd / sqrt(2) = 0.05
    assert difference.high - difference.low == pytest.approx(2 * 12.7062047 * 0.05, rel=1e-6)


@st.composite
def paired_rows(draw):
    """A baseline and a heuristic over 2-6 seeds with the same steps per seed (same grid for every seed)."""
    seeds = draw(st.lists(st.integers(-5, 50), min_size=2, max_size=6, unique=True))
    length = draw(st.integers(1, 5))
    values = st.lists(st.floats(0.0, 1.0, allow_nan=False, width=32), min_size=length, max_size=length)
    return {name: {seed: draw(values) for seed in seeds} for name in ("bald", "random")}


@settings(max_examples=60, deadline=None)
@given(rows=paired_rows(), shift=st.floats(-0.5, 0.5, allow_nan=False, width=32))
def test_a_constant_shift_gives_that_shift_with_zero_width(rows, shift):
    rows["bald"] = {seed: [value + shift for value in curve] for seed, curve in rows["random"].items()}
    for method in ("t", "bootstrap"):
        comparison = paired_comparison(_result(rows), method=method, resamples=200)["bald"]
        for difference in [comparison.area, *(d for _, d in comparison.steps)]:
            assert difference.mean == pytest.approx(shift, abs=1e-9)
            assert difference.high - difference.low == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(rows=paired_rows(), method=st.sampled_from(["t", "bootstrap"]))
def test_swapping_heuristic_and_baseline_negates(rows, method):
    result = _result(rows)
    forward = paired_comparison(result, method=method, resamples=500)["bald"]
    backward = paired_comparison(result, baseline="bald", method=method, resamples=500)["random"]
    pairs = [
        (forward.area, backward.area),
        *((f, b) for (_, f), (_, b) in zip(forward.steps, backward.steps, strict=True)),
    ]
    for f, b in pairs:
        assert f.mean == pytest.approx(-b.mean, abs=1e-12)
        assert f.low == pytest.approx(-b.high, abs=1e-9)
        assert f.high == pytest.approx(-b.low, abs=1e-9)
        assert {s: -v for s, v in f.values.items()} == pytest.approx(b.values, abs=1e-12)
    assert forward.labels_to_target == backward.baseline_labels_to_target


@settings(max_examples=60, deadline=None)
@given(rows=paired_rows(), method=st.sampled_from(["t", "bootstrap"]), order=st.randoms(use_true_random=False))
def test_permuting_the_seeds_changes_nothing(rows, method, order):
    seeds = list(rows["random"])
    order.shuffle(seeds)
    permuted = {name: {seed: by_seed[seed] for seed in seeds} for name, by_seed in reversed(rows.items())}
    assert paired_comparison(_result(permuted), method=method, resamples=300) == paired_comparison(
        _result(rows), method=method, resamples=300
    )


def test_every_row_is_compared_over_the_steps_all_its_pairs_share():
    # Seed 1 of bald stopped a step early (a target reached): the steps and the area use the first two steps.
    rows = {
        "random": {0: [0.5, 0.6, 0.7], 1: [0.4, 0.6, 0.8]},
        "bald": {0: [0.5, 0.7, 0.9], 1: [0.4, 0.9]},
        "entropy": {0: [0.5, 0.6, 0.6], 1: [0.4, 0.5, 0.9]},
    }
    comparisons = paired_comparison(_result(rows), target=0.85)
    assert list(comparisons) == ["bald", "entropy"]
    bald, entropy = comparisons["bald"], comparisons["entropy"]
    assert [n for n, _ in bald.steps] == [20, 30]
    assert [n for n, _ in entropy.steps] == [20, 30, 40]
    assert bald.steps[1][1].values == pytest.approx({0: 0.1, 1: 0.3})
    assert bald.area.values == pytest.approx({0: 0.05, 1: 0.15})
    assert (bald.area.above, entropy.area.above) == (2, 0)
    assert bald.labels_to_target == {0: 40, 1: 30}
    assert entropy.labels_to_target == {0: None, 1: 40}
    assert bald.baseline_labels_to_target == {0: None, 1: None}
    assert bald.interval == "95% t interval over 2 seeds"
    assert paired_comparison(_result(rows), target=None)["bald"].labels_to_target == {0: None, 1: None}


def test_the_table_holds_each_heuristic_and_each_step(tmp_path):
    rows = {
        "random": {0: [0.5, 0.6], 1: [0.4, 0.6], 2: [0.5, 0.7]},
        "bald": {0: [0.5, 0.9], 1: [0.4, 0.8], 2: [0.5, 0.6]},
    }
    table = paired_table(paired_comparison(_result(rows), target=0.8)).splitlines()
    assert table[0] == "Paired differences to random, 95% t interval over 3 seeds."
    # Areas: 0.15, 0.1, -0.05 -> mean 0.0667; labels to 0.8: 30, 30, never -> median 30.
    assert table[4] == (
        "| bald | +0.0667 [-0.1919, +0.3252] | 2 of 3 | 30 (30 to never): 30 / 30 / never |"
        " never (never to never): never / never / never |"
    )
    assert table[-2].startswith("| 20 | +0.0000 [+0.0000, +0.0000] (0/3) |")
    assert table[-1].startswith("| 30 | +0.1333 [-0.3838, +0.6504] (2/3) |")
    assert "very wide" in paired_table(paired_comparison(_result({k: {0: v[0], 1: v[1]} for k, v in rows.items()})))


@pytest.mark.parametrize("with_curves", [False, True])
def test_the_figure_is_a_png(tmp_path, with_curves):
    pytest.importorskip("matplotlib")
    rows = {"random": {0: [0.5, 0.6], 1: [0.4, 0.6]}, "bald": {0: [0.5, 0.9], 1: [0.4, 0.8]}}
    result = _result(rows)
    path = plot_paired(paired_comparison(result), tmp_path / "d" / "paired.png", result=result if with_curves else None)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_a_tie_is_not_above():
    difference = PairedDifference(0.0, -0.1, 0.1, {0: 0.1, 1: 0.0, 2: -0.1})
    assert (difference.seeds, difference.above) == (3, 1)
