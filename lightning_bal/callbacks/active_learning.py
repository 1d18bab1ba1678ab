"""ActiveLearningCallback: turn any Lightning training run into an active learning run, on one device or many."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal, NamedTuple

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import Dataset
from torchmetrics.functional.classification import multiclass_calibration_error
from typing_extensions import override

from lightning_bal.callbacks.monitoring import log_step, val_figures
from lightning_bal.data import ActiveDataModule
from lightning_bal.functional import weighted_risk
from lightning_bal.heuristics import Heuristic, get_heuristic
from lightning_bal.mc import check_stochastic_layers, mc_batches
from lightning_bal.mc.modes import switch_modes
from lightning_bal.mc.sampling import call_module
from lightning_bal.utilities.checks import check_positive_int
from lightning_bal.utilities.distributed import gather_uneven, shard

__all__ = ["ActiveLearningCallback"]

# Distinct streams for the pool's MC masks, the heuristic's own sampling and the validation and test MC passes, all
# derived from (seed, step) so that every rank, and a resumed run, draws the same.
_MC_SALT, _SELECT_SALT, _CALIBRATION_SALT, _TARGET_SALT = 0x5EED_0001, 0x5EED_0002, 0x5EED_0003, 0x5EED_0004
_TEST_SALT = 0x5EED_0005


def _derive_seed(seed: int, step: int, salt: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + salt) % (2**62)


class _PoolScores(NamedTuple):
    """What the pool pass leaves on rank zero: scores of every scored item, and what a batch-aware heuristic needs."""

    indices: Tensor  # dataset indices, ascending
    scores: Tensor
    candidate_indices: Tensor  # batch-aware heuristics only (else empty): the top-M items by score ...
    candidate_log_probs: Tensor  # ... and their log-probabilities [M, K, C]


class ActiveLearningCallback(Callback):
    r"""Run an active learning step (score the pool, pick ``query_size`` samples, label them) every few epochs.

    At the end of every ``every_n_epochs``-th training epoch (after its validation, so the logged metrics belong to the
    labelled-set size they were trained on), or, with ``monitor``, once the model has converged on the labelled set
    (the monitored validation metric has not improved for ``patience`` validations), the callback draws
    ``iterations`` MC-Dropout samples of the model's predictions over the pool D_U of the trainer's
    :class:`~lightning_bal.ActiveDataModule`, scores them with the heuristic U, labels the selection and makes the next
    epoch train on the grown labelled set D_L.

    Under DDP every rank scores its own disjoint shard of the pool; scores travel with their dataset indices, the
    selection is made once on rank zero and broadcast, so every rank labels exactly the same samples.

    Each step's figures (labelled and pool sizes, epochs trained since the last step, the user's ``val*`` metrics,
    score statistics, pool-pass time) go to
    the trainer's loggers against the number of labelled samples, and to :attr:`history` on rank zero; the step that
    finds the budget spent or the pool empty logs the last labelled set's figures and stops training.

    Args:
        heuristic: a :class:`~lightning_bal.heuristics.Heuristic` or a registry name such as ``"bald"``.
        query_size: samples labelled per active learning step.
        iterations: MC samples K drawn per pool item.
        every_n_epochs: training epochs per active learning step (without ``monitor``).
        monitor: train to convergence at every step instead: a validation metric the model logs (e.g. ``"val_loss"``);
            the step runs at the end of the first epoch after which it has not improved for ``patience``
            validations, or after ``max_epochs_per_step`` epochs. Like Lightning's ``EarlyStopping``, but it ends
            the step, not the fit (the protocol of Gal et al. 2017 and Kirsch et al. 2019).
        mode: ``"min"`` or ``"max"``: whether a lower or a higher ``monitor`` value is an improvement.
        patience: validations without improvement after which the step runs.
        min_delta: the smallest change of ``monitor`` that counts as an improvement.
        max_epochs_per_step: with ``monitor``, run the step after this many epochs even without convergence.
        restore_best_weights: with ``monitor``, score the pool (and report the step's figures) with the weights of
            the best validation of the step, as ``ModelCheckpoint``'s best model would. The copy is kept on the CPU
            and in the callback's checkpoint (one more copy of the weights).
        reset_weights: after each step, reset the model to its weights at fit start and re-create the optimizers
            (the protocol of Gal et al. 2017). The initial weights are kept in the checkpoint.
        label_budget: stop once D_L holds this many samples (the last labelled set is still trained and validated).
        max_pool_size: score at most this many random pool samples per step (sets the datamodule's option).
        seed: seed of the MC masks and of stochastic selection; ``None`` draws one on rank zero and broadcasts it.
        mc_kwargs: extra keyword arguments for :func:`lightning_bal.mc.mc_batches` (e.g. ``consistent_masks``).
        log_risk: at each step, log the model's mean negative log-likelihood over D_L (``active/train_nll_mean``)
            and, when every labelled sample was drawn with a recorded probability (random initial labels and a
            stochastic heuristic), the LURE estimate that corrects the bias of active selection
            (``active/train_nll_lure``, Farquhar et al., 2021). Rank zero, one deterministic pass over D_L.
        num_targets: for target-aware heuristics (EPIG), how many random samples of ``target_dataset`` (default: of
            the pool) stand for the input distribution of interest; their MC predictions are computed each step with
            the same masks as the pool's.
        log_test: at each step, log the accuracy and mean negative log-likelihood of the deterministic model on the
            datamodule's ``test_dataset`` (``active/test_acc``, ``active/test_nll``): the active learning curve on
            held-out data, with the validation set free for ``monitor``. One deterministic pass over it per step.
        target_dataset: for target-aware heuristics (EPIG), the inputs whose predictions matter (read with the
            datamodule's ``input_fn``); ``num_targets`` of them are drawn at random each step. Default: the pool.
        log_calibration: at each step, also run the MC pass over the validation set and log the expected calibration
            error (torchmetrics, 15 bins) and the accuracy of the MC-averaged predictions (``active/val_mc_ece``,
            ``active/val_mc_acc``). Costs one more MC pass, over the validation set, per step.
        log_test_mc: at each step, log the accuracy and mean negative log-likelihood of the MC-averaged predictions
            (the mean of the ``iterations`` MC probabilities, as Kirsch et al. 2019 report test accuracy) on the
            datamodule's ``test_dataset`` (``active/test_mc_acc``, ``active/test_mc_nll``). One MC pass over it per
            step.

    Example:
        >>> import lightning.pytorch as pl
        >>> from lightning_bal.heuristics import BALD
        >>> callback = ActiveLearningCallback(BALD(), query_size=10, iterations=20)
        >>> trainer = pl.Trainer(max_epochs=5, callbacks=[callback], logger=False, enable_progress_bar=False)
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
        monitor: str | None = None,
        mode: Literal["min", "max"] = "min",
        patience: int = 3,
        min_delta: float = 0.0,
        max_epochs_per_step: int | None = None,
        restore_best_weights: bool = True,
        reset_weights: bool = False,
        label_budget: int | None = None,
        max_pool_size: int | None = None,
        seed: int | None = None,
        mc_kwargs: Mapping[str, Any] | None = None,
        log_calibration: bool = False,
        num_targets: int = 100,
        target_dataset: Dataset | None = None,
        log_risk: bool = False,
        log_test: bool = False,
        log_test_mc: bool = False,
    ) -> None:
        if isinstance(heuristic, str):
            heuristic = get_heuristic(heuristic)
        if not isinstance(heuristic, Heuristic):
            raise TypeError(
                "Expected argument `heuristic` to be a `lightning_bal.heuristics.Heuristic` or a registry name,"
                f" but got {type(heuristic).__name__}."
            )
        self.heuristic = heuristic
        self.query_size = check_positive_int("query_size", query_size)
        self.iterations = check_positive_int("iterations", iterations)
        if heuristic.needs_mc_samples and iterations < 2:
            raise ValueError(
                f"Expected argument `iterations` to be at least 2 for {type(heuristic).__name__}, which needs MC"
                f" samples, but got {iterations}."
            )
        self.every_n_epochs = check_positive_int("every_n_epochs", every_n_epochs)
        if monitor is not None and every_n_epochs != 1:
            raise ValueError(
                f"Expected either `every_n_epochs` or `monitor`, but got `every_n_epochs={every_n_epochs}` and"
                f" `monitor={monitor!r}`: with `monitor` the step runs when the model has converged."
            )
        if mode not in ("min", "max"):
            raise ValueError(f"Expected argument `mode` to be 'min' or 'max', but got {mode!r}.")
        self.monitor = monitor
        self.mode = mode
        self.patience = check_positive_int("patience", patience)
        if not min_delta >= 0:
            raise ValueError(f"Expected argument `min_delta` to be non-negative, but got {min_delta}.")
        self.min_delta = float(min_delta)
        if max_epochs_per_step is not None and monitor is None:
            raise ValueError(
                "`max_epochs_per_step` caps the steps that `monitor` ends; without `monitor` use `every_n_epochs`."
            )
        self.max_epochs_per_step = (
            None if max_epochs_per_step is None else check_positive_int("max_epochs_per_step", max_epochs_per_step)
        )
        self.restore_best_weights = bool(restore_best_weights)
        self.reset_weights = bool(reset_weights)
        self.label_budget = None if label_budget is None else check_positive_int("label_budget", label_budget)
        self.max_pool_size = None if max_pool_size is None else check_positive_int("max_pool_size", max_pool_size)
        self.mc_kwargs = dict(mc_kwargs or {})
        self.log_calibration = bool(log_calibration)
        self.num_targets = check_positive_int("num_targets", num_targets)
        needs_targets = bool(getattr(heuristic, "needs_targets", False))
        if target_dataset is not None and not needs_targets:
            raise ValueError(
                f"`target_dataset` is used by target-aware heuristics (EPIG) only, but got {type(heuristic).__name__}."
            )
        self.target_dataset = target_dataset
        self.log_risk = bool(log_risk)
        self.log_test = bool(log_test)
        self.log_test_mc = bool(log_test_mc)
        needs_fixed_models = heuristic.batch_aware or needs_targets
        if needs_fixed_models and self.mc_kwargs.get("consistent_masks") is False:
            raise ValueError(
                f"{type(heuristic).__name__} needs the K MC samples to be K fixed models (joint predictions across"
                " items), but got `mc_kwargs={'consistent_masks': False}`."
            )
        self.seed = seed
        self.steps_done = 0
        # None until the first step: `ddp_spawn` cannot send empty tensors to its processes.
        self.last_selection: Tensor | None = None
        self.last_shard: Tensor | None = None
        self.history: list[dict[str, float]] = []
        self._last_step_epoch = -1
        self._trained_epoch = -1
        self._initial_weights: dict[str, Tensor] | None = None
        self._catch_up_on_fit_start = False
        self._recreate_optimizers_on_train_start = False
        # Convergence within the current step (with `monitor`): best value, validations since, and its model.
        self._best_score: float | None = None
        self._wait = 0
        self._best_weights: dict[str, Tensor] | None = None
        self._best_val_metrics: dict[str, float] | None = None

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            heuristic=self.heuristic.name, query_size=self.query_size, iterations=self.iterations
        )

    # ------------------------------------------------------------------ setup and checks
    @staticmethod
    def _datamodule(trainer: pl.Trainer) -> ActiveDataModule:
        datamodule = getattr(trainer, "datamodule", None)
        if not isinstance(datamodule, ActiveDataModule):
            raise TypeError(
                "Expected `trainer.fit(..., datamodule=...)` to be given a `lightning_bal.ActiveDataModule`,"
                f" but got {type(datamodule).__name__}."
            )
        return datamodule

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = self._datamodule(trainer)
        if (self.heuristic.needs_predictions or self.log_calibration or self.log_test_mc) and not self.mc_kwargs.get(
            "dropconnect"
        ):
            check_stochastic_layers(pl_module)
        if self.log_calibration and datamodule.val_dataset is None:
            raise ValueError("`log_calibration=True` needs a `val_dataset` in the `ActiveDataModule`, but it has none.")
        if self.monitor is not None and datamodule.val_dataset is None:
            raise ValueError(
                f"`monitor={self.monitor!r}` needs a `val_dataset` in the `ActiveDataModule`, but it has none."
            )
        for name in ("log_test", "log_test_mc"):
            if getattr(self, name) and datamodule.test_dataset is None:
                raise ValueError(f"`{name}=True` needs a `test_dataset` in the `ActiveDataModule`, but it has none.")
        self._configure_dataloader_reload(trainer)
        if self.max_pool_size is not None:
            datamodule.max_pool_size = self.max_pool_size
        if self.seed is None:
            self.seed = int(trainer.strategy.broadcast(int(torch.randint(0, 2**62, (1,)).item()), src=0))
        # Every rank must start from rank zero's labelled set, whatever each process did before fit.
        datamodule.load_state_dict(trainer.strategy.broadcast(datamodule.state_dict(), src=0))

    def _configure_dataloader_reload(self, trainer: pl.Trainer) -> None:
        # Set by the Trainer at init but not declared on the class.
        reload = trainer.reload_dataloaders_every_n_epochs  # type: ignore[attr-defined]
        if reload == 0:
            trainer.reload_dataloaders_every_n_epochs = 1  # type: ignore[attr-defined]
        elif self.every_n_epochs % reload:
            raise ValueError(
                f"`Trainer(reload_dataloaders_every_n_epochs={reload})` would keep training on a stale labelled set:"
                f" the active learning step runs every {self.every_n_epochs} epochs. Use a divisor of"
                f" `every_n_epochs` or leave it at 0 (the callback then reloads the train loader every epoch)."
            )

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.reset_weights and self._initial_weights is None:
            self._initial_weights = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        if self._catch_up_on_fit_start:
            # The checkpoint was written after this epoch's training but before its active learning step (e.g. by a
            # ModelCheckpoint at validation end): Lightning resumes at the next epoch, so run the step now.
            self._catch_up_on_fit_start = False
            rank_zero_info(f"Resuming: running the active learning step of epoch {self._trained_epoch} first.")
            self._active_learning_step(trainer, pl_module, self._trained_epoch)
            self._recreate_optimizers_on_train_start = self.reset_weights

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._recreate_optimizers_on_train_start:
            # The optimizer state was restored from the checkpoint after `on_fit_start`; reset it as the step did.
            self._recreate_optimizers_on_train_start = False
            trainer.strategy.setup_optimizers(trainer)

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx + 1 >= trainer.num_training_batches:
            self._trained_epoch = trainer.current_epoch

    def _is_due(self, epoch: int) -> bool:
        if epoch < 0 or self._last_step_epoch >= epoch:
            return False
        if self.monitor is None:
            return (epoch + 1) % self.every_n_epochs == 0
        capped = self.max_epochs_per_step is not None and epoch - self._last_step_epoch >= self.max_epochs_per_step
        return self._wait >= self.patience or capped

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.monitor is None or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        value = trainer.callback_metrics.get(self.monitor)
        # Rank zero's value decides, so every rank runs the step at the same epoch even if the metric is not synced,
        # and every rank raises together if rank zero has none.
        broadcast = trainer.strategy.broadcast(None if value is None else float(value), src=0)
        if broadcast is None:
            available = ", ".join(sorted(trainer.callback_metrics)) or "none"
            raise RuntimeError(
                f"`ActiveLearningCallback(monitor={self.monitor!r})` found no such metric after validation; the"
                f" logged metrics are: {available}. Log it with `self.log` in `validation_step`."
            )
        score = float(broadcast)
        if score != score:
            raise ValueError(f"The monitored metric `{self.monitor}` is NaN: the model diverged.")
        best = self._best_score
        if best is None or (score < best - self.min_delta if self.mode == "min" else score > best + self.min_delta):
            self._best_score, self._wait = score, 0
            if self.restore_best_weights:
                self._best_val_metrics = val_figures(trainer.callback_metrics)
                # On the CPU: the copy must not cost accelerator memory, and is only read back once per step.
                self._best_weights = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        else:
            self._wait += 1

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._is_due(trainer.current_epoch):
            self._active_learning_step(trainer, pl_module, trainer.current_epoch)

    # ------------------------------------------------------------------ the active learning step
    def _active_learning_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        datamodule = self._datamodule(trainer)
        epochs_trained = float(epoch - self._last_step_epoch)
        self._last_step_epoch = epoch
        if self._best_weights is not None:
            pl_module.load_state_dict(self._best_weights)
        val_metrics = self._best_val_metrics
        self._best_score, self._wait, self._best_weights, self._best_val_metrics = None, 0, None, None
        # The figures of the model that scores the pool (scoring does not change it).
        extra = {"epochs_trained": epochs_trained, **self._evaluations(trainer, pl_module, datamodule)}
        budget_left = self.label_budget - datamodule.num_labelled if self.label_budget is not None else None
        candidates = datamodule.scoring_indices()
        if (budget_left is not None and budget_left <= 0) or candidates.numel() == 0:
            reason = "the label budget is spent" if candidates.numel() else "the pool is exhausted"
            # The last labelled set has been trained and validated: its point closes the active learning curve.
            self._log(trainer, datamodule, 0.0, None, None, extra, val_metrics)
            if trainer.strategy.reduce_boolean_decision(True, all=False):
                rank_zero_info(f"Active learning stops: {reason} ({datamodule.num_labelled} labelled).")
                trainer.should_stop = True
            return
        query_size = min(self.query_size, candidates.numel(), self.query_size if budget_left is None else budget_left)
        if candidates.numel() < self.query_size:
            rank_zero_warn(
                f"The pool to score holds {candidates.numel()} samples, fewer than `query_size={self.query_size}`:"
                " labelling all of them; training stops at the next step."
            )

        start = time.perf_counter()
        pool = self._score_pool(trainer, pl_module, datamodule, candidates)
        pool_seconds = time.perf_counter() - start

        selected, selected_scores, probabilities = torch.empty(0, dtype=torch.long), torch.empty(0), None
        if trainer.is_global_zero:
            selected, selected_scores, probabilities = self._select(pool, query_size)
        selected, probabilities = trainer.strategy.broadcast((selected, probabilities), src=0)
        if candidates.numel() != datamodule.num_pool:
            # Drawn from a subset of the pool: these are not the probabilities over the whole pool that unbiased
            # risk estimates need, so none are recorded.
            probabilities = None

        if self.heuristic.needs_predictions:
            self._log(trainer, datamodule, pool_seconds, pool.scores, selected_scores, extra, val_metrics)
        else:
            self._log(trainer, datamodule, pool_seconds, None, None, extra, val_metrics)
        datamodule.acquire(selected, probabilities=probabilities)
        self.steps_done += 1
        self.last_selection = selected.clone()
        if self.reset_weights and self._initial_weights is not None:
            pl_module.load_state_dict(self._initial_weights)
            trainer.strategy.setup_optimizers(trainer)

    def _log(
        self,
        trainer: pl.Trainer,
        datamodule: ActiveDataModule,
        pool_seconds: float,
        pool_scores: Tensor | None,
        selected_scores: Tensor | None,
        extra: dict[str, float],
        val_metrics: dict[str, float] | None,
    ) -> None:
        if not trainer.is_global_zero:
            return  # logging is rank zero's; the class histogram below reads D_L's targets
        metrics = log_step(
            trainer,
            num_labelled=datamodule.num_labelled,
            num_pool=datamodule.num_pool,
            step=datamodule.step,
            pool_seconds=pool_seconds,
            pool_scores=pool_scores,
            selected_scores=selected_scores,
            labelled_classes=datamodule.labelled_targets(),
            extra=extra,
            val_metrics=val_metrics,
        )
        if metrics is not None:
            self.history.append(metrics)

    def _evaluations(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, datamodule: ActiveDataModule
    ) -> dict[str, float]:
        """The optional figures of the model the step scored with: calibration, risk over D_L, test metrics."""
        return {
            **self._calibration(trainer, pl_module, datamodule),
            **self._risk(trainer, pl_module, datamodule),
            **self._test(trainer, pl_module, datamodule),
            **self._test_mc(trainer, pl_module, datamodule),
        }

    def _test(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, datamodule: ActiveDataModule
    ) -> dict[str, float]:
        """Accuracy and mean NLL of the deterministic model on the test set (sharded like the pool)."""
        if not self.log_test:
            return {}
        test_dataset = datamodule.eval_dataset("test")
        local = shard(torch.arange(len(test_dataset)), trainer.global_rank, trainer.world_size)  # type: ignore[arg-type]
        local_indices, local_log_probs = _deterministic_log_probs(
            pl_module, datamodule.inputs_dataloader(test_dataset, local)
        )
        device = pl_module.device
        log_probs = gather_uneven(trainer.strategy, local_log_probs.to(device), trainer.world_size).cpu()
        indices = gather_uneven(trainer.strategy, local_indices.to(device), trainer.world_size).cpu()
        accuracy, nll = _accuracy_and_nll(log_probs, datamodule.eval_targets("test")[indices])
        return {"test_acc": accuracy, "test_nll": nll}

    def _calibration(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, datamodule: ActiveDataModule
    ) -> dict[str, float]:
        """ECE and accuracy of the MC-averaged predictions on the validation set (sharded like the pool)."""
        if not self.log_calibration:
            return {}
        log_probs, targets = self._mc_mean_log_probs(trainer, pl_module, datamodule, "val", _CALIBRATION_SALT)
        ece = multiclass_calibration_error(log_probs.exp(), targets, num_classes=log_probs.shape[-1], n_bins=15)
        accuracy = (log_probs.argmax(-1) == targets).float().mean()
        return {"val_mc_ece": float(ece), "val_mc_acc": float(accuracy)}

    def _test_mc(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, datamodule: ActiveDataModule
    ) -> dict[str, float]:
        """Accuracy and mean NLL of the MC-averaged predictions on the test set (sharded like the pool)."""
        if not self.log_test_mc:
            return {}
        log_probs, targets = self._mc_mean_log_probs(trainer, pl_module, datamodule, "test", _TEST_SALT)
        accuracy, nll = _accuracy_and_nll(log_probs, targets)
        return {"test_mc_acc": accuracy, "test_mc_nll": nll}

    def _mc_mean_log_probs(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        datamodule: ActiveDataModule,
        split: Literal["val", "test"],
        salt: int,
    ) -> tuple[Tensor, Tensor]:
        """``(log of the mean of the K MC probabilities, targets)`` of a split, gathered from every rank."""
        world_size = trainer.world_size
        dataset = datamodule.eval_dataset(split)
        local = shard(torch.arange(len(dataset)), trainer.global_rank, world_size)  # type: ignore[arg-type]
        seed = _derive_seed(int(self.seed or 0), self.steps_done, salt)
        indices, mean_log_probs = [], []
        for batch_indices, log_probs in mc_batches(
            pl_module, datamodule.inputs_dataloader(dataset, local), self.iterations, seed=seed, **self.mc_kwargs
        ):
            indices.append(batch_indices)
            # In log space: a mean of probabilities can underflow to 0 where the model is confidently wrong.
            mean_log_probs.append(torch.logsumexp(log_probs, 1) - math.log(log_probs.shape[1]))
        device = pl_module.device
        num_classes = mean_log_probs[0].shape[-1] if mean_log_probs else 0
        local_log_probs = torch.cat(mean_log_probs) if mean_log_probs else torch.zeros(0, num_classes, device=device)
        local_indices = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long, device=device)
        all_log_probs = gather_uneven(trainer.strategy, local_log_probs.to(device), world_size).cpu()
        all_indices = gather_uneven(trainer.strategy, local_indices.to(device), world_size).cpu()
        return all_log_probs, datamodule.eval_targets(split)[all_indices]

    def _risk(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, datamodule: ActiveDataModule
    ) -> dict[str, float]:
        """Plain and LURE-weighted mean NLL of the deterministic model over D_L (rank zero only)."""
        targets = datamodule.labelled_targets()
        if not (self.log_risk and trainer.is_global_zero) or targets is None:
            return {}
        labelled = datamodule.labelled_indices
        # The pool view reads D_L without augmentation, in the order of `labelled`, which `targets` follows.
        _, log_probs = _deterministic_log_probs(pl_module, datamodule.pool_dataloader(labelled))
        nll = -log_probs.gather(1, targets[:, None]).squeeze(1).double()
        metrics = {"train_nll_mean": float(nll.mean())}
        if not datamodule.acquisition_probability[labelled].isnan().any():
            metrics["train_nll_lure"] = float(weighted_risk(nll, datamodule.risk_weights("lure")[labelled]))
        return metrics

    def _score_pool(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, datamodule: ActiveDataModule, candidates: Tensor
    ) -> _PoolScores:
        if not self.heuristic.needs_predictions:
            empty = torch.empty(0)
            return _PoolScores(candidates, torch.zeros(candidates.numel()), empty.long(), empty)
        world_size = trainer.world_size
        local = shard(candidates, trainer.global_rank, world_size)
        self.last_shard = local
        num_candidates = self.heuristic.num_candidates(self.query_size, candidates.numel())

        # Preallocated: only [N] scores are kept however large the pool (and no heap growth from concatenation).
        local_scores = torch.empty(local.numel())
        local_indices = torch.empty(local.numel(), dtype=torch.long)
        filled = 0
        top_scores = torch.empty(0)
        top_indices = torch.empty(0, dtype=torch.long)
        top_log_probs = torch.empty(0)
        seed = _derive_seed(int(self.seed or 0), self.steps_done, _MC_SALT)
        if getattr(self.heuristic, "needs_targets", False):
            self._set_targets(trainer, pl_module, datamodule, candidates, seed)
        for batch_indices, log_probs in self._progress(trainer, datamodule, local, seed, pl_module):
            batch_scores = self.heuristic.score(log_probs)
            local_scores[filled : filled + batch_scores.numel()] = batch_scores
            local_indices[filled : filled + batch_scores.numel()] = batch_indices
            filled += batch_scores.numel()
            if num_candidates:
                top_scores, top_indices, top_log_probs = self._keep_top(
                    num_candidates, top_scores, top_indices, top_log_probs, batch_scores, batch_indices, log_probs
                )

        device = pl_module.device
        all_scores = gather_uneven(trainer.strategy, local_scores.to(device), world_size).cpu()
        all_indices = gather_uneven(trainer.strategy, local_indices.to(device), world_size).cpu()
        # Sorting by dataset index makes the selection independent of how the pool was sharded.
        order = torch.argsort(all_indices)
        candidate_indices, candidate_log_probs = torch.empty(0, dtype=torch.long), torch.empty(0)
        if num_candidates:
            cand_scores = gather_uneven(trainer.strategy, top_scores.to(device), world_size).cpu()
            cand_indices = gather_uneven(trainer.strategy, top_indices.to(device), world_size).cpu()
            cand_log_probs = gather_uneven(trainer.strategy, top_log_probs.to(device), world_size).cpu()
            cand_order = torch.argsort(cand_indices)
            cand_scores, cand_indices, cand_log_probs = (
                cand_scores[cand_order],
                cand_indices[cand_order],
                cand_log_probs[cand_order],
            )
            keep = torch.topk(
                cand_scores, min(num_candidates, cand_scores.numel()), largest=self.heuristic.higher_is_better
            )
            kept = keep.indices.sort().values
            candidate_indices, candidate_log_probs = cand_indices[kept], cand_log_probs[kept]
        return _PoolScores(all_indices[order], all_scores[order], candidate_indices, candidate_log_probs)

    def _set_targets(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        datamodule: ActiveDataModule,
        candidates: Tensor,
        seed: int,
    ) -> None:
        """Give a target-aware heuristic (EPIG) MC predictions on random targets (of ``target_dataset`` or the pool).

        The pool pass uses the same ``seed``, hence the same K sub-networks: the joint predictive of a pool item
        and a target needs sample k to be one model for both.
        """
        generator = torch.Generator().manual_seed(_derive_seed(int(self.seed or 0), self.steps_done, _TARGET_SALT))
        source = candidates if self.target_dataset is None else torch.arange(len(self.target_dataset))  # type: ignore[arg-type]
        chosen = source[torch.randperm(source.numel(), generator=generator)[: self.num_targets]]
        local = shard(chosen.sort().values, trainer.global_rank, trainer.world_size)
        loader = (
            datamodule.pool_dataloader(local)
            if self.target_dataset is None
            else datamodule.inputs_dataloader(self.target_dataset, local)
        )
        indices, log_probs = [], []
        batches = mc_batches(pl_module, loader, self.iterations, seed=seed, **self.mc_kwargs)
        for batch_indices, batch_log_probs in batches:
            indices.append(batch_indices)
            log_probs.append(batch_log_probs)
        device = pl_module.device
        # A rank with no targets (fewer targets than ranks) still joins the gathers, with empty tensors.
        local_log_probs = torch.cat(log_probs) if log_probs else torch.zeros(0)
        local_indices = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.long)
        gathered = gather_uneven(trainer.strategy, local_log_probs.to(device), trainer.world_size)
        order = torch.argsort(gather_uneven(trainer.strategy, local_indices.to(device), trainer.world_size))
        self.heuristic.set_targets(gathered[order])  # type: ignore[attr-defined]

    def _keep_top(
        self,
        k: int,
        top_scores: Tensor,
        top_indices: Tensor,
        top_log_probs: Tensor,
        batch_scores: Tensor,
        batch_indices: Tensor,
        log_probs: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Running top-``k`` of this rank's shard by score, with the log-probs a batch-aware heuristic needs."""
        scores = torch.cat([top_scores, batch_scores.float().cpu()])
        indices = torch.cat([top_indices, batch_indices.cpu()])
        log_probs = log_probs.cpu() if top_log_probs.numel() == 0 else torch.cat([top_log_probs, log_probs.cpu()])
        if scores.numel() <= k:
            return scores, indices, log_probs
        keep = torch.topk(scores, k, largest=self.heuristic.higher_is_better).indices
        return scores[keep], indices[keep], log_probs[keep]

    def _progress(
        self, trainer: pl.Trainer, datamodule: ActiveDataModule, local: Tensor, seed: int, pl_module: pl.LightningModule
    ) -> Iterator[tuple[Tensor, Tensor]]:
        loader = datamodule.pool_dataloader(local)
        batches = mc_batches(pl_module, loader, self.iterations, seed=seed, **self.mc_kwargs)
        bar_callback = trainer.progress_bar_callback
        if not (isinstance(bar_callback, TQDMProgressBar) and bar_callback.is_enabled and trainer.is_global_zero):
            yield from batches
            return
        bar = Tqdm(total=len(loader), desc="Pool pass (MC-Dropout)", leave=False, dynamic_ncols=True, unit="batch")
        try:
            for batch in batches:
                bar.update(1)
                yield batch
        finally:
            bar.close()

    def _select(self, pool: _PoolScores, query_size: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """Dataset indices, scores and (stochastic heuristics) drawing probabilities of the selection."""
        generator = torch.Generator().manual_seed(_derive_seed(int(self.seed or 0), self.steps_done, _SELECT_SALT))
        if self.heuristic.batch_aware:
            selection = self.heuristic.select(pool.candidate_log_probs, query_size, generator)
            return pool.candidate_indices[selection.indices], selection.scores, selection.probabilities
        selection = self.heuristic.select_from_scores(pool.scores, query_size, generator)
        return pool.indices[selection.indices], selection.scores, selection.probabilities

    # ------------------------------------------------------------------ state
    @override
    def state_dict(self) -> dict[str, Any]:
        pending = self._trained_epoch >= 0 and self._is_due(self._trained_epoch)
        return {
            "seed": self.seed,
            "steps_done": self.steps_done,
            "last_selection": torch.empty(0, dtype=torch.long) if self.last_selection is None else self.last_selection,
            "last_step_epoch": self._last_step_epoch,
            "trained_epoch": self._trained_epoch,
            "pending_step": pending,
            "initial_weights": dict(self._initial_weights or {}),
            # The convergence tracking of the current step (with `monitor`), so a resumed step ends where it would have.
            "best_score": self._best_score,
            "wait": self._wait,
            "best_weights": dict(self._best_weights or {}),
            "best_val_metrics": dict(self._best_val_metrics or {}),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seed = state_dict["seed"]
        self.steps_done = int(state_dict["steps_done"])
        self.last_selection = state_dict["last_selection"].clone() if state_dict["last_selection"].numel() else None
        self._last_step_epoch = int(state_dict["last_step_epoch"])
        self._trained_epoch = int(state_dict["trained_epoch"])
        self._catch_up_on_fit_start = bool(state_dict.get("pending_step", False))
        self._initial_weights = dict(state_dict.get("initial_weights") or {}) or None
        self._best_score = state_dict.get("best_score")
        self._wait = int(state_dict.get("wait", 0))
        self._best_weights = dict(state_dict.get("best_weights") or {}) or None
        self._best_val_metrics = dict(state_dict.get("best_val_metrics") or {}) or None


def _accuracy_and_nll(log_probs: Tensor, targets: Tensor) -> tuple[float, float]:
    """Accuracy and mean negative log-likelihood of ``[N, C]`` log-probabilities (float64 sums over N)."""
    # float64 on purpose: torchmetrics' accuracy is float32, and 0.6 would then be logged as 0.6000000238.
    accuracy = (log_probs.argmax(-1) == targets).double().mean()
    return float(accuracy), float(F.nll_loss(log_probs.double(), targets))


def _deterministic_log_probs(pl_module: pl.LightningModule, loader: Any) -> tuple[Tensor, Tensor]:
    """``(indices, log-probabilities)`` of the model, stochastic layers off, over a loader of ``(inputs, indices)``."""
    indices, log_probs = [], []
    with switch_modes(pl_module, lambda _: False), torch.inference_mode():
        for inputs, batch_indices in loader:
            logits = call_module(pl_module, move_data_to_device(inputs, pl_module.device))
            if logits.ndim != 2:
                raise ValueError(
                    "`log_test` and `log_risk` need a classifier with `[batch, classes]` outputs, but the model"
                    f" returned shape {tuple(logits.shape)}."
                )
            log_probs.append(logits.float().log_softmax(-1).cpu())
            indices.append(batch_indices)
    if not log_probs:
        # An empty shard: `gather_uneven` gives it the class dimension of the other ranks.
        return torch.zeros(0, dtype=torch.long), torch.zeros(0)
    return torch.cat(indices), torch.cat(log_probs)
