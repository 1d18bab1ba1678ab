"""The protocol of Gal et al. 2017 and Kirsch et al. 2019 as settings that build an :class:`Experiment`."""

from __future__ import annotations

import argparse
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch.utils.data import TensorDataset

from lightning_bal.annotation.stopping import TargetReached
from lightning_bal.callbacks import Convergence, LabelledRisk, TestCurve
from lightning_bal.data import ActiveDataModule
from lightning_bal.experiments.cold_start import COLD_STARTS, cold_start_labels
from lightning_bal.experiments.experiment import Experiment, check_factory
from lightning_bal.experiments.posteriors import posterior_row, split_row_name
from lightning_bal.utilities.checks import check_argument, is_finite

__all__ = ["PaperProtocol", "add_protocol_arguments", "protocol_from_arguments"]

Datasets = Callable[[int], tuple[TensorDataset, TensorDataset]]


@dataclass(frozen=True)
class PaperProtocol:
    """Settings of the papers' protocol (docs/experiments.md#the-papers-protocol) that build an :class:`Experiment`.

    Each run's history holds ``active/num_labelled``, ``active/test_acc``, ``active/test_nll``,
    ``active/train_nll_mean`` and, when every label was drawn with a known probability, ``active/train_nll_lure``.

    Args:
        budget: stop once D_L holds this many samples.
        stop_at: also stop once the test accuracy reaches this.
        cold_start: choose the initial D_L with ``"typiclust"`` or ``"probcover"`` on PCA embeddings of the pixels.
        iterations: K, the MC samples (the papers used 100).
        epochs_per_step: without ``val_size``, the epochs trained per step.
        val_size: hold out this many training samples and train each step to convergence on them (0: a fixed number
            of epochs per step).
        patience: epochs without improvement of ``val_acc`` that end a step.
        max_pool_size: score a random subset of this many pool samples per step (``None``: the whole pool).
        pool_size: D_L and D_U are a fixed random subset of this many training samples (``None``: all of them).
        risk_weights: ``"lure"`` trains on the LURE-weighted loss (the model's ``training_step`` must use the weight
            each batch then carries); needs ``balanced_initial=False`` and ``max_pool_size=None``.

    Examples:
        >>> protocol = PaperProtocol(budget=40, val_size=100)
        >>> protocol.callback_kwargs()["convergence"]
        Convergence('val_acc', mode='max', patience=3, min_delta=0.0, max_epochs=30, restore_best_weights=True)
    """

    budget: int = 300
    stop_at: float | None = None
    initial_labels: int = 20
    balanced_initial: bool = True
    cold_start: Literal["typiclust", "probcover"] | None = None
    query_size: int = 10
    iterations: int = 20
    epochs_per_step: int = 5
    samples_per_epoch: int = 2048
    val_size: int = 0
    patience: int = 3
    max_epochs_per_step: int = 30
    max_pool_size: int | None = None
    pool_size: int | None = None
    risk_weights: Literal["lure", "pure"] | None = None
    batch_size: int = 64

    def __post_init__(self) -> None:
        positive = ("budget", "query_size", "iterations", "epochs_per_step", "samples_per_epoch", "batch_size")
        for name in (*positive, "patience", "max_epochs_per_step"):
            _check_int(name, getattr(self, name), 1)
        for name in ("initial_labels", "val_size"):
            _check_int(name, getattr(self, name), 0)
        for name in ("max_pool_size", "pool_size"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1, "or None")
        check_argument(
            "balanced_initial", self.balanced_initial, isinstance(self.balanced_initial, bool), "a bool", TypeError
        )
        stop_at = self.stop_at
        accuracy = stop_at is None or (is_finite(stop_at) and 0 < stop_at <= 1)
        check_argument("stop_at", stop_at, accuracy, "a test accuracy in (0, 1] or None")
        check_argument(
            "cold_start", self.cold_start, self.cold_start in (None, *COLD_STARTS), f"one of {COLD_STARTS} or None"
        )
        weights = self.risk_weights
        check_argument("risk_weights", weights, weights in (None, "lure", "pure"), "'lure', 'pure' or None")
        if self.budget <= self.initial_labels:
            raise ValueError(
                f"Expected argument `budget` to exceed `initial_labels={self.initial_labels}`, but got {self.budget}."
            )
        if self.pool_size is not None and self.pool_size < self.initial_labels:
            raise ValueError(
                f"Expected argument `pool_size` to hold the `initial_labels={self.initial_labels}`, but got"
                f" {self.pool_size}."
            )

    def datamodule(self, train_set: TensorDataset, test_set: TensorDataset, seed: int) -> ActiveDataModule:
        """The datamodule of one run: ``seed`` draws the validation split, the pool subset and the initial labels."""
        check_argument(
            "seed", seed, not isinstance(seed, bool) and isinstance(seed, numbers.Integral), "an integer", TypeError
        )
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))
        val_set = _subset(train_set, order[: self.val_size]) if self.val_size else None
        if self.val_size or self.pool_size is not None:
            pool_end = None if self.pool_size is None else self.val_size + self.pool_size
            train_set = _subset(train_set, order[self.val_size : pool_end].sort().values)
        datamodule = ActiveDataModule(
            train_set,
            val_dataset=val_set,
            test_dataset=test_set,
            initial_labels=0 if self.cold_start else self.initial_labels,
            balanced_initial=self.balanced_initial,
            batch_size=self.batch_size,
            train_samples_per_epoch=self.samples_per_epoch,
            eval_batch_size=1000,
            return_weights=self.risk_weights,
            max_pool_size=self.max_pool_size,
            seed=seed,
        )
        if self.cold_start is not None:
            inputs, targets = train_set.tensors[:2]
            classes = int(targets.max()) + 1
            picks = cold_start_labels(datamodule, inputs, self.cold_start, self.initial_labels, classes, seed)
            datamodule.label(picks)
        return datamodule

    def callback_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~lightning_bal.ActiveLearningCallback` beside the heuristic and the seed."""
        schedule: dict[str, Any] = {"every_n_epochs": self.epochs_per_step}
        if self.val_size:
            stop = Convergence("val_acc", mode="max", patience=self.patience, max_epochs=self.max_epochs_per_step)
            schedule = {"convergence": stop}
        return {
            "query_size": self.query_size,
            "iterations": self.iterations,
            **schedule,
            "reset_weights": True,
            "label_budget": self.budget,
            "evaluations": [TestCurve(), LabelledRisk()],
            "stopping": [] if self.stop_at is None else [TargetReached("test_acc", self.stop_at)],
        }

    def experiment(
        self,
        heuristics: Sequence[str],
        seeds: Iterable[int],
        *,
        model: Callable[[int], pl.LightningModule],
        datasets: Datasets,
        trainer: Mapping[str, Any] | None = None,
        log_dir: str | Path | None = None,
    ) -> Experiment:
        """An :class:`Experiment` of this protocol; ``datasets(seed)`` gives the ``(train, test)`` datasets of a seed.

        ``heuristics`` may name ``heuristic@posterior`` rows (:func:`posterior_row`, over a :class:`DropoutCNN`);
        ``trainer`` holds ``Trainer`` keyword arguments over ``accelerator="auto", devices=1`` and no progress bar.
        """
        check_factory("datasets", datasets, "the (train, test) datasets for a seed")
        mapping = trainer is None or isinstance(trainer, Mapping)
        check_argument("trainer", trainer, mapping, "a mapping of keyword arguments", TypeError)
        names = not isinstance(heuristics, (str, bytes))
        check_argument("heuristics", heuristics, names, "a list of names", TypeError)
        # An epoch is `samples_per_epoch` samples: log at least once per epoch (Lightning warns otherwise).
        batches = max(1, self.samples_per_epoch // self.batch_size)
        settings = {
            "accelerator": "auto",
            "devices": 1,
            "enable_progress_bar": False,
            "log_every_n_steps": min(50, batches),
            **(trainer or {}),
        }
        rows = {name: posterior_row(name) for name in heuristics if split_row_name(name)[1] is not None}
        return Experiment(
            heuristics,
            seeds,
            model=model,
            datamodule=lambda seed: self.datamodule(*datasets(seed), seed),
            callback=self.callback_kwargs(),
            trainer=settings,
            metric="active/test_acc",
            log_dir=log_dir,
            rows=rows,
        )


def _subset(dataset: TensorDataset, indices: torch.Tensor) -> TensorDataset:
    subset = TensorDataset(*(tensor[indices] for tensor in dataset.tensors))
    subset.targets = subset.tensors[1]  # type: ignore[attr-defined]  # read by ActiveDataModule's balanced labelling
    return subset


def _check_int(name: str, value: Any, low: int, alternative: str = "") -> None:
    wrong_type = isinstance(value, bool) or not isinstance(value, int)
    if wrong_type or value < low:
        kind = ("a positive integer" if low else "a non-negative integer") + (f" {alternative}" if alternative else "")
        error = TypeError if wrong_type else ValueError
        raise error(f"Expected argument `{name}` to be {kind}, but got {value!r}.")


def _at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``low`` (argparse names the flag in its error)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer of at least {low}, got {value}")
        return value

    return parse


def _accuracy(text: str) -> float:
    """An argparse type: a test accuracy in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected an accuracy in (0, 1], got {text!r}")
    return value


def add_protocol_arguments(parser: argparse.ArgumentParser, budget: int = 300) -> None:
    """Command-line options for the fields of :class:`PaperProtocol` that scripts share, and ``--network``.

    Examples:
        >>> parser = argparse.ArgumentParser()
        >>> add_protocol_arguments(parser)
        >>> protocol_from_arguments(parser.parse_args(["--budget", "40", "--max-pool-size", "0"]))
        PaperProtocol(budget=40, stop_at=None, ...max_pool_size=None, pool_size=None, risk_weights=None, ...)
    """
    positive, non_negative = _at_least(1), _at_least(0)
    parser.add_argument("--initial-labels", type=non_negative, default=20)
    parser.add_argument("--query-size", type=positive, default=10)
    parser.add_argument("--budget", type=positive, default=budget, help="stop once this many samples are labelled")
    parser.add_argument("--stop-at", type=_accuracy, default=None, help="also stop once the test accuracy reaches this")
    parser.add_argument("--iterations", type=positive, default=20, help="MC samples K (the papers used 100)")
    parser.add_argument("--epochs-per-step", type=positive, default=5)
    parser.add_argument("--samples-per-epoch", type=positive, default=2048)
    parser.add_argument(
        "--val-size", type=non_negative, default=0, help="train each step to convergence on this validation"
    )
    parser.add_argument("--patience", type=positive, default=3, help="epochs without improvement that end a step")
    parser.add_argument("--max-epochs-per-step", type=positive, default=30, help="with --val-size")
    parser.add_argument(
        "--max-pool-size", type=non_negative, default=2000, help="score a random pool subset (0: whole pool)"
    )
    parser.add_argument("--network", choices=["gal", "kirsch"], default="gal", help="CNN of Gal 2017 or Kirsch 2019")


def protocol_from_arguments(args: argparse.Namespace, **overrides: Any) -> PaperProtocol:
    """The :class:`PaperProtocol` of options added by :func:`add_protocol_arguments` (``overrides`` win)."""
    names = ["budget", "stop_at", "initial_labels", "query_size", "iterations", "epochs_per_step"]
    names += ["samples_per_epoch", "val_size", "patience", "max_epochs_per_step"]
    settings: dict[str, Any] = {name: getattr(args, name) for name in names}
    settings["max_pool_size"] = args.max_pool_size or None
    return PaperProtocol(**{**settings, **overrides})
