"""What an active learning step reports to the trainer's loggers, against the number of labelled samples."""

from __future__ import annotations

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor

from lightning_bal.callbacks.context import StepContext
from lightning_bal.callbacks.pool_pass import PoolSelection
from lightning_bal.utilities.tensorboard import add_layout

__all__ = ["HP_METRIC_SOURCES", "log_selection", "monitored_value"]

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


def log_selection(context: StepContext, selection: PoolSelection | None) -> dict[str, float] | None:
    """Log a step at ``step=num_labelled`` to every logger (rank zero only; see docs/user_guide.md); its scalars."""
    trainer, datamodule = context.trainer, context.datamodule
    if not trainer.is_global_zero:
        return None  # logging is rank zero's; the class histogram reads D_L's targets
    figures = {
        "num_labelled": float(datamodule.num_labelled),
        "num_pool": float(datamodule.num_pool),
        "step": float(datamodule.step),
        "pool_pass_seconds": 0.0 if selection is None else selection.seconds,
        **context.val_metrics,
        **context.figures,
    }
    pool_scores = None if selection is None else selection.pool_scores
    if selection is not None:
        figures["num_scored"] = float(context.candidates.numel())
        if selection.gains is not None and selection.gains.numel():
            # BatchBALD: its selected scores are BALD scores, like the pool's; what each pick added to the batch's
            # joint mutual information is another quantity, logged under its own names.
            figures.update(_stats("selected_joint_mi_gain", selection.gains))
            figures["selected_joint_mi"] = float(selection.gains.double().sum())
        if len(selection.rank_seconds) > 1:
            # Each rank's own time, so that a straggler shows.
            figures.update({f"pool_pass_seconds_rank{r}": t for r, t in enumerate(selection.rank_seconds)})
        stats = selection.pool_statistics
        if stats is not None:
            figures.update(score_pool_mean=stats.mean, score_pool_max=stats.max, score_pool_min=stats.min)
            figures.update(_stats("score_selected", selection.scores))
    labelled_classes = datamodule.labelled_targets()
    counts = datamodule.labelled_class_counts()
    if counts is not None and counts.numel():
        figures.update({f"labelled_class_{c}": float(n) for c, n in enumerate(counts.tolist())})
    metrics = {f"active/{name}": float(value) for name, value in figures.items()}
    step = datamodule.num_labelled
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=step)
        if isinstance(logger, TensorBoardLogger):
            _histograms(logger, step, pool_scores, labelled_classes, 0 if counts is None else counts.numel())
            add_layout(logger.experiment, "active")
            curve = next((f"active/{name}" for name in HP_METRIC_SOURCES if f"active/{name}" in metrics), None)
            if curve is not None and "hp_metric" not in trainer.callback_metrics:
                logger.log_metrics({"hp_metric": metrics[curve]}, step=step)
    return metrics


def _histograms(
    logger: TensorBoardLogger, step: int, pool_scores: Tensor | None, labelled: Tensor | None, num_classes: int
) -> None:
    writer = logger.experiment
    if pool_scores is not None and pool_scores.numel():
        writer.add_histogram("active/pool_scores", pool_scores.float().cpu(), global_step=step)
    if labelled is not None and labelled.numel():
        # One bin per class of the dataset (empty ones too), centred on the class id.
        bins = torch.arange(num_classes + 1, dtype=torch.float64) - 0.5
        writer.add_histogram("active/labelled_classes", labelled.cpu(), global_step=step, bins=bins.numpy())


def monitored_value(trainer: Trainer, monitor: str) -> float:
    """Rank zero's value of the logged metric ``monitor`` after validation, on every rank (so all act alike)."""
    value = trainer.callback_metrics.get(monitor)
    broadcast = trainer.strategy.broadcast(None if value is None else float(value), src=0)
    if broadcast is None:
        available = ", ".join(sorted(trainer.callback_metrics)) or "none"
        raise RuntimeError(
            f"`Convergence(monitor={monitor!r})` found no such metric after validation; the logged metrics"
            f" are: {available}. Log it with `self.log` in `validation_step`."
        )
    return float(broadcast)
