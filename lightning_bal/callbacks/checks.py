"""The callback's checks: its arguments, the datamodule, the trainer's schedule, a pool pass at scale, the outputs."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from lightning_bal.annotation.stopping import StoppingCriterion
from lightning_bal.callbacks.convergence import Convergence
from lightning_bal.callbacks.evaluation import StepEvaluation
from lightning_bal.data import ActiveDataModule
from lightning_bal.heuristics import CombineHeuristics, DetectionHeuristic, Heuristic, get_heuristic
from lightning_bal.heuristics.stochastic import StochasticHeuristic
from lightning_bal.mc.pool_batches import module_device
from lightning_bal.mc.posterior import MCDropout, Posterior

__all__ = [
    "PROBE_ITEMS",
    "CallbackSettings",
    "check_autocast",
    "check_convergence",
    "check_fit",
    "check_heuristic",
    "check_items",
    "check_memory_budget",
    "check_outputs",
    "check_pool_pass",
    "check_posterior",
    "check_shardable",
    "check_stopping",
    "check_task",
    "configure_dataloader_reload",
    "probe_heuristic",
    "require_datamodule",
    "warn_about_schedule",
    "warn_if_budget_left",
]


class CallbackSettings(Protocol):
    """What the fit-time checks read of :class:`~lightning_bal.ActiveLearningCallback`: its settings."""

    heuristic: Heuristic
    posterior: Posterior
    evaluations: list[StepEvaluation]
    convergence: Convergence | None
    every_n_epochs: int
    query_size: int
    label_budget: int | None


def check_heuristic(heuristic: Heuristic | str, iterations: int) -> Heuristic:
    """A heuristic object (a registry name is looked up) that can run with ``iterations`` MC samples."""
    if isinstance(heuristic, str):
        heuristic = get_heuristic(heuristic)
    if not isinstance(heuristic, Heuristic):
        raise TypeError(
            "Expected argument `heuristic` to be a `lightning_bal.heuristics.Heuristic` or a registry name,"
            f" but got {type(heuristic).__name__}."
        )
    if heuristic.needs_mc_samples and isinstance(iterations, int) and iterations < 2:
        raise ValueError(
            f"Expected argument `iterations` to be at least 2 for {type(heuristic).__name__}, which needs MC"
            f" samples, but got {iterations}."
        )
    return heuristic


def check_convergence(convergence: Convergence | None, every_n_epochs: int) -> Convergence | None:
    """``convergence`` if it is a :class:`Convergence` (or None) that does not clash with ``every_n_epochs``."""
    if convergence is not None and not isinstance(convergence, Convergence):
        raise TypeError(f"Expected argument `convergence` to be a `Convergence`, but got {convergence!r}.")
    if convergence is not None and every_n_epochs != 1:
        raise ValueError(
            f"Expected either `every_n_epochs` or `convergence`, but got `every_n_epochs={every_n_epochs}` and"
            f" `convergence={convergence!r}`: with `convergence` the step runs when the model has converged."
        )
    return convergence


def check_posterior(posterior: Any, heuristic: Heuristic) -> Posterior:
    """``posterior`` if it is a :class:`Posterior` whose samples suit ``heuristic``."""
    if not isinstance(posterior, Posterior):
        raise TypeError(f"Expected argument `posterior` to be a `Posterior` (e.g. `MCDropout`), but got {posterior!r}.")
    if (heuristic.batch_aware or heuristic.needs_targets) and not posterior.consistent_samples:
        raise ValueError(
            f"{type(heuristic).__name__} needs the K MC samples to be K fixed models (joint predictions across"
            f" items), but got `{posterior!r}`."
        )
    return posterior


def check_items(name: str, items: Sequence[Any], kind: type) -> list[Any]:
    """``items`` as a list, every one an instance of ``kind``."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError(f"Expected argument `{name}` to be a sequence of `{kind.__name__}`s, but got {items!r}.")
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(f"Expected every item of `{name}` to be a `{kind.__name__}`, but got {item!r}.")
    return list(items)


