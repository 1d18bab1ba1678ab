"""ActiveLearningCallback: turn any Lightning training run into an active learning run, on one device or many."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from typing_extensions import override

from lightning_bal.annotation.annotator import QueryFiles
from lightning_bal.annotation.stopping import StoppingCriterion
from lightning_bal.callbacks.checkpointed import CheckpointedState, replay_skipped_validation, undone_if_interrupted
from lightning_bal.callbacks.checks import (
    check_convergence,
    check_fit,
    check_heuristic,
    check_items,
    check_outputs,
    check_posterior,
    check_stopping,
    configure_dataloader_reload,
    require_datamodule,
    warn_about_schedule,
    warn_if_budget_left,
)
from lightning_bal.callbacks.context import StepContext, val_figures
from lightning_bal.callbacks.convergence import Convergence
from lightning_bal.callbacks.evaluation import StepEvaluation
from lightning_bal.callbacks.monitoring import log_selection, monitored_value
from lightning_bal.callbacks.pool_pass import PoolPass, plan_query, progress_refresh_rate, stop_reasons_at
from lightning_bal.data import ActiveDataModule
from lightning_bal.heuristics import Heuristic
from lightning_bal.mc.posterior import MCDropout, Posterior
from lightning_bal.mc.split import describe_split
from lightning_bal.utilities.checks import check_bool, check_positive_int
from lightning_bal.utilities.seeding import check_seed

__all__ = ["FINAL_STATE_FILE", "ActiveLearningCallback", "hand_back_labels"]

#: Written to the trainer's ``default_root_dir`` by rank zero at the end of a spawned fit.
FINAL_STATE_FILE = "active_learning_final_state.pt"


class ActiveLearningCallback(CheckpointedState):
    """Run an active learning step (score the pool, label ``query_size`` samples) every few epochs.

    Each step's figures go to the loggers and to :attr:`history` (rank zero); the step that finds the budget spent or
    the pool empty stops training (use ``Trainer(max_epochs=-1)``). See docs/user_guide.md.

    Args:
        heuristic: a :class:`~lightning_bal.heuristics.Heuristic` or a registry name such as ``"bald"``.
        query_size: samples labelled per active learning step.
        iterations: MC samples K drawn per pool item.
        every_n_epochs: training epochs per active learning step (without ``convergence``).
        convergence: train each step until a validation metric stops improving instead.
        reset_weights: after each step, reset the model to its fit-start weights and re-create the optimizers.
        label_budget: stop once D_L holds this many samples (the last labelled set is still trained and validated).
        posterior: how the K samples are drawn (default ``MCDropout()``).
        evaluations: per-step figures to add, e.g. ``[TestCurve(), Calibration()]``.
        seed: seed of the MC masks and of stochastic selection; ``None`` uses the datamodule's seed.
        stopping: criteria that may end the run at a step, e.g. ``[MetricPlateau("val_acc")]``.
        annotator: send each query to people (e.g. ``QueryFiles("csv")``) and end ``fit`` (see docs/annotators.md).

    Examples:
        >>> import lightning.pytorch as pl
        >>> from lightning_bal.heuristics import BALD
        >>> callback = ActiveLearningCallback(BALD(), query_size=10, iterations=20)
        >>> trainer = pl.Trainer(max_epochs=-1, callbacks=[callback], logger=False, enable_progress_bar=False)
        >>> callback.query_size, callback.heuristic.name
        (10, 'bald')
    """

    def __init__(
        self,
        heuristic: Heuristic | str,
        query_size: int,
        iterations: int = 20,
        *,
        every_n_epochs: int = 1,
        convergence: Convergence | None = None,
        reset_weights: bool = False,
        label_budget: int | None = None,
        posterior: Posterior | None = None,
        evaluations: Sequence[StepEvaluation] = (),
        seed: int | None = None,
        stopping: Sequence[StoppingCriterion] = (),
        annotator: QueryFiles | None = None,
    ) -> None:
        self.heuristic = heuristic = check_heuristic(heuristic, iterations)
        self.query_size = check_positive_int("query_size", query_size)
        self.iterations = check_positive_int("iterations", iterations)
        self.every_n_epochs = check_positive_int("every_n_epochs", every_n_epochs)
        self.convergence = check_convergence(convergence, every_n_epochs)
        self.reset_weights = check_bool("reset_weights", reset_weights)
        self.label_budget = None if label_budget is None else check_positive_int("label_budget", label_budget)
        self.posterior = check_posterior(MCDropout() if posterior is None else posterior, heuristic)
        self.evaluations = check_items("evaluations", evaluations, StepEvaluation)
        self.seed = check_seed("seed", seed)
        self.stopping = check_stopping(stopping, heuristic)
        if annotator is not None and not isinstance(annotator, QueryFiles):
            raise TypeError(f"Expected argument `annotator` to be a `QueryFiles`, but got {annotator!r}.")
        self.annotator = annotator
        self.pool_pass = PoolPass(heuristic)
        self.history: list[dict[str, float]] = []
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self.steps_done = 0
        # None until the first step: `ddp_spawn` cannot send empty tensors to its processes.
        self.last_selection: Tensor | None = None
        self.last_shard: Tensor | None = None
        self._run_seed = 0
        self._last_step_epoch = -1
        self._trained_epoch = -1
        self._initial_weights: dict[str, Tensor] | None = None
        # Where a run resumed before its pending step catches up: None, "fit_start" or "train_start".
        self._catch_up: str | None = None
        self._recreate_optimizers_on_train_start = False
        self._resume_stage: str | None = None
        self._val_metrics: dict[str, float] | None = None
        self._fitted = False
        if self.convergence is not None:
            self.convergence.take_best()
        for criterion in self.stopping:
            criterion.load_state_dict({})  # an empty state is a fresh criterion

    @property
    @override
    def state_key(self) -> str:
        # Identity only: a resumed run may change `iterations` or the heuristic's options and keep its state.
        return type(self).__qualname__

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self._fitted and trainer.ckpt_path is None:
            # A second `fit` with the same callback and no checkpoint is a new run: nothing of the first carries over.
            self.history = []
            self._reset_run_state()
        datamodule = require_datamodule(trainer)
        check_fit(trainer, pl_module, self)
        configure_dataloader_reload(trainer, self.every_n_epochs)
        warn_about_schedule(trainer, self)
        seed = datamodule.seed if self.seed is None else self.seed
        self._run_seed = int(trainer.strategy.broadcast(seed, src=0))
        # Every rank must start from rank zero's labelled set, whatever each process did before fit.
        datamodule.load_state_dict(trainer.strategy.broadcast(datamodule.state_dict(), src=0))

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        datamodule = require_datamodule(trainer)
        check_outputs(pl_module, datamodule, self, self._run_seed)
        if self.heuristic.needs_predictions and isinstance(self.posterior, MCDropout):
            path = describe_split(pl_module, dropconnect=self.posterior.dropconnect is not None)
            rank_zero_info(f"Active learning MC pass for {type(pl_module).__name__}: {path}.")
        if self.reset_weights and self._initial_weights is None:
            self._initial_weights = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        if self._catch_up == "fit_start":
            # Written between this epoch's training and its step: Lightning resumes at the next epoch, so run the step
            # before its loader is built.
            self._catch_up = None
            self._run_pending_step(trainer, pl_module)
            self._recreate_optimizers_on_train_start = self.reset_weights

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._catch_up == "train_start":
            # Written at the epoch's last batch end: Lightning restarts at the next epoch without this epoch's
            # validation and end, and rebuilds the train loader after this hook; both must come first.
            self._catch_up = None
            replay_skipped_validation(trainer, self._trained_epoch)
            if self._is_due(self._trained_epoch):
                self._run_pending_step(trainer, pl_module)
                # Against the new, larger loader Lightning would not see the old epoch as ended: count the last batch
                # as completed, as it does itself when the loader size is unchanged.
                trainer.fit_loop.epoch_loop.batch_progress.increment_completed()
        if self._recreate_optimizers_on_train_start:
            # The optimizer state was restored from the checkpoint after `on_fit_start`; reset it as the step did.
            self._recreate_optimizers_on_train_start = False
            trainer.strategy.setup_optimizers(trainer)

    def _run_pending_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rank_zero_info(f"Resuming: running the active learning step of epoch {self._trained_epoch} first.")
        self._step_or_nothing(trainer, pl_module, self._trained_epoch)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fitted = True
        datamodule = require_datamodule(trainer)
        hand_back_labels(trainer, datamodule)
        warn_if_budget_left(trainer, datamodule, self.label_budget, self.steps_done)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx + 1 >= trainer.num_training_batches:
            self._trained_epoch = trainer.current_epoch
        self.posterior.on_train_batch_end(trainer, pl_module)

    def _is_due(self, epoch: int) -> bool:
        if epoch < 0 or self._last_step_epoch >= epoch:
            return False
        if self.convergence is None:
            return (epoch + 1) % self.every_n_epochs == 0
        return self.convergence.due(epoch - self._last_step_epoch)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        # Kept (and checkpointed): a run resumed before the step has no validation metrics of its own to log.
        self._val_metrics = val_figures(trainer.callback_metrics)
        if self.convergence is None:
            return
        value = monitored_value(trainer, self.convergence.monitor)
        self.convergence.observe(value, pl_module.state_dict(), val_figures(trainer.callback_metrics))

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._is_due(trainer.current_epoch):
            self._step_or_nothing(trainer, pl_module, trainer.current_epoch)

    def _step_or_nothing(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        # Anything interrupting the step puts back what it touched (the posterior stays fitted: a refit is the same).
        parts: list[Any] = [require_datamodule(trainer), *self.stopping]
        parts += [part for part in (self.convergence, self.annotator) if part is not None]
        if self.reset_weights:
            parts.append(pl_module)  # the reset happens before the query is handed over, which may still fail
        bookkeeping = self.steps_done, self.last_selection, self.last_shard, self._last_step_epoch, len(self.history)
        try:
            with undone_if_interrupted(*parts):
                self._active_learning_step(trainer, pl_module, epoch)
        except BaseException:
            self.steps_done, self.last_selection, self.last_shard, self._last_step_epoch, logged = bookkeeping
            del self.history[logged:]
            raise

    def _active_learning_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        datamodule = require_datamodule(trainer)
        epochs_trained = float(epoch - self._last_step_epoch)
        self._last_step_epoch = epoch
        val_metrics = self._val_metrics
        if self.convergence is not None:
            best_weights, best_val_metrics = self.convergence.take_best()
            if best_weights is not None:
                pl_module.load_state_dict(best_weights)
                val_metrics = best_val_metrics
        # The figures of the model that scores the pool (scoring does not change it).
        extra = {"epochs_trained": epochs_trained}
        context = StepContext(
            trainer, pl_module, datamodule, self.iterations, self.posterior, self._run_seed, self.steps_done, extra
        )
        if self.heuristic.needs_predictions or any(e.needs_mc for e in self.evaluations):
            self.posterior.fit(context)
        for evaluation in self.evaluations:
            extra.update(evaluation(context))
        plan = plan_query(datamodule, self.query_size, self.label_budget)
        context = context._replace(
            validation=val_metrics,
            candidates=plan.candidates,
            query_size=plan.query_size,
            progress=progress_refresh_rate(trainer),
            output=self.heuristic.output,
        )
        reasons = [plan.stop_reason] if plan.stop_reason is not None else stop_reasons_at(self.stopping, context)
        if self._stop(context, reasons):
            return
        candidates = plan.candidates
        selection = self.pool_pass.run(context)
        self.last_shard = selection.shard
        if self._stop(context, stop_reasons_at(self.stopping, context, selection)):
            return
        probabilities = selection.probabilities
        if candidates.numel() != datamodule.num_pool:
            probabilities = None  # drawn from a subset: not the whole pool's, which unbiased risk estimates need
        self._log(log_selection(context, selection))
        if self.annotator is None:
            datamodule.acquire(selection.indices, probabilities=probabilities)
        self.steps_done += 1
        self.last_selection = selection.indices.clone()
        if self.reset_weights and self._initial_weights is not None:
            pl_module.load_state_dict(self._initial_weights)
            trainer.strategy.setup_optimizers(trainer)
        if self.annotator is not None:
            # The query goes to people: record and write it, checkpoint (after the reset, as the step left the
            # model), and end this fit; the next `fit(ckpt_path=...)` trains on their answers.
            self.annotator.hand_over(context, selection.indices, selection.scores)

    def _stop(self, context: StepContext, reasons: list[str]) -> bool:
        """End training if there are ``reasons``, after logging the last point of the curve; returns whether it did."""
        if not reasons:
            return False
        trainer, datamodule = context.trainer, context.datamodule
        self._log(log_selection(context, None))
        rank_zero_info(f"Active learning stops: {'; '.join(reasons)} ({datamodule.num_labelled} labelled).")
        trainer.should_stop = True
        return True

    def _log(self, metrics: dict[str, float] | None) -> None:
        if metrics is not None:
            self.history.append(metrics)


def hand_back_labels(trainer: pl.Trainer, datamodule: ActiveDataModule) -> Path | None:
    """After a spawned fit, write the datamodule's final state (Lightning sends back only the weights); its path."""
    launcher = trainer.strategy.launcher
    if launcher is None or getattr(launcher, "_start_method", None) not in ("spawn", "forkserver"):
        return None
    path = Path(trainer.default_root_dir) / FINAL_STATE_FILE
    if trainer.is_global_zero:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(datamodule.state_dict(), path)
        rank_zero_warn(
            f"The fit ran in spawned processes (`{type(trainer.strategy).__name__}` with start method"
            f" {launcher._start_method!r}): the `ActiveDataModule` of your main process still holds the labelled set"  # type: ignore[attr-defined]
            f" from before `fit`. Its final state is in {str(path)!r}: load it with"
            f" `datamodule.load_state_dict(torch.load({str(path)!r}, weights_only=True))`, or use `strategy='ddp'`."
        )
    return path
