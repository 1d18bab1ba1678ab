"""Paired comparisons against a baseline: per step and for the area under the curve, over the seeds of a result.

The runs of one seed share their initial labels and initial weights (:class:`~lightning_bal.experiments.Experiment`),
so a heuristic and the baseline of the same seed form a pair, and the statistic is the difference within each pair:
the mean over seeds with a 95% confidence interval, and the number of seeds on which the heuristic is above.

Each difference and its interval over seeds come from :func:`~lightning_bal.experiments.intervals.confidence_interval`
(Student's t by default, or a seeded bootstrap; :mod:`lightning_bal.experiments.intervals` says when to use which).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightning_bal.experiments.curves import (
    Curve,
    area_under_curve,
    check_threshold,
    labels_to_reach,
    mean_and_spread,
)
from lightning_bal.experiments.intervals import PairedDifference, confidence_interval
from lightning_bal.experiments.result import ExperimentResult, check_metric, check_path

__all__ = [
    "PairedComparison",
    "paired_comparison",
    "paired_table",
    "plot_paired",
]


@dataclass(frozen=True)
class PairedComparison:
    """A heuristic against the baseline over the seeds of a result.

    Attributes:
        heuristic: the row compared.
        baseline: the row it is compared to.
        metric: the figure of the curves.
        interval: how the intervals were made: ``"95% t interval over 5 seeds"``.
        steps: ``[(labelled, difference)]`` at every step all pairs share.
        area: the difference of the areas under the curves over those steps (:func:`area_under_curve`).
        target: the value of ``labels_to_target`` (``None``: none asked).
        labels_to_target: ``{seed: labels}`` at which the heuristic's curve first reaches ``target`` (``None``: never).
        baseline_labels_to_target: the same for the baseline.
    """

    heuristic: str
    baseline: str
    metric: str
    interval: str
    steps: list[tuple[int, PairedDifference]]
    area: PairedDifference
    target: float | None
    labels_to_target: dict[int, int | None]
    baseline_labels_to_target: dict[int, int | None]


def _common_steps(name: str, baseline: str, curves: Mapping[str, Mapping[int, Curve]]) -> list[int]:
    """The labelled counts that every run of ``name`` and ``baseline`` holds, in step order (a prefix of each)."""
    runs = [(row, seed, curve) for row in (name, baseline) for seed, curve in sorted(curves[row].items())]
    empty = [f"{row!r} seed {seed}" for row, seed, curve in runs if not curve]
    if empty:
        raise ValueError(f"Expected every run to hold the metric at some step, but {', '.join(empty)} hold none.")
    length = min(len(curve) for _, _, curve in runs)
    grid = [labelled for labelled, _ in runs[0][2][:length]]
    for row, seed, curve in runs:
        counts = [labelled for labelled, _ in curve[:length]]
        if counts != grid:
            # Differences at different label counts would compare different amounts of labelling.
            raise ValueError(
                f"Expected argument `result` to hold paired runs (the same labelled counts step by step), but"
                f" {row!r} seed {seed} has {counts} where {runs[0][0]!r} seed {runs[0][1]} has {grid}."
            )
    return grid


def paired_comparison(
    result: ExperimentResult,
    baseline: str = "random",
    *,
    metric: str | None = None,
    target: float | None = 0.9,
    level: float = 0.95,
    method: str = "t",
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, PairedComparison]:
    """Every other row of ``result`` against ``baseline``, seed by seed.

    Args:
        result: what ``Experiment.run`` (or ``load_study``, ``ExperimentResult.read_csv``) returns.
        baseline: the row to compare to; every row must hold the same seeds (at least 2) as it.
        metric: the figure (default: the result's).
        target: the value for labels-to-target (``None``: none).
        level: the confidence level of the intervals.
        method: ``"t"`` (Student's t over seeds) or ``"bootstrap"`` (percentile, seeded); see
            :mod:`~lightning_bal.experiments.intervals`.
        resamples: the bootstrap's resamples.
        seed: the bootstrap generator's seed.

    Returns:
        ``{heuristic: PairedComparison}`` in the result's order of rows.

    Examples:
        >>> def run(*accuracies):
        ...     return [{"active/num_labelled": 10 * (i + 1), "active/test_acc": a} for i, a in enumerate(accuracies)]
        >>> result = ExperimentResult({"bald": {0: run(0.5, 0.9), 1: run(0.6, 0.8)},
        ...                            "random": {0: run(0.5, 0.7), 1: run(0.6, 0.7)}})
        >>> comparison = paired_comparison(result)["bald"]
        >>> [(labelled, round(d.mean, 4), d.above) for labelled, d in comparison.steps]
        [(10, 0.0, 0), (20, 0.15, 2)]
        >>> round(comparison.area.mean, 4), comparison.labels_to_target, comparison.interval
        (0.075, {0: 20, 1: None}, '95% t interval over 2 seeds')
    """
    if not isinstance(result, ExperimentResult):
        raise TypeError(f"Expected argument `result` to be an ExperimentResult, but got {type(result).__name__}.")
    key = result.metric if metric is None else check_metric("metric", metric)
    if not isinstance(baseline, str) or baseline not in result.histories:
        raise ValueError(
            f"Expected argument `baseline` to be a row of the result, one of {sorted(result.histories)}, but got"
            f" {baseline!r}."
        )
    if target is not None:
        target = check_threshold("target", target)
    # The interval arguments are checked once, before any work: a bad one is refused whatever the result holds.
    confidence_interval({0: 0.0, 1: 0.0}, level=level, method=method, resamples=resamples, seed=seed)
    curves = result.curves(key)
    seeds = sorted(curves[baseline])
    if len(seeds) < 2:
        raise ValueError(
            f"Expected argument `result` to hold at least 2 seeds of the baseline {baseline!r} (a paired interval"
            f" needs pairs to vary over), but got {seeds}."
        )
    others = [name for name in curves if name != baseline]
    if not others:
        raise ValueError(
            f"Expected argument `result` to hold a row besides the baseline {baseline!r}, but it has none."
        )
    for name in others:
        theirs = sorted(curves[name])
        if theirs != seeds:
            raise ValueError(
                f"Expected argument `result` to hold the same seeds for every row (paired runs), but {name!r} has"
                f" {theirs} where the baseline {baseline!r} has {seeds} (missing {sorted(set(seeds) - set(theirs))},"
                f" unpaired {sorted(set(theirs) - set(seeds))})."
            )
    grids = {name: _common_steps(name, baseline, curves) for name in others}
    options: dict[str, Any] = {"level": level, "method": method, "resamples": resamples, "seed": seed}
    described = f"{level:.0%} {'t' if method == 't' else 'bootstrap'} interval over {len(seeds)} seeds"
    comparisons = {}
    for name in others:
        length = len(grids[name])
        steps = [
            (
                labelled,
                confidence_interval({s: curves[name][s][i][1] - curves[baseline][s][i][1] for s in seeds}, **options),
            )
            for i, labelled in enumerate(grids[name])
        ]
        areas = {
            s: area_under_curve(curves[name][s][:length]) - area_under_curve(curves[baseline][s][:length])
            for s in seeds
        }
        reach = {
            row: {s: None if target is None else labels_to_reach(curves[row][s], target) for s in seeds}
            for row in (name, baseline)
        }
        comparisons[name] = PairedComparison(
            heuristic=name,
            baseline=baseline,
            metric=key,
            interval=described,
            steps=steps,
            area=confidence_interval(areas, **options),
            target=target,
            labels_to_target=reach[name],
            baseline_labels_to_target=reach[baseline],
        )
    return comparisons


def _labels_cell(labels: Mapping[int, int | None]) -> str:
    """``median (min-max): each seed``; a seed that never reached the target counts as above every count."""
    numbers = sorted(math.inf if n is None else float(n) for n in labels.values())
    median, low, high = (
        "never" if math.isinf(n) else f"{n:g}" for n in (statistics.median(numbers), numbers[0], numbers[-1])
    )
    seeds = " / ".join("never" if labels[s] is None else str(labels[s]) for s in sorted(labels))
    return f"{median} ({low} to {high}): {seeds}"


def _interval_cell(difference: PairedDifference) -> str:
    return f"{difference.mean:+.4f} [{difference.low:+.4f}, {difference.high:+.4f}]"


def _check_comparisons(comparisons: Any) -> list[PairedComparison]:
    if (
        not isinstance(comparisons, Mapping)
        or not comparisons
        or not all(isinstance(c, PairedComparison) for c in comparisons.values())
    ):
        raise TypeError(
            "Expected argument `comparisons` to be a non-empty {heuristic: PairedComparison} (what"
            f" `paired_comparison` returns), but got {comparisons!r:.80}."
        )
    values = list(comparisons.values())
    baselines = {c.baseline for c in values}
    if len(baselines) > 1:
        raise ValueError(f"Expected argument `comparisons` against one baseline, but got {sorted(baselines)}.")
    return values


def paired_table(comparisons: Mapping[str, PairedComparison], steps: bool = True) -> str:
    """Markdown: one row per heuristic (area, seeds above, labels to target), then the differences at each step.

    Examples:
        >>> def run(*accuracies):
        ...     return [{"active/num_labelled": 10 * (i + 1), "active/test_acc": a} for i, a in enumerate(accuracies)]
        >>> result = ExperimentResult({"bald": {0: run(0.5, 0.9), 1: run(0.6, 0.8)},
        ...                            "random": {0: run(0.5, 0.7), 1: run(0.6, 0.7)}})
        >>> print(paired_table(paired_comparison(result), steps=False))
        Paired differences to random, 95% t interval over 2 seeds (with 2 seeds the interval is very wide).
        <BLANKLINE>
        | heuristic | area under the curve, difference [95% t interval over 2 seeds] | seeds above random | labels to 0.9: median (range): each seed | random: labels to 0.9 |
        | --- | --- | --- | --- | --- |
        | bald | +0.0750 [-0.2427, +0.3927] | 2 of 2 | never (20 to never): 20 / never | never (never to never): never / never |
    """  # noqa: E501 - a doctest's table row is one line
    values = _check_comparisons(comparisons)
    steps = bool(steps)
    first = values[0]
    baseline, interval = first.baseline, first.interval
    note = " (with 2 seeds the interval is very wide)" if first.area.seeds == 2 and "t interval" in interval else ""
    lines = [f"Paired differences to {baseline}, {interval}{note}.", ""]
    columns = ["heuristic", f"area under the curve, difference [{interval}]", f"seeds above {baseline}"]
    if first.target is not None:
        columns += [f"labels to {first.target:g}: median (range): each seed", f"{baseline}: labels to {first.target:g}"]
    lines += ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for comparison in values:
        area = comparison.area
        cells = [comparison.heuristic, _interval_cell(area), f"{area.above} of {area.seeds}"]
        if first.target is not None:
            cells += [_labels_cell(comparison.labels_to_target), _labels_cell(comparison.baseline_labels_to_target)]
        lines.append("| " + " | ".join(cells) + " |")
    if steps:
        lines += ["", f"Difference to {baseline} at each step, mean [{interval}] (seeds above):", ""]
        lines += ["| labelled | " + " | ".join(c.heuristic for c in values) + " |", "|" + " --- |" * (len(values) + 1)]
        by_step = [dict(c.steps) for c in values]
        for labelled in sorted({n for c in values for n, _ in c.steps}):
            cells = [
                f"{_interval_cell(step[labelled])} ({step[labelled].above}/{step[labelled].seeds})"
                if labelled in step
                else ""
                for step in by_step
            ]
            lines.append(f"| {labelled} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_paired(
    comparisons: Mapping[str, PairedComparison],
    path: str | Path,
    *,
    result: ExperimentResult | None = None,
    title: str | None = None,
    ylabel: str | None = None,
) -> Path:
    """A PNG of each heuristic's mean difference to the baseline against labelled samples, its interval as a band.

    With ``result``, the curves themselves (mean over seeds, min-max band, the target as a dashed line) are drawn
    beside it. Each panel names its band in its title.
    """
    values = _check_comparisons(comparisons)
    path = check_path(path)
    if result is not None and not isinstance(result, ExperimentResult):
        raise TypeError(f"Expected argument `result` to be an ExperimentResult, but got {type(result).__name__}.")
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(
            "Plotting the differences needs matplotlib: install it with `pip install 'lightning-bal[examples]'`."
        ) from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = values[0]
    label = ylabel or first.metric.removeprefix("active/")
    fig, axes = plt.subplots(1, 2 if result is not None else 1, figsize=(13 if result is not None else 7, 4.5))
    axes = list(np.atleast_1d(axes))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rows = [first.baseline, *(c.heuristic for c in values)]
    colour = {name: colours[i % len(colours)] for i, name in enumerate(rows)}
    if result is not None:
        ax = axes[0]
        curves = result.curves(first.metric)
        for name in rows:
            if name not in curves:
                continue
            runs = [curve for _, curve in sorted(curves[name].items()) if curve]
            xs, means, lows, highs = mean_and_spread(runs)
            ax.plot(xs, means, marker="o", markersize=2.5, color=colour[name], label=f"{name} ({len(runs)} seeds)")
            ax.fill_between(xs, lows, highs, color=colour[name], alpha=0.2)
        if first.target is not None:
            ax.axhline(first.target, color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(f"{label}\nline: mean, band: min-max over {first.area.seeds} seeds")
        ax.set_xlabel("labelled samples")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax = axes[-1]
    ax.axhline(0.0, color="black", linewidth=1.0)
    for comparison in values:
        xs = [labelled for labelled, _ in comparison.steps]
        means = [d.mean for _, d in comparison.steps]
        (line,) = ax.plot(
            xs, means, marker="o", markersize=2.5, color=colour[comparison.heuristic], label=comparison.heuristic
        )
        lows = [d.low for _, d in comparison.steps]
        highs = [d.high for _, d in comparison.steps]
        ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.2)
    ax.set_title(f"{label} minus {first.baseline}, seed by seed\nline: mean, band: {first.interval}")
    ax.set_xlabel("labelled samples")
    ax.set_ylabel(f"difference in {label}")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