def check_stopping(stopping: Sequence[StoppingCriterion], heuristic: Heuristic) -> list[StoppingCriterion]:
    """Stopping criteria, each able to read what it needs from ``heuristic``'s scores."""
    criteria = check_items("stopping", stopping, StoppingCriterion)
    for criterion in criteria:
        if criterion.needs_pool_scores and not (heuristic.needs_predictions and heuristic.higher_is_better):
            raise ValueError(
                f"{type(criterion).__name__} reads the pool's uncertainty from the heuristic's scores, but"
                f" {type(heuristic).__name__} does not score uncertainty (higher = more uncertain)."
            )
    return criteria


def require_datamodule(trainer: pl.Trainer) -> ActiveDataModule:
    """The trainer's datamodule, which must be an :class:`~lightning_bal.ActiveDataModule`."""
    datamodule = getattr(trainer, "datamodule", None)
    if not isinstance(datamodule, ActiveDataModule):
        raise TypeError(
            "Expected `trainer.fit(..., datamodule=...)` to be given a `lightning_bal.ActiveDataModule`,"
            f" but got {type(datamodule).__name__}."
        )
    return datamodule


def configure_dataloader_reload(trainer: pl.Trainer, every_n_epochs: int) -> None:
    """Make the trainer reload the train loader at least at every step, or refuse a reload period that cannot."""
    # Set by the Trainer at init but not declared on the class.
    reload = trainer.reload_dataloaders_every_n_epochs  # type: ignore[attr-defined]
    if reload == 0:
        trainer.reload_dataloaders_every_n_epochs = 1  # type: ignore[attr-defined]
    elif every_n_epochs % reload:
        raise ValueError(
            f"`Trainer(reload_dataloaders_every_n_epochs={reload})` would keep training on a stale labelled set:"
            f" the active learning step runs every {every_n_epochs} epochs. Use a divisor of"
            f" `every_n_epochs` or leave it at 0 (the callback then reloads the train loader every epoch)."
        )


def warn_about_schedule(trainer: pl.Trainer, callback: CallbackSettings) -> None:
    """Warn when validation misses step epochs, or when the trainer's limits end the run before the budget."""
    datamodule, every_n_epochs, convergence = require_datamodule(trainer), callback.every_n_epochs, callback.convergence
    query_size, label_budget = callback.query_size, callback.label_budget
    check_val = trainer.check_val_every_n_epoch
    if convergence is None and datamodule.val_dataset is not None and check_val and every_n_epochs % check_val:
        rank_zero_warn(
            f"`Trainer(check_val_every_n_epoch={check_val})` does not validate at every step"
            f" (`every_n_epochs={every_n_epochs}`): a step then logs the validation figures of an older"
            " labelled set. Make `every_n_epochs` a multiple of it."
        )
    max_epochs = trainer.max_epochs
    if label_budget is None or max_epochs is None or max_epochs < 0:
        return
    steps_needed = math.ceil(max(0, label_budget - datamodule.num_labelled) / query_size) + 1
    epochs_per_step = every_n_epochs if convergence is None else convergence.plateau.patience + 1
    if max_epochs < steps_needed * epochs_per_step:
        rank_zero_warn(
            f"`Trainer(max_epochs={max_epochs})` may end the run before `label_budget={label_budget}` is"
            f" spent: that takes {steps_needed} steps of at least {epochs_per_step} epoch(s). Use"
            " `Trainer(max_epochs=-1)` to run until the budget is spent (the callback then stops training)."
        )


def warn_if_budget_left(
    trainer: pl.Trainer, datamodule: ActiveDataModule, label_budget: int | None, steps_done: int
) -> None:
    """At fit end: warn when the trainer's limits, not the budget or the pool, ended the run."""
    budget_left = label_budget is not None and datamodule.num_labelled < label_budget
    if budget_left and datamodule.num_pool and not trainer.should_stop:
        rank_zero_warn(
            f"Training ended after {steps_done} active learning steps with {datamodule.num_labelled} of"
            f" `label_budget={label_budget}` labels: the trainer's limits (max_epochs={trainer.max_epochs},"
            f" max_steps={trainer.max_steps}) stopped it first, and the last labelled set was not evaluated."
            " Use `Trainer(max_epochs=-1)` to run until the budget is spent."
        )


