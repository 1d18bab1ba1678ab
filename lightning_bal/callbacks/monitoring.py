"""What an active learning step reports to the trainer's loggers, against the number of labelled samples."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor

from lightning_bal.callbacks.context import StepContext, val_figures
from lightning_bal.callbacks.pool_pass import PoolSelection
from lightning_bal.utilities.tensorboard import add_layout

__all__ = ["log_selection", "HP_METRIC_SOURCES", "log_step", "monitored_value", "val_figures"]

# What `hp_metric` shows in TensorBoard's HParams tab: the latest point of the first of these active learning curves.
HP_METRIC_SOURCES = ("test_acc", "val_acc")


def _stats(prefix: str, scores: Tensor) -> dict[str, float]:
    if scores.numel() == 0:
        return {}
    scores = scores.double()
    return {
        f"{prefix}_mean": float(scores.mean()),
        f"{prefix}_max": float(scores.max()),
        f"{prefix}_min": float(scores.min()),
    }


@rank_zero_only
def log_step(
    trainer: Trainer,
    *,
    num_labelled: int,
    num_pool: int,
    step: int,
    pool_seconds: float,
    pool_scores: Tensor | None,
    selected_scores: Tensor | None,
    labelled_classes: Tensor | None,
    extra: dict[str, float] | None = None,
    val_metrics: dict[str, float] | None = None,
    prefix: str = "active",
    pool_statistics: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Log one active learning step to every logger of ``trainer`` at ``step=num_labelled`` (rank zero only).

    Scalars: labelled and pool counts, the validation metrics the user logged (``val*`` keys of
    ``trainer.callback_metrics``, so the active learning curve appears by itself), score statistics of the pool and of
    the selection, per-class counts of D_L, the seconds spent in the pool pass and any ``extra`` figures (e.g. the
    calibration of the MC-averaged predictions). ``val_metrics``, when given, replaces the ``val*`` metrics of
    ``trainer.callback_metrics`` (the figures of a restored best model rather than of the last epoch). TensorBoard
    loggers also get histograms of the pool scores and of the labelled classes, the custom-scalars layout of
    :mod:`lightning_bal.utilities.tensorboard` (the curves against labelled samples, every run on one chart) and
    ``hp_metric``: the latest ``test_acc`` (else ``val_acc``) of the curve, in place of the ``-1`` that
    ``TensorBoardLogger(default_hp_metric=True)`` writes at the start (unless the model logs ``hp_metric`` itself).
    Returns the scalars.

    ``pool_statistics`` (``mean``, ``max``, ``min`` of the whole pool, reduced over the ranks) replaces the statistics
    of ``pool_scores``, which is then only a bounded sample for the histogram.
    """
    metrics: dict[str, float] = {
        f"{prefix}/num_labelled": float(num_labelled),
        f"{prefix}/num_pool": float(num_pool),
        f"{prefix}/step": float(step),
        f"{prefix}/pool_pass_seconds": pool_seconds,
    }
    if val_metrics is None:
        val_metrics = val_figures(trainer.callback_metrics)
    metrics.update({f"{prefix}/{name}": value for name, value in val_metrics.items()})
    metrics.update({f"{prefix}/{name}": value for name, value in (extra or {}).items()})
    if pool_statistics is not None:
        metrics.update({f"{prefix}/score_pool_{name}": float(value) for name, value in pool_statistics.items()})
    elif pool_scores is not None:
        metrics.update(_stats(f"{prefix}/score_pool", pool_scores))
    if selected_scores is not None:
        metrics.update(_stats(f"{prefix}/score_selected", selected_scores))
    counts = None
    if labelled_classes is not None and labelled_classes.numel():
        counts = torch.bincount(labelled_classes)
        metrics.update({f"{prefix}/labelled_class_{c}": float(n) for c, n in enumerate(counts.tolist())})
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=num_labelled)
        if isinstance(logger, TensorBoardLogger):
            _histograms(logger, prefix, num_labelled, pool_scores, labelled_classes)
            add_layout(logger.experiment, prefix)
            curve = next((f"{prefix}/{name}" for name in HP_METRIC_SOURCES if f"{prefix}/{name}" in metrics), None)
            if curve is not None and "hp_metric" not in trainer.callback_metrics:
                logger.log_metrics({"hp_metric": metrics[curve]}, step=num_labelled)
    return metrics


def _histograms(
    logger: TensorBoardLogger, prefix: str, step: int, pool_scores: Tensor | None, labelled_classes: Tensor | None
) -> None:
    writer = logger.experiment
    if pool_scores is not None and pool_scores.numel():
        writer.add_histogram(f"{prefix}/pool_scores", pool_scores.float().cpu(), global_step=step)
    if labelled_classes is not None and labelled_classes.numel():
        # One bin per class, centred on the class id.
        bins = torch.arange(int(labelled_classes.max()) + 2, dtype=torch.float64) - 0.5
        writer.add_histogram(f"{prefix}/labelled_classes", labelled_classes.cpu(), global_step=step, bins=bins.numpy())


def log_selection(context: StepContext, selection: PoolSelection | None) -> dict[str, float] | None:
    """Log a step with its figures (its selection, or ``None`` for a step that labels nothing); rank zero only."""
    trainer, datamodule = context.trainer, context.datamodule
    if not trainer.is_global_zero:
        return None  # logging is rank zero's; the class histogram reads D_L's targets
    figures = dict(context.figures)
    statistics = None
    if selection is not None:
        figures["num_scored"] = float(selection.num_scored)
        if selection.gains is not None and selection.gains.numel():
            # BatchBALD: its selected scores are BALD scores, like the pool's; what each pick added to the batch's
            # joint mutual information is another quantity, logged under its own names.
            figures.update(_stats("selected_joint_mi_gain", selection.gains))
            figures["selected_joint_mi"] = float(selection.gains.double().sum())
        if len(selection.rank_seconds) > 1:
            # Each rank's own time, so that a straggler shows.
            figures.update({f"pool_pass_seconds_rank{r}": t for r, t in enumerate(selection.rank_seconds)})
        if selection.pool_statistics is not None:
            stats = selection.pool_statistics
            statistics = {"mean": stats.mean, "max": stats.max, "min": stats.min}
    return log_step(
        trainer,
        num_labelled=datamodule.num_labelled,
        num_pool=datamodule.num_pool,
        step=datamodule.step,
        pool_seconds=0.0 if selection is None else selection.seconds,
        pool_scores=None if selection is None else selection.pool_scores,
        selected_scores=None if selection is None or selection.pool_scores is None else selection.scores,
        labelled_classes=datamodule.labelled_targets(),
        extra=figures,
        val_metrics=context.val_metrics,
        pool_statistics=statistics,
    )


def monitored_value(trainer: Trainer, monitor: str) -> float:
    """Rank zero's value of the logged metric ``monitor`` after validation, on every rank.

    Rank zero's value decides, so every rank acts at the same epoch even if the metric is not synced, and every rank
    raises together if rank zero has none.
    """
    value = trainer.callback_metrics.get(monitor)
    broadcast = trainer.strategy.broadcast(None if value is None else float(value), src=0)
    if broadcast is None:
        available = ", ".join(sorted(trainer.callback_metrics)) or "none"
        raise RuntimeError(
            f"`Convergence(monitor={monitor!r})` found no such metric after validation; the logged metrics"
            f" are: {available}. Log it with `self.log` in `validation_step`."
        )
    return float(broadcast)
