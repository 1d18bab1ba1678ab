"""Compare heuristics over seeds: every heuristic starts each seed from the same labels and the same weights.

:class:`Experiment` runs ``heuristics x seeds`` active learning runs and collects each run's
``ActiveLearningCallback.history`` into an :class:`ExperimentResult`, which writes one CSV of the curves, a PNG of the
mean over seeds with its min-max band, and a table of labels to reach target accuracies and of the area under the
learning curve.
"""

from __future__ import annotations

import copy
import csv
import inspect
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from lightning_bal.callbacks import ActiveLearningCallback
from lightning_bal.data import ActiveDataModule
from lightning_bal.experiments.curves import (
    Curve,
    area_under_curve,
    check_threshold,
    labels_to_reach,
    mean_and_spread,
)
from lightning_bal.heuristics import HEURISTICS, available_heuristics
from lightning_bal.utilities.tensorboard import write_layout

__all__ = ["Experiment", "ExperimentResult", "History", "Row"]

History = list[dict[str, float]]
_LABELLED = "active/num_labelled"


@dataclass
class ExperimentResult:
    """The per-step figures of every run, by heuristic and seed, and what to make of them.

    Args:
        histories: ``{heuristic: {seed: callback.history}}``; each step's dict holds ``active/num_labelled``.
        metric: the figure the curves, summaries and plot use by default (e.g. ``"active/test_acc"``).

    Example:
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
                    wrong = {key: value for key, value in step.items() if not _is_number(value)}
                    if wrong:
                        raise TypeError(
                            f"Expected argument `histories` to hold numbers, but step {i} of {name!r} seed {seed!r}"
                            f" holds {wrong}."
                        )
        _check_metric("metric", self.metric)

    def metrics(self) -> list[str]:
        """The figures the runs hold (every key of their steps but ``active/num_labelled``), sorted.

        Example:
            >>> ExperimentResult({"bald": {0: [{"active/num_labelled": 20, "active/test_acc": 0.5}]}}).metrics()
            ['active/test_acc']
        """
        return sorted({key for step in self._steps() for key in step} - {_LABELLED})

    def _steps(self) -> Iterator[Mapping[str, float]]:
        for by_seed in self.histories.values():
            for history in by_seed.values():
                yield from history

    def curves(self, metric: str | None = None) -> dict[str, dict[int, Curve]]:
        """``(labelled, value)`` per step of every run; steps without ``metric`` are left out.

        Raises:
            ValueError: the runs have steps, but none holds ``metric`` (a misspelt figure would give empty curves).
        """
        key = self.metric if metric is None else _check_metric("metric", metric)
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
        """A markdown table of the runs per heuristic.

        Columns: the area under the curve and the final value (mean and min-max over seeds), and each seed's labels
        to reach each threshold (``-``: never reached within the run).

        Example:
            >>> result = ExperimentResult({"random": {0: [{"active/num_labelled": 20, "active/test_acc": 0.5},
            ...                                           {"active/num_labelled": 30, "active/test_acc": 0.9}]}})
            >>> print(result.summary())
            | heuristic | seeds | area under the curve (min-max) | final (min-max) | labels to 0.9, each seed |
            | --- | --- | --- | --- | --- |
            | random | 1 | 0.7000 (0.7000-0.7000) | 0.9000 (0.9000-0.9000) | 30 |
        """
        thresholds = _check_thresholds(thresholds)
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
            columns: ``{column name: history key}``; default: every ``active/*`` figure of the runs, named without
                the prefix. A step without a figure leaves its cell empty.
        """
        if columns is None:
            columns = {key.removeprefix("active/"): key for key in self.metrics()}
        _check_columns(columns)
        path = _check_path(path)
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

        Args:
            path: the CSV file.
            columns: ``{column name: history key}``; default: every column after ``labelled`` as ``active/<name>``.
            metric: the default figure of the result.
        """
        path = _check_path(path)
        _check_metric("metric", metric)
        if columns is not None:
            _check_columns(columns)
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
        """A PNG of ``metric`` against labelled samples: per heuristic, the mean over seeds and the min-max band.

        Needs matplotlib (``pip install 'lightning-bal[examples]'``); ``thresholds`` draw dashed horizontal lines.
        """
        thresholds = _check_thresholds(thresholds)
        path = _check_path(path)
        by_heuristic = self.curves(metric)
        plt = _pyplot()
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


@dataclass(frozen=True)
class Row:
    """A row of an :class:`Experiment` that is more than a heuristic's name: its own posterior, model or evaluations.

    Args:
        heuristic: the registry name the row runs.
        model: turns the seed's initial model (a deep copy, the one every row of the seed starts from) and the seed
            into this row's model (e.g. an ensemble around it); ``None`` keeps it.
        datamodule: changes the run's datamodule before training (e.g. a larger batch for an ensemble whose members
            each take a part of it); ``None`` keeps it.
        callback: keyword arguments of :class:`~lightning_bal.ActiveLearningCallback` over the experiment's
            (e.g. ``{"posterior": SWAG()}``); deep-copied for every run, so stateful posteriors start fresh.

    Example:
        >>> from lightning_bal.posteriors import SWAG
        >>> Row("bald", callback={"posterior": SWAG()}).heuristic
        'bald'
    """

    heuristic: str
    model: Callable[[pl.LightningModule, int], pl.LightningModule] | None = None
    datamodule: Callable[[ActiveDataModule], ActiveDataModule] | None = None
    callback: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_heuristic("heuristic", self.heuristic)
        if self.model is not None:
            check_factory("model", self.model, "a LightningModule from the seed's model and the seed")
        if self.datamodule is not None:
            check_factory("datamodule", self.datamodule, "an ActiveDataModule from the run's datamodule")
        _check_callback("callback", self.callback)


class Experiment:
    """Run every heuristic on every seed, each seed's runs from the same initial labels and initial weights.

    For each seed, ``model(seed)`` is built once after ``seed_everything(seed)`` and every heuristic trains a deep
    copy of it; ``datamodule(seed)`` is built anew for each run (an ``ActiveDataModule`` with ``seed=seed`` draws the
    same initial labels each time); the callback is ``ActiveLearningCallback(heuristic, seed=seed, **callback)``
    (evaluations deep-copied per run) and the trainer ``Trainer(**trainer)`` over defaults that run until the label
    budget is spent (``max_epochs=-1``) without checkpoints. With ``log_dir`` each run logs to TensorBoard in
    ``log_dir/<heuristic>/seed_<seed>`` and the folder gets a custom-scalars layout that draws every run's curves on
    shared charts. A name in ``rows`` runs that :class:`Row` instead: its heuristic, with its own callback arguments
    and model (built from the seed's shared initial model), so posteriors compare from the same start in one run.

    Args:
        heuristics: the rows' names: registry names (:func:`~lightning_bal.heuristics.get_heuristic`) or keys of
            ``rows``.
        seeds: one run per heuristic and seed.
        model: builds the LightningModule for a seed.
        datamodule: builds the ``ActiveDataModule`` for a seed.
        callback: keyword arguments of :class:`~lightning_bal.ActiveLearningCallback` beside the heuristic and seed.
        trainer: keyword arguments of ``Trainer`` over the defaults.
        metric: the figure the result summarises by default (``"active/val_acc"`` when validation is the test set).
        log_dir: TensorBoard folder, or ``None`` for no logger.
        rows: ``{name: Row}`` for the names of ``heuristics`` that are not plain registry names.

    Example:
        >>> from lightning_bal.experiments import DropoutCNN, load_digits
        >>> train, test = load_digits(seed=0)
        >>> experiment = Experiment(
        ...     ["bald", "random"], seeds=[0, 1],
        ...     model=lambda seed: DropoutCNN("digits", image_size=8),
        ...     datamodule=lambda seed: ActiveDataModule(train, val_dataset=test, initial_labels=10, batch_size=32,
        ...                                             train_samples_per_epoch=64, max_pool_size=100, seed=seed),
        ...     callback={"query_size": 5, "iterations": 3, "label_budget": 20},
        ...     trainer={"enable_progress_bar": False, "log_every_n_steps": 1}, metric="active/val_acc")
        >>> result = experiment.run()
        >>> {name: sorted(by_seed) for name, by_seed in result.histories.items()}
        {'bald': [0, 1], 'random': [0, 1]}
        >>> [n for n, _ in result.curves()["bald"][0]]
        [10, 15, 20]
    """

    def __init__(
        self,
        heuristics: Sequence[str],
        seeds: Iterable[int],
        *,
        model: Callable[[int], pl.LightningModule],
        datamodule: Callable[[int], ActiveDataModule],
        callback: Mapping[str, Any] | None = None,
        trainer: Mapping[str, Any] | None = None,
        metric: str = "active/test_acc",
        log_dir: str | Path | None = None,
        rows: Mapping[str, Row] | None = None,
    ) -> None:
        # A string is a sequence of names too (its letters): refuse it rather than run "b", "a", "l", "d".
        if isinstance(heuristics, (str, bytes)) or not isinstance(heuristics, Iterable):
            raise TypeError(f"Expected argument `heuristics` to be a list of names, but got {heuristics!r}.")
        names = list(heuristics)
        if not names or not all(isinstance(name, str) for name in names):
            raise ValueError(f"Expected argument `heuristics` to be a non-empty list of names, but got {heuristics!r}.")
        if len(set(names)) != len(names):
            raise ValueError(f"Expected argument `heuristics` to name each heuristic once, but got {names}.")
        if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
            raise TypeError(f"Expected argument `seeds` to be a list of integers, but got {seeds!r}.")
        seed_list = list(seeds)
        wrong = [seed for seed in seed_list if isinstance(seed, bool) or not isinstance(seed, Integral)]
        if wrong:
            raise TypeError(f"Expected argument `seeds` to be integers, but got {wrong} in {seed_list}.")
        seed_list = [int(seed) for seed in seed_list]
        if not seed_list or len(set(seed_list)) != len(seed_list):
            raise ValueError(f"Expected argument `seeds` to be distinct integers, at least one, but got {seed_list}.")
        if rows is not None and not isinstance(rows, Mapping):
            raise TypeError(f"Expected argument `rows` to be a mapping {{name: Row}} or None, but got {rows!r}.")
        row_map = dict(rows or {})
        not_rows = {name: type(row).__name__ for name, row in row_map.items() if not isinstance(row, Row)}
        if not_rows:
            raise TypeError(f"Expected argument `rows` to map names to `Row`s, but got {not_rows}.")
        for name in names:
            if name not in row_map:
                _check_heuristic("heuristics", name)
        check_factory("model", model, "the LightningModule for a seed (e.g. `lambda seed: Net()`)")
        check_factory("datamodule", datamodule, "the ActiveDataModule for a seed (e.g. `lambda seed: make(seed)`)")
        _check_callback("callback", callback)
        for reserved in ("heuristic", "seed"):
            if any(reserved in settings for settings in [callback or {}, *(r.callback for r in row_map.values())]):
                raise ValueError(f"Expected argument `callback` without `{reserved}` (the experiment sets it).")
        unused = sorted(set(row_map) - set(names))
        if unused:
            raise ValueError(f"Expected argument `rows` to name rows of `heuristics`, but {unused} are not among them.")
        _check_trainer(trainer)
        _check_metric("metric", metric)
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"Expected argument `log_dir` to be a folder path or None, but got {log_dir!r}.")
        self.heuristics = names
        self.seeds = seed_list
        self.rows = row_map
        self.model = model
        self.datamodule = datamodule
        self.callback = dict(callback or {})
        self.trainer = dict(trainer or {})
        self.metric = metric
        self.log_dir = None if log_dir is None else Path(log_dir)

    def run(self, on_run: Callable[[str, int, ExperimentResult, float], None] | None = None) -> ExperimentResult:
        """Run seed by seed, every heuristic within a seed; returns every run's history.

        Args:
            on_run: called after each run with the heuristic, the seed, the result so far and the run's seconds
                (e.g. to print progress or to write the CSV, so that an interrupted experiment keeps what it did).
        """
        if on_run is not None and not callable(on_run):
            raise TypeError(f"Expected argument `on_run` to be a callable or None, but got {on_run!r}.")
        result = ExperimentResult({name: {} for name in self.heuristics}, self.metric)
        for seed in self.seeds:
            pl.seed_everything(seed, verbose=False)
            initial_model = _built("model", self.model(seed), pl.LightningModule, seed)
            for name in self.heuristics:
                start = time.perf_counter()
                result.histories[name][seed] = self.run_one(name, seed, copy.deepcopy(initial_model))
                if on_run is not None:
                    on_run(name, seed, result, time.perf_counter() - start)
        if self.log_dir is not None:
            write_layout(self.log_dir)
        return result

    def run_one(self, heuristic: str, seed: int, model: pl.LightningModule) -> History:
        """One run of the row ``heuristic`` at ``seed`` from ``model``; returns the callback's history (rank zero's)."""
        pl.seed_everything(seed, verbose=False)
        row = self.rows.get(heuristic) or Row(heuristic)
        datamodule = _built("datamodule", self.datamodule(seed), ActiveDataModule, seed)
        if row.model is not None:
            model = _built(f"rows[{heuristic!r}].model", row.model(model, seed), pl.LightningModule, seed)
        if row.datamodule is not None:
            datamodule = _built(f"rows[{heuristic!r}].datamodule", row.datamodule(datamodule), ActiveDataModule, seed)
        callback_kwargs = copy.deepcopy({**self.callback, **row.callback})
        callback = ActiveLearningCallback(row.heuristic, seed=seed, **callback_kwargs)
        logger: TensorBoardLogger | bool = False
        if self.log_dir is not None:
            logger = TensorBoardLogger(self.log_dir, name=heuristic, version=f"seed_{seed}", default_hp_metric=False)
        settings: dict[str, Any] = {
            "max_epochs": -1,
            "logger": logger,
            "enable_checkpointing": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            **self.trainer,
        }
        settings["callbacks"] = [callback, *settings.get("callbacks", [])]
        trainer = pl.Trainer(**settings)
        trainer.fit(model, datamodule=datamodule)
        return [dict(step) for step in callback.history]


def _is_number(value: Any) -> bool:
    """A real number: a Python or NumPy number, or a one-element tensor (a callback's history may hold either)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, Real):
        return True
    return hasattr(value, "numel") and value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool


def _check_heuristic(argument: str, name: Any) -> None:
    """Refuse a row name that is not a registered heuristic (``get_heuristic`` would only fail inside the first run)."""
    if not isinstance(name, str) or name.strip().lower().replace("-", "_") not in HEURISTICS:
        raise ValueError(
            f"Expected argument `{argument}` to name registered heuristics (or rows of `rows`), but got {name!r}."
            f" Available: {', '.join(available_heuristics())}."
        )


def check_factory(argument: str, factory: Any, builds: str) -> None:
    """Refuse a model or datamodule given where a function building one is expected (it would fail at run time)."""
    if isinstance(factory, (nn.Module, pl.LightningDataModule)) or not callable(factory):
        raise TypeError(
            f"Expected argument `{argument}` to be a callable that builds {builds}, but got"
            f" {type(factory).__name__} instance {factory!r:.80}."
        )


def _built(argument: str, built: Any, kind: type, seed: int) -> Any:
    if not isinstance(built, kind):
        raise TypeError(
            f"Expected argument `{argument}` to build a {kind.__name__} for seed {seed}, but it returned"
            f" {type(built).__name__}."
        )
    return built


def _check_callback(argument: str, settings: Any) -> None:
    """Refuse callback settings that ``ActiveLearningCallback`` does not take, before any run starts."""
    if settings is None:
        return
    if not isinstance(settings, Mapping) or not all(isinstance(key, str) for key in settings):
        raise TypeError(f"Expected argument `{argument}` to be a mapping of keyword arguments, but got {settings!r}.")
    parameters = _named_parameters(ActiveLearningCallback)
    unknown = sorted(key for key in settings if key not in parameters)
    if unknown:
        raise ValueError(
            f"Expected argument `{argument}` to hold arguments of ActiveLearningCallback, but {unknown} are not"
            f" among {sorted(parameters)}."
        )


def _named_parameters(cls: type) -> list[str]:
    """The keyword arguments ``cls`` names (a ``**kwargs`` of the callback only refuses moved names)."""
    variadic = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    return [name for name, p in inspect.signature(cls).parameters.items() if p.kind not in variadic]


def _check_trainer(settings: Any) -> None:
    if settings is None:
        return
    if not isinstance(settings, Mapping) or not all(isinstance(key, str) for key in settings):
        raise TypeError(f"Expected argument `trainer` to be a mapping of keyword arguments, but got {settings!r}.")
    parameters = _named_parameters(pl.Trainer)
    unknown = sorted(key for key in settings if key not in parameters)
    if unknown:
        raise ValueError(f"Expected argument `trainer` to hold arguments of Trainer, but {unknown} are not among them.")


def _check_metric(argument: str, metric: Any) -> str:
    if not isinstance(metric, str) or not metric:
        raise TypeError(f"Expected argument `{argument}` to be a non-empty history key string, but got {metric!r}.")
    return metric


def _check_thresholds(thresholds: Any) -> list[float]:
    """``thresholds`` as a list of finite numbers (a single number or a string is refused)."""
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Iterable):
        raise TypeError(f"Expected argument `thresholds` to be a sequence of numbers, but got {thresholds!r}.")
    values = list(thresholds)
    for value in values:
        check_threshold("thresholds", value)
    return [float(value) for value in values]


def _check_columns(columns: Any) -> None:
    if not isinstance(columns, Mapping) or not all(
        isinstance(name, str) and name and isinstance(key, str) and key for name, key in columns.items()
    ):
        raise TypeError(f"Expected argument `columns` to map column names to history keys, but got {columns!r}.")
    reserved = sorted({"heuristic", "seed", "labelled"} & set(columns))
    if reserved:
        raise ValueError(f"Expected argument `columns` without the reserved columns {reserved}.")


def _check_path(path: Any) -> Path:
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


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(
            "Plotting the curves needs matplotlib: install it with `pip install 'lightning-bal[examples]'`."
        ) from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