def check_fit(trainer: pl.Trainer, pl_module: pl.LightningModule, callback: CallbackSettings) -> None:
    """At setup, before any training: the model, the pool and the datasets can carry the run's steps."""
    datamodule, heuristic, posterior = require_datamodule(trainer), callback.heuristic, callback.posterior
    evaluations, convergence = callback.evaluations, callback.convergence
    if heuristic.needs_predictions or any(e.needs_mc for e in evaluations):
        posterior.check(pl_module)
        check_pool_pass(trainer.strategy, pl_module, datamodule, heuristic, posterior)
    if convergence is not None and datamodule.val_dataset is None:
        raise ValueError(
            f"`Convergence({convergence.monitor!r})` needs a `val_dataset` in the `ActiveDataModule`, but it has none."
        )
    for evaluation in evaluations:
        evaluation.check(datamodule)


#: Strategies that run collectives inside the model's forward: every rank must run the same batches, in step.
_SHARDED_MODEL_STRATEGIES = ("FSDPStrategy", "DeepSpeedStrategy", "ModelParallelStrategy")


def check_pool_pass(
    strategy: Any, module: nn.Module, datamodule: ActiveDataModule, heuristic: Heuristic, posterior: Posterior
) -> None:
    """Raise a clear error at setup for a pool pass that could not run: see the three checks below."""
    check_shardable(strategy, datamodule, heuristic)
    if isinstance(posterior, MCDropout):
        check_memory_budget(posterior.memory_budget, datamodule)
        check_autocast(posterior.autocast_dtype, module_device(module))


def check_shardable(strategy: Any, datamodule: ActiveDataModule, heuristic: Heuristic) -> None:
    """The pool must split into independent per-rank shards: no collective in the forward, at most 2**32 items."""
    name = type(strategy).__name__
    if int(getattr(strategy, "world_size", 1)) > 1 and name in _SHARDED_MODEL_STRATEGIES:
        raise ValueError(
            f"The pool pass scores an uneven shard of the pool on each rank independently, but the strategy {name}"
            " runs collectives inside the model's forward, which needs every rank to run the same batches. Score"
            ' the pool under DDP (`strategy="ddp"`) or on one device.'
        )
    if isinstance(heuristic, StochasticHeuristic) and heuristic.mode == "softrank" and len(datamodule) > 2**32:
        raise ValueError(
            f"Expected a pool of at most 2**32 items for {type(heuristic).__name__} (its ranks are merged across"
            f" processes by 64-bit keys that hold the dataset index in 32 bits), but got {len(datamodule)}."
        )


def check_memory_budget(memory_budget: int | None, datamodule: ActiveDataModule) -> None:
    """``memory_budget`` must hold at least the inputs of one pool batch (``pool_batch_size`` rows)."""
    if memory_budget is None or datamodule.num_pool == 0:
        return
    inputs = datamodule.pool_dataloader(datamodule.pool_indices[:1]).dataset[0][0]
    row_bytes = _bytes(inputs)
    batch_bytes = row_bytes * datamodule.pool_batch_size
    if batch_bytes > memory_budget:
        raise ValueError(
            f"Expected `MCDropout(memory_budget=...)` to hold at least one pool batch, but got {memory_budget} bytes:"
            f" the inputs of one batch of `pool_batch_size={datamodule.pool_batch_size}` alone take {batch_bytes}"
            " bytes. Raise the budget or lower `pool_batch_size`."
        )


def check_autocast(dtype: torch.dtype | None, device: torch.device) -> None:
    """Autocast with ``dtype`` must be supported on ``device`` (torch would otherwise silently switch it off)."""
    if dtype is None:
        return
    supported = torch.amp.autocast_mode.is_autocast_available(device.type)
    if supported and device.type == "cuda" and dtype == torch.bfloat16:
        supported = torch.cuda.is_bf16_supported()
    if supported:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.autocast(device.type, dtype=dtype):
                pass
        supported = not any("not supported" in str(warning.message) for warning in caught)
    if not supported:
        raise ValueError(
            f"Expected `MCDropout(autocast_dtype=...)` to be a dtype that autocast supports on {device.type}, but got"
            f" {dtype}: torch would switch autocast off."
        )


