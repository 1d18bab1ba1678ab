"""Where a run resumed before its pending active learning step must run it, read from Lightning's loop state."""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_warn

__all__ = ["legacy_state", "replay_skipped_validation", "resume_stage"]


def resume_stage(
    checkpoint: dict[str, Any], callback_state: dict[str, Any]
) -> Literal["train_start", "reenter"] | None:
    """How Lightning will restart from ``checkpoint``, as far as a pending step is concerned.

    - ``"train_start"``: written at the end of an epoch's last training batch. Lightning restarts at the next epoch
      without this epoch's end (nor its validation), and builds that epoch's loader after ``on_train_start``: the
      pending step runs there.
    - ``"reenter"``: written inside an epoch (at a validation, or mid-epoch). Lightning re-enters that epoch with a
      train loader built from the labelled set as it was, and ends it with ``on_train_epoch_end``, where the pending
      step runs as it would have; catching up earlier would grow the loader under the restarted epoch.
    - ``None``: written between epochs; a pending step (if any) runs at ``on_fit_start``, before the next loader.

    Example:
        >>> loops = {"epoch_progress": {"current": {"started": 3, "processed": 2}}}
        >>> resume_stage({"loops": {"fit_loop": loops}, "epoch": 2}, {"trained_epoch": 2})
        'reenter'
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
    """Run the validation Lightning owed ``epoch`` but skips when restarting from a checkpoint of its last batch.

    Lightning validates after an epoch's last training batch, so a checkpoint written at that batch's end precedes the
    validation, and Lightning's restart goes on to the next epoch without it. Replayed with the checkpoint's weights,
    it gives the figures, the `Convergence` observation and the hooks of the uninterrupted run.
    """
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


def legacy_state(states: dict[str, Any], state_key: str) -> dict[str, Any] | None:
    """The callback's state saved under an older key, if the checkpoint has exactly one; else warn and return None.

    Releases before 0.2 keyed the state on the heuristic, query size and iterations as well, so a resumed run that
    changed one of them silently lost the state.
    """
    legacy = [key for key in states if key.startswith(f"{state_key}{{")]
    if len(legacy) == 1:
        return states[legacy[0]]
    rank_zero_warn(
        f"The checkpoint holds no state for `{state_key}` (it holds {sorted(states) or 'none'}): the active learning"
        " run restarts its step count and schedule from scratch."
    )
    return None
