"""The callback's checkpointed state: what it saves, how it is restored, and where a resumed run runs its step."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from lightning_bal.annotation.annotator import QueryFiles
from lightning_bal.annotation.stopping import StoppingCriterion
from lightning_bal.callbacks.convergence import Convergence
from lightning_bal.callbacks.state import validated_callback_state, validated_convergence_state
from lightning_bal.mc.posterior import Posterior

__all__ = ["CheckpointedState", "replay_skipped_validation", "resume_stage", "undone_if_interrupted"]


class CheckpointedState(Callback):
    """The state part of :class:`~lightning_bal.ActiveLearningCallback`: a bad state is refused before any restore."""

    posterior: Posterior
    stopping: list[StoppingCriterion]
    annotator: QueryFiles | None
    convergence: Convergence | None
    history: list[dict[str, float]]
    steps_done: int
    last_selection: Tensor | None
    _run_seed: int
    _last_step_epoch: int
    _trained_epoch: int
    _initial_weights: dict[str, Tensor] | None
    _catch_up: str | None
    _resume_stage: str | None
    _val_metrics: dict[str, float] | None
    # The callback's schedule: whether the step of an epoch is due (a step owed at the checkpoint is saved as such).
    _is_due: Callable[[int], bool]

    @override
    def state_dict(self) -> dict[str, Any]:
        pending = self._trained_epoch >= 0 and self._is_due(self._trained_epoch)
        return {
            "seed": self._run_seed,
            "steps_done": self.steps_done,
            "last_selection": torch.empty(0, dtype=torch.long) if self.last_selection is None else self.last_selection,
            "last_step_epoch": self._last_step_epoch,
            "trained_epoch": self._trained_epoch,
            "pending_step": pending,
            "initial_weights": dict(self._initial_weights or {}),
            "history": [dict(row) for row in self.history],
            "val_metrics": dict(self._val_metrics or {}),
            "posterior": self.posterior.state_dict(),
            "stopping": [criterion.state_dict() for criterion in self.stopping],
            "annotator": {} if self.annotator is None else self.annotator.state_dict(),
            # The convergence tracking of the current step, so a resumed step ends where it would have.
            **(self.convergence.state_dict() if self.convergence is not None else {}),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Everything is checked first (then the posterior loads its own): a bad state dict changes nothing here.
        valid = validated_callback_state(state_dict)
        if self.convergence is not None:
            validated_convergence_state(state_dict)
        self.posterior.load_state_dict(valid["posterior"])
        for criterion, state in zip(self.stopping, valid["stopping"], strict=False):
            criterion.load_state_dict(state)
        if self.annotator is not None:
            self.annotator.load_state_dict(valid["annotator"])
        self._run_seed = valid["seed"]
        self.steps_done = valid["steps_done"]
        self.last_selection = valid["last_selection"]
        self._last_step_epoch = valid["last_step_epoch"]
        self._trained_epoch = valid["trained_epoch"]
        stage, self._resume_stage = self._resume_stage, None
        # From the last batch's end, the validation the restart skips is owed (and may make a `Convergence` step due).
        pending = valid["pending_step"] or stage == "train_start"
        self._catch_up = None if not pending or stage == "reenter" else stage or "fit_start"
        self._initial_weights = valid["initial_weights"]
        self.history = valid["history"]
        self._val_metrics = valid["val_metrics"]
        if self.convergence is not None:
            self.convergence.load_state_dict(state_dict)

    @override
    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get("callbacks", {})
        self._resume_stage = resume_stage(checkpoint, states.get(self.state_key, {}))
        if self.annotator is not None:
            self.annotator.on_load_checkpoint(trainer, states.get(self.state_key))
        if self.state_key not in states:
            rank_zero_warn(
                f"The checkpoint holds no state for `{self.state_key}` (it holds {sorted(states) or 'none'}): the"
                " active learning run restarts its step count and schedule from scratch."
            )


class _Stateful(Protocol):
    def state_dict(self) -> Any: ...

    def load_state_dict(self, state_dict: Any, /) -> Any: ...


@contextmanager
def undone_if_interrupted(*parts: _Stateful) -> Iterator[None]:
    """Put every part back as it was if the block raises (an exception, or Ctrl-C), then let the error go on."""
    # Deep copies: labelling and weight resets write into the tensors a `state_dict` hands out.
    saved = [copy.deepcopy(part.state_dict()) for part in parts]
    try:
        yield
    except BaseException:
        for part, state in zip(parts, saved, strict=True):
            part.load_state_dict(state)
        raise


def resume_stage(
    checkpoint: dict[str, Any], callback_state: dict[str, Any]
) -> Literal["train_start", "reenter"] | None:
    """How Lightning will restart from ``checkpoint``, which decides where a pending step runs.

    ``"train_start"``: written at an epoch's last batch end (the step runs at ``on_train_start``); ``"reenter"``:
    inside an epoch (at its ``on_train_epoch_end``, as it would have); ``None``: between epochs (at ``on_fit_start``).
    """
    loops = checkpoint.get("loops", {}).get("fit_loop", {})
    epoch = loops.get("epoch_progress", {}).get("current", {})
    batch = loops.get("epoch_loop.batch_progress", {}).get("current", {})
    at_batch_end = batch.get("completed", 0) < batch.get("processed", 0)
    if at_batch_end and callback_state.get("trained_epoch") == checkpoint.get("epoch"):
        return "train_start"
    if epoch.get("processed", 0) < epoch.get("started", 0):
        return "reenter"
    return None


def replay_skipped_validation(trainer: pl.Trainer, epoch: int) -> None:
    """Run the validation of ``epoch`` that Lightning skips when restarting from a checkpoint of its last batch."""
    if not _validated_after_last_batch(trainer, epoch):
        return
    progress = trainer.fit_loop.epoch_progress.current
    restored_epoch = progress.completed
    val_loop = trainer.fit_loop.epoch_loop.val_loop
    # The validation progress restored from the checkpoint is that of an earlier, finished validation.
    val_loop.restarting = False
    progress.completed = epoch  # hooks read the epoch they validate, as in the uninterrupted run
    trainer.validating = True
    try:
        val_loop.run()
    finally:
        trainer.training = True
        progress.completed = restored_epoch


def _validated_after_last_batch(trainer: pl.Trainer, epoch: int) -> bool:
    # Lightning's own decision (`_TrainingEpochLoop._should_check_val_fx`) for the last batch of `epoch`, made while
    # `num_training_batches` is still that epoch's: the restart has not rebuilt the loader yet.
    if not trainer.enable_validation:
        return False
    every = trainer.check_val_every_n_epoch
    if every is not None and (epoch + 1) % every:
        return False
    check = trainer.val_check_batch
    if check is None:  # a time-based interval: whether it had elapsed is not known
        return False
    if check == float("inf"):
        return True
    last = trainer.fit_loop.epoch_loop.total_batch_idx if every is None else trainer.num_training_batches - 1
    return (int(last) + 1) % int(check) == 0
