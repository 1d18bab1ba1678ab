"""Compare heuristics over seeds: every heuristic starts each seed from the same labels and the same weights."""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from lightning_bal.callbacks import ActiveLearningCallback
from lightning_bal.data import ActiveDataModule
from lightning_bal.experiments.records import check_json_settings
from lightning_bal.experiments.result import ExperimentResult, History, check_metric
from lightning_bal.experiments.runner import run_grid
from lightning_bal.heuristics import HEURISTICS, available_heuristics
from lightning_bal.utilities.tensorboard import write_layout

__all__ = ["Experiment", "ExperimentResult", "History", "Row"]


def check_heuristic(argument: str, name: Any) -> None:
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


def check_built(argument: str, built: Any, kind: type, seed: int) -> Any:
    """``built`` if it is a ``kind``: what a factory returned for ``seed`` (named by ``argument`` otherwise)."""
    if not isinstance(built, kind):
        raise TypeError(
            f"Expected argument `{argument}` to build a {kind.__name__} for seed {seed}, but it returned"
            f" {type(built).__name__}."
        )
    return built


def check_settings(argument: str, settings: Any, cls: type) -> None:
    """Refuse keyword arguments that ``cls`` (the callback or ``Trainer``) does not take, before any run starts."""
    if settings is None:
        return
    if not isinstance(settings, Mapping) or not all(isinstance(key, str) for key in settings):
        raise TypeError(f"Expected argument `{argument}` to be a mapping of keyword arguments, but got {settings!r}.")
    # A `**kwargs` of the callback only refuses moved names: it accepts nothing new.
    variadic = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    parameters = [name for name, p in inspect.signature(cls).parameters.items() if p.kind not in variadic]
    unknown = sorted(key for key in settings if key not in parameters)
    if unknown:
        among = "them" if cls is pl.Trainer else sorted(parameters)
        raise ValueError(
            f"Expected argument `{argument}` to hold arguments of {cls.__name__}, but {unknown} are not among {among}."
        )


@dataclass(frozen=True)
class Row:
    """A row of an :class:`Experiment` that is more than a heuristic's name: its own posterior, model or evaluations.

    Args:
        heuristic: the registry name the row runs.
        model: ``(seed's initial model, seed) -> this row's model`` (e.g. an ensemble around it); ``None`` keeps it.
        datamodule: changes the run's datamodule before training; ``None`` keeps it.
        callback: keyword arguments of the callback over the experiment's; deep-copied for every run.

    Examples:
        >>> from lightning_bal.posteriors import SWAG
        >>> Row("bald", callback={"posterior": SWAG()}).heuristic
        'bald'
    """

    heuristic: str
    model: Callable[[pl.LightningModule, int], pl.LightningModule] | None = None
    datamodule: Callable[[ActiveDataModule], ActiveDataModule] | None = None
    callback: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_heuristic("heuristic", self.heuristic)
        if self.model is not None:
            check_factory("model", self.model, "a LightningModule from the seed's model and the seed")
        if self.datamodule is not None:
            check_factory("datamodule", self.datamodule, "an ActiveDataModule from the run's datamodule")
        check_settings("callback", self.callback, ActiveLearningCallback)


