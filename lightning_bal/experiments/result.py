"""The per-step figures of an experiment's runs and what to make of them: curves, summaries, CSV files and plots."""

from __future__ import annotations

import csv
import math
import os
import statistics
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import torch

from lightning_bal.experiments.curves import Curve, area_under_curve, check_threshold, labels_to_reach, mean_and_spread

__all__ = ["ExperimentResult", "History"]

History = list[dict[str, float]]
_LABELLED = "active/num_labelled"


@dataclass
class ExperimentResult:
    """The per-step figures of every run, by heuristic and seed, and what to make of them.

    Args:
        histories: ``{heuristic: {seed: callback.history}}``; each step's dict holds ``active/num_labelled``.
        metric: the figure the curves, summaries and plot use by default (e.g. ``"active/test_acc"``).

    Examples:
        >>> result = ExperimentResult({"bald": {0: [{"active/num_labelled": 20, "active/test_acc": 0.5},
        ...                                         {"active/num_labelled": 30, "active/test_acc": 0.9}]}})
        >>> result.curves()
        {'bald': {0: [(20, 0.5), (30, 0.9)]}}
        >>> result.labels_to_reach(0.8), result.area_under_curve()
        ({'bald': {0: 30}}, {'bald': {0: 0.7}})
    """

    histories: dict[str, dict[int, History]] = field(default_factory=dict)
    metric: str = "active/test_acc"

    def __post_init__(self) -> None:
        if not isinstance(self.histories, Mapping):
            raise TypeError(
                "Expected argument `histories` to be a mapping {heuristic: {seed: history}}, but got"
                f" {type(self.histories).__name__}."
            )
        for name, by_seed in self.histories.items():
            if not isinstance(name, str) or not isinstance(by_seed, Mapping):
                raise TypeError(
                    f"Expected argument `histories` to map heuristic names to {{seed: history}}, but got {name!r}:"
                    f" {type(by_seed).__name__}."
                )
            for seed, history in by_seed.items():
                if not isinstance(history, list) or not all(isinstance(step, Mapping) for step in history):
                    raise TypeError(
                        f"Expected argument `histories` to hold a list of step dicts for {name!r} seed {seed!r}, but"
                        f" got {type(history).__name__}."
                    )
                missing = next((i for i, step in enumerate(history) if _LABELLED not in step), None)
                if missing is not None:
                    raise ValueError(
                        f"Expected argument `histories` to hold {_LABELLED!r} in every step, but step {missing} of"
                        f" {name!r} seed {seed!r} has none."
                    )
                for i, step in enumerate(history):
                    wrong = {key: value for key, value in step.items() if not is_number(value)}
                    if wrong:
                        raise TypeError(
                            f"Expected argument `histories` to hold numbers, but step {i} of {name!r} seed {seed!r}"
                            f" holds {wrong}."
                        )
        check_metric("metric", self.metric)

    def metrics(self) -> list[str]:
        """The figures the runs hold (every key of their steps but ``active/num_labelled``), sorted."""
        return sorted({key for step in self._steps() for key in step} - {_LABELLED})

    def _steps(self) -> Iterator[Mapping[str, float]]:
        for by_seed in self.histories.values():
            for history in by_seed.values():
                yield from history

    def curves(self, metric: str | None = None) -> dict[str, dict[int, Curve]]:
        """``(labelled, value)`` per step of every run; steps without ``metric`` are left out (no step: an error)."""
        key = self.metric if metric is None else check_metric("metric", metric)
        steps = list(self._steps())
        if steps and not any(key in step for step in steps):
            raise ValueError(
                f"Expected argument `metric` to be a figure of the runs, one of {self.metrics()}, but got {key!r}."
            )
        return {
            name: {
                seed: [(int(step[_LABELLED]), float(step[key])) for step in history if key in step]
                for seed, history in by_seed.items()
            }
            for name, by_seed in self.histories.items()
        }

    def labels_to_reach(self, threshold: float, metric: str | None = None) -> dict[str, dict[int, int | None]]:
        """Per heuristic and seed, the fewest labels at which the curve reaches ``threshold`` (``None``: never)."""
        check_threshold("threshold", threshold)
        return {
            name: {seed: labels_to_reach(curve, threshold) for seed, curve in by_seed.items()}
            for name, by_seed in self.curves(metric).items()
        }

    def area_under_curve(self, metric: str | None = None) -> dict[str, dict[int, float]]:
        """Per heuristic and seed, the mean of the curve over its labelled range (:func:`area_under_curve`)."""
        return {
            name: {seed: area_under_curve(curve) for seed, curve in by_seed.items() if curve}
            for name, by_seed in self.curves(metric).items()
        }

    def summary(self, thresholds: Sequence[float] = (0.9,), metric: str | None = None) -> str:
        """A markdown table per heuristic: area under the curve, final value, each seed's labels to reach a threshold.

        Examples:
            >>> result = ExperimentResult({"random": {0: [{"active/num_labelled": 20, "active/test_acc": 0.5},
            ...                                           {"active/num_labelled": 30, "active/test_acc": 0.9}]}})
            >>> print(result.summary())
            | heuristic | seeds | area under the curve (min-max) | final (min-max) | labels to 0.9, each seed |
            | --- | --- | --- | --- | --- |
            | random | 1 | 0.7000 (0.7000-0.7000) | 0.9000 (0.9000-0.9000) | 30 |
        """
        thresholds = check_thresholds(thresholds)
        columns = ["heuristic", "seeds", "area under the curve (min-max)", "final (min-max)"]
        columns += [f"labels to {threshold:g}, each seed" for threshold in thresholds]
        rows = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        areas = self.area_under_curve(metric)
        for name, by_seed in self.curves(metric).items():
            curves = [curve for curve in by_seed.values() if curve]
            if not curves:
                continue
            finals = [curve[-1][1] for curve in curves]
            cells = [name, str(len(curves)), _mean_range(list(areas[name].values())), _mean_range(finals)]
            for threshold in thresholds:
                reached = [labels_to_reach(curve, threshold) for curve in curves]
                cells.append(" / ".join("-" if n is None else str(n) for n in reached))
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def write_csv(self, path: str | Path, columns: Mapping[str, str] | None = None) -> Path:
        """One row per heuristic, seed and step: ``heuristic, seed, labelled`` and the figures of ``columns``.

        Args:
            path: the CSV file (its folder is created).
            columns: ``{column name: history key}``; default: every ``active/*`` figure without the prefix.
        """
        if columns is None:
            columns = {key.removeprefix("active/"): key for key in self.metrics()}
        check_columns(columns)
        path = check_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target, then renamed over it: a failed write leaves the previous file as it was.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", newline="") as stream:
                writer = csv.writer(stream)
                writer.writerow(["heuristic", "seed", "labelled", *columns])
                for name, by_seed in self.histories.items():
                    for seed, history in by_seed.items():
                        for step in history:
                            cells = [f"{step[key]:.4f}" if key in step else "" for key in columns.values()]
                            writer.writerow([name, seed, int(step[_LABELLED]), *cells])
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def read_csv(
        cls, path: str | Path, columns: Mapping[str, str] | None = None, metric: str = "active/test_acc"
    ) -> ExperimentResult:
        """The result a :meth:`write_csv` file holds (figures rounded to its 4 decimals).

        ``columns`` maps column names to history keys; by default every column after ``labelled`` is ``active/<name>``.
        """
        path = check_path(path)
        check_metric("metric", metric)
        if columns is not None:
            check_columns(columns)
        if not path.is_file():
            raise FileNotFoundError(f"Expected argument `path` to be a CSV file, but {str(path)!r} is not a file.")
        histories: dict[str, dict[int, History]] = {}
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            missing = [name for name in ("heuristic", "seed", "labelled") if name not in header]
            if missing:
                raise ValueError(f"Expected the CSV {path} to have the columns {missing}, but its header is {header}.")
            fields = [name for name in header if name not in ("heuristic", "seed", "labelled")]
            mapping = dict(columns) if columns is not None else {name: f"active/{name}" for name in fields}
            unknown = [name for name in mapping if name not in fields]
            if unknown:
                raise ValueError(
                    f"Expected argument `columns` to name columns of the CSV {path}, but {unknown} are not among"
                    f" {fields}."
                )
            for row in reader:
                where = f"the CSV {path}, row {reader.line_num - 1} (line {reader.line_num})"
                if None in row or any(row[name] is None for name in header):
                    raise ValueError(f"Expected {len(header)} cells in {where}, but got {len(list(row.values()))}.")
                step = {_LABELLED: float(_count(row["labelled"], "labelled", where))}
                for name, key in mapping.items():
                    if row[name]:
                        step[key] = _figure(row[name], name, where)
                seed = _count(row["seed"], "seed", where, negative=True)
                histories.setdefault(row["heuristic"], {}).setdefault(seed, []).append(step)
        return cls(histories, metric)

    def plot(
        self,
        path: str | Path,
        *,
        metric: str | None = None,
        title: str | None = None,
        thresholds: Sequence[float] = (),
        ylabel: str | None = None,
    ) -> Path:
        """A PNG of ``metric`` against labelled samples: per heuristic, the mean over seeds and the min-max band."""
        thresholds = check_thresholds(thresholds)
        path = check_path(path)
        by_heuristic = self.curves(metric)
        try:
            import matplotlib
        except ImportError as err:
            raise ImportError(
                "Plotting the curves needs matplotlib: install it with `pip install 'lightning-bal[examples]'`."
            ) from err
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, by_seed in by_heuristic.items():
            curves = [curve for curve in by_seed.values() if curve]
            if not curves:
                continue
            xs, means, lows, highs = mean_and_spread(curves)
            seeds = f" ({len(curves)} seeds)" if len(curves) > 1 else ""
            (line,) = ax.plot(xs, means, marker="o", markersize=2.5, label=f"{name}{seeds}")
            if len(curves) > 1:
                ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.2)
        for threshold in thresholds:
            ax.axhline(threshold, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xlabel("labelled samples")
        ax.set_ylabel(ylabel or (metric or self.metric).removeprefix("active/"))
        if title:
            ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    def merge(self, other: ExperimentResult) -> ExperimentResult:
        """A result holding the runs of both (``other`` wins for a heuristic and seed in both)."""
        if not isinstance(other, ExperimentResult):
            raise TypeError(f"Expected argument `other` to be an ExperimentResult, but got {type(other).__name__}.")
        histories = {name: dict(by_seed) for name, by_seed in self.histories.items()}
        for name, by_seed in other.histories.items():
            histories.setdefault(name, {}).update(by_seed)
        return ExperimentResult(histories, self.metric)


def is_number(value: Any) -> bool:
    """A real number: a Python or NumPy number, or a one-element tensor (as a callback's history may hold)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, Real):
        return True
    return hasattr(value, "numel") and value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool


def check_metric(argument: str, metric: Any) -> str:
    """``metric`` if it is a non-empty history key."""
    if not isinstance(metric, str) or not metric:
        raise TypeError(f"Expected argument `{argument}` to be a non-empty history key string, but got {metric!r}.")
    return metric


def check_thresholds(thresholds: Any) -> list[float]:
    """``thresholds`` as a list of finite numbers (a single number or a string is refused)."""
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Iterable):
        raise TypeError(f"Expected argument `thresholds` to be a sequence of numbers, but got {thresholds!r}.")
    return [check_threshold("thresholds", value) for value in thresholds]


def check_columns(columns: Any) -> None:
    """Refuse ``columns`` that are not ``{column name: history key}`` or that take a reserved column's name."""
    if not isinstance(columns, Mapping) or not all(
        isinstance(name, str) and name and isinstance(key, str) and key for name, key in columns.items()
    ):
        raise TypeError(f"Expected argument `columns` to map column names to history keys, but got {columns!r}.")
    reserved = sorted({"heuristic", "seed", "labelled"} & set(columns))
    if reserved:
        raise ValueError(f"Expected argument `columns` without the reserved columns {reserved}.")


def check_path(path: Any) -> Path:
    """``path`` as a ``Path`` (a non-path or an empty one is refused)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"Expected argument `path` to be a file path, but got {path!r}.")
    return Path(path)


def _count(cell: str, column: str, where: str, negative: bool = False) -> int:
    """An integer cell (``20`` or ``20.0``); a fraction, a non-number or (unless ``negative``) a negative is refused."""
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not value.is_integer() or (value < 0 and not negative):
        kind = "an integer" if negative else "a non-negative integer"
        raise ValueError(f"Expected {kind} in column `{column}` of {where}, but got {cell!r}.")
    return int(value)


def _figure(cell: str, column: str, where: str) -> float:
    """A figure cell; ``nan`` is kept (``write_csv`` writes it for a figure that was NaN)."""
    try:
        return float(cell)
    except ValueError:
        raise ValueError(f"Expected a number in column `{column}` of {where}, but got {cell!r}.") from None


def _mean_range(values: list[float]) -> str:
    return f"{statistics.fmean(values):.4f} ({min(values):.4f}-{max(values):.4f})"
