"""Compare heuristics over seeds: every heuristic starts each seed from the same labels and the same weights.

:class:`Experiment` runs ``heuristics x seeds`` active learning runs and collects each run's
``ActiveLearningCallback.history`` into an :class:`ExperimentResult`, which writes one CSV of the curves, a PNG of the
mean over seeds with its min-max band, and a table of labels to reach target accuracies and of the area under the
learning curve.
"""

from __future__ import annotations

import copy
import csv
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

from lightning_bal.callbacks import ActiveLearningCallback
from lightning_bal.data import ActiveDataModule
from lightning_bal.experiments.curves import Curve, area_under_curve, labels_to_reach, mean_and_spread
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

    def curves(self, metric: str | None = None) -> dict[str, dict[int, Curve]]:
        """``(labelled, value)`` per step of every run; steps without ``metric`` are left out."""
        key = metric or self.metric
        return {
            name: {
                seed: [(int(step[_LABELLED]), float(step[key])) for step in history if key in step]
                for seed, history in by_seed.items()
            }
            for name, by_seed in self.histories.items()
        }

    def labels_to_reach(self, threshold: float, metric: str | None = None) -> dict[str, dict[int, int | None]]:
        """Per heuristic and seed, the fewest labels at which the curve reaches ``threshold`` (``None``: never)."""
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
            keys = sorted(
                {key for by_seed in self.histories.values() for h in by_seed.values() for s in h for key in s}
            )
            columns = {key.removeprefix("active/"): key for key in keys if key != _LABELLED}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["heuristic", "seed", "labelled", *columns])
            for name, by_seed in self.histories.items():
                for seed, history in by_seed.items():
                    for step in history:
                        cells = [f"{step[key]:.4f}" if key in step else "" for key in columns.values()]
                        writer.writerow([name, seed, int(step[_LABELLED]), *cells])
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
        histories: dict[str, dict[int, History]] = {}
        with Path(path).open(newline="") as handle:
            reader = csv.DictReader(handle)
            fields = [name for name in reader.fieldnames or [] if name not in ("heuristic", "seed", "labelled")]
            mapping = dict(columns) if columns is not None else {name: f"active/{name}" for name in fields}
            for row in reader:
                step = {_LABELLED: float(row["labelled"])}
                step.update({key: float(row[name]) for name, key in mapping.items() if row.get(name)})
                histories.setdefault(row["heuristic"], {}).setdefault(int(row["seed"]), []).append(step)
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
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, by_seed in self.curves(metric).items():
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
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    def merge(self, other: ExperimentResult) -> ExperimentResult:
        """A result holding the runs of both (``other`` wins for a heuristic and seed in both)."""
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
        self.heuristics = list(heuristics)
        self.seeds = list(seeds)
        if not self.heuristics or not all(isinstance(name, str) for name in self.heuristics):
            raise ValueError(f"Expected argument `heuristics` to be a non-empty list of names, but got {heuristics!r}.")
        if len(set(self.heuristics)) != len(self.heuristics):
            raise ValueError(f"Expected argument `heuristics` to name each heuristic once, but got {self.heuristics}.")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"Expected argument `seeds` to be distinct integers, at least one, but got {self.seeds}.")
        self.rows = dict(rows or {})
        for reserved in ("heuristic", "seed"):
            if any(reserved in settings for settings in [callback or {}, *(r.callback for r in self.rows.values())]):
                raise ValueError(f"Expected argument `callback` without `{reserved}` (the experiment sets it).")
        unused = sorted(set(self.rows) - set(self.heuristics))
        if unused:
            raise ValueError(f"Expected argument `rows` to name rows of `heuristics`, but {unused} are not among them.")
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
        result = ExperimentResult({name: {} for name in self.heuristics}, self.metric)
        for seed in self.seeds:
            pl.seed_everything(seed, verbose=False)
            initial_model = self.model(seed)
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
        datamodule = self.datamodule(seed)
        row = self.rows.get(heuristic, Row(heuristic))
        if row.model is not None:
            model = row.model(model, seed)
        if row.datamodule is not None:
            datamodule = row.datamodule(datamodule)
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