class Experiment:
    """Run every heuristic on every seed, each seed's runs from the same initial labels and initial weights.

    See docs/experiments.md for what the runs share; with ``log_dir`` a run logs to ``log_dir/<heuristic>/seed_<seed>``.

    Args:
        heuristics: the rows' names: registry names or keys of ``rows``.
        callback: keyword arguments of :class:`~lightning_bal.ActiveLearningCallback` beside the heuristic and seed.
        trainer: keyword arguments of ``Trainer`` over the defaults.
        metric: the figure the result summarises by default.
        rows: ``{name: Row}`` for the names of ``heuristics`` that are not plain registry names.
        settings: JSON values that name this study in the records of ``run(out=...)``: records written under other
            settings are refused (default: none, the study is named by ``metric`` alone).

    Examples:
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
        >>> sorted(result.histories["random"]), [n for n, _ in result.curves()["bald"][0]]
        ([0, 1], [10, 15, 20])
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
        settings: Mapping[str, Any] | None = None,
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
                check_heuristic("heuristics", name)
        check_factory("model", model, "the LightningModule for a seed (e.g. `lambda seed: Net()`)")
        check_factory("datamodule", datamodule, "the ActiveDataModule for a seed (e.g. `lambda seed: make(seed)`)")
        check_settings("callback", callback, ActiveLearningCallback)
        for reserved in ("heuristic", "seed"):
            if any(reserved in settings for settings in [callback or {}, *(r.callback for r in row_map.values())]):
                raise ValueError(f"Expected argument `callback` without `{reserved}` (the experiment sets it).")
        unused = sorted(set(row_map) - set(names))
        if unused:
            raise ValueError(f"Expected argument `rows` to name rows of `heuristics`, but {unused} are not among them.")
        check_settings("trainer", trainer, pl.Trainer)
        check_metric("metric", metric)
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
        self.settings = check_json_settings("settings", settings)

    def run(
        self,
        on_run: Callable[[str, int, ExperimentResult, float], None] | None = None,
        *,
        jobs: int = 1,
        out: str | Path | None = None,
        shard: str | tuple[int, int] | None = None,
        threads: int | None = None,
    ) -> ExperimentResult:
        """Run every heuristic on every seed (seed by seed); see docs/experiments.md#studies-that-run-for-days.

        Args:
            on_run: ``on_run(heuristic, seed, partial, seconds)`` after each run, where ``partial`` holds the runs
                finished so far (``seconds``: that run's wall time; 0 for a run read from a record of ``out``).
            jobs: runs at a time; above 1 each runs in a worker process (spawned, so ``model`` and ``datamodule``
                must be picklable: module-level functions or ``functools.partial`` of them).
            out: a folder of run records: a run already recorded there is read instead of run, and every run
                that finishes writes its record (:func:`~lightning_bal.experiments.load_study` reads them back).
            shard: ``"I/M"`` or ``(I, M)``: only the runs whose index (0-based, seed-major) is ``I`` modulo ``M``.
            threads: torch threads per run (default: ``cores // jobs`` in workers, unchanged with ``jobs=1``).
        """
        if on_run is not None and not callable(on_run):
            raise TypeError(f"Expected argument `on_run` to be a callable or None, but got {on_run!r}.")
        settings = self.study_settings()
        result = run_grid(
            self, settings, {}, self.heuristics, self.seeds, self.metric, jobs, out, shard, on_run, threads
        )
        if self.log_dir is not None:
            write_layout(self.log_dir)
        return result

    def study_settings(self) -> dict[str, Any]:
        """What names this experiment's study in run records: ``settings`` and the metric."""
        return {"experiment": self.settings, "metric": self.metric}

    def experiment(self, grid: Mapping[str, Any]) -> Experiment:
        """The experiment that runs a grid point: an experiment is its own one point, ``{}``."""
        if not isinstance(grid, Mapping) or grid:
            raise ValueError(f"Expected argument `grid` to be {{}}, the one point of an experiment, but got {grid!r}.")
        return self

    def run_seeded(self, heuristic: str, seed: int) -> History:
        """One run from its row and seed alone: ``model(seed)`` after ``seed_everything(seed)``, then :meth:`run_one`.

        A run's randomness is the same here, in a grid, in a worker process or in a shard (docs/experiments.md).
        """
        if heuristic not in self.heuristics:
            raise ValueError(
                f"Expected argument `heuristic` to be a row of the experiment, one of {self.heuristics}, but got"
                f" {heuristic!r}."
            )
        if isinstance(seed, bool) or not isinstance(seed, Integral):
            raise TypeError(f"Expected argument `seed` to be an integer, but got {seed!r}.")
        pl.seed_everything(seed, verbose=False)
        initial_model = check_built("model", self.model(seed), pl.LightningModule, seed)
        # A factory that hands out one shared module would otherwise carry training from run to run.
        return self.run_one(heuristic, seed, copy.deepcopy(initial_model))

    def run_one(self, heuristic: str, seed: int, model: pl.LightningModule) -> History:
        """One run of the row ``heuristic`` at ``seed`` from ``model``; returns the callback's history (rank zero's).

        The global random state is left as the caller has it: :meth:`run_seeded` seeds it and builds the model first,
        as the hand-written loop of docs/experiments.md does, so both train from the same random state.
        """
        row = self.rows.get(heuristic) or Row(heuristic)
        datamodule = check_built("datamodule", self.datamodule(seed), ActiveDataModule, seed)
        if row.model is not None:
            model = check_built(f"rows[{heuristic!r}].model", row.model(model, seed), pl.LightningModule, seed)
        if row.datamodule is not None:
            datamodule = check_built(
                f"rows[{heuristic!r}].datamodule", row.datamodule(datamodule), ActiveDataModule, seed
            )
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
        # The trainer's own callbacks are stateful too (early stopping, checkpoints): each run starts from copies.
        settings["callbacks"] = [callback, *copy.deepcopy(list(settings.get("callbacks", [])))]
        trainer = pl.Trainer(**settings)
        trainer.fit(model, datamodule=datamodule)
        return [dict(step) for step in callback.history]