def _bytes(inputs: Any) -> int:
    if isinstance(inputs, Tensor):
        return inputs.numel() * inputs.element_size()
    if isinstance(inputs, dict):
        return sum(_bytes(value) for value in inputs.values())
    if isinstance(inputs, (tuple, list)):
        return sum(_bytes(value) for value in inputs)
    return int(getattr(inputs, "nbytes", 0))


#: How many pool items the probe scores.
PROBE_ITEMS = 2


def check_outputs(
    module: pl.LightningModule, datamodule: ActiveDataModule, callback: CallbackSettings, seed: int
) -> None:
    """The callback's checks at fit start: each evaluation's ``check_model``, then :func:`probe_heuristic`."""
    heuristic, posterior = callback.heuristic, callback.posterior
    for evaluation in callback.evaluations:
        # A posterior of its own (an ensemble, SWAG) need not sample through `forward`: only MC-Dropout's
        # samples are `forward`'s outputs, so only there does checking `forward` check what is evaluated.
        if not evaluation.needs_mc or isinstance(posterior, MCDropout):
            evaluation.check_model(module, datamodule)
    probe_heuristic(module, datamodule, heuristic, posterior, seed)


def probe_heuristic(
    module: nn.Module, datamodule: ActiveDataModule, heuristic: Heuristic, posterior: Posterior, seed: int
) -> bool:
    """:func:`check_task`, then score the first :data:`PROBE_ITEMS` pool items with K=2 samples; ``False``: skipped."""
    check_task(datamodule, heuristic)
    skip = (
        not heuristic.needs_predictions
        or heuristic.needs_targets
        or heuristic.needs_embeddings
        or not posterior.samples_before_fit
        or datamodule.num_pool == 0
    )
    if skip:
        return False
    loader = datamodule.pool_dataloader(datamodule.pool_indices[:PROBE_ITEMS])
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for _, outputs in posterior.batches(module, loader, 2, seed, heuristic.transform):
            heuristic.score(outputs)
            if heuristic.batch_aware:
                # BatchBALD's pre-filter scores items one by one; what it refuses is met when it selects.
                heuristic.select(outputs, 1, torch.Generator().manual_seed(seed))
    return True


def check_task(datamodule: ActiveDataModule, heuristic: Heuristic) -> None:
    """Refuse a heuristic of the other task than the datamodule's declared ``task`` (it would raise nothing later)."""
    task = datamodule.ledger.task
    skip = (
        task is None
        or heuristic.output is not None
        or isinstance(heuristic, CombineHeuristics)
        or not heuristic.needs_predictions
        or heuristic.needs_embeddings
    )
    if skip:
        return
    if task == "detection" and not isinstance(heuristic, DetectionHeuristic):
        raise ValueError(
            f"Expected a detection heuristic (e.g. 'detection_bald', docs/detection.md) for `task='detection'`, but got"
            f" {heuristic!r}, which scores tensor outputs, not each image's K lists of detections."
        )
    if task == "classification" and heuristic.consumes == "outputs":
        raise ValueError(
            f"Expected a classification heuristic for the class logits of `task='classification'`, but got"
            f" {heuristic!r}, which scores raw regression outputs. Name the model's regression output"
            f" (`{type(heuristic).__name__}(output=...)`) or declare `ActiveDataModule(task='regression')`."
        )
    if task == "multilabel" and heuristic.consumes == "log_probs":
        raise ValueError(
            f"Expected a multi-label heuristic (e.g. 'multilabel_bald') for the per-class logits of"
            f" `task='multilabel'`, but got {heuristic!r}, whose softmax over the classes would make them exclusive."
        )
    if task == "regression" and heuristic.consumes == "log_probs":
        raise ValueError(
            f"Expected a regression heuristic (e.g. `Variance()`) for the outputs of `task='regression'`, but got"
            f" {heuristic!r}, which scores class logits, not a regression output. Name the model's class-logit output"
            f" (`{type(heuristic).__name__}(output=...)`) or declare `ActiveDataModule(task='classification')`."
        )
