"""Where a run resumed before its pending active learning step must run it, read from Lightning's loop state."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol

import lightning.pytorch as pl

__all__ = ["replay_skipped_validation", "resume_stage", "undone_if_interrupted"]


class _Stateful(Protocol):
    def state_dict(self) -> Any: ...

    def load_state_dict(self, state_dict: Any, /) -> Any: ...


@contextmanager
def undone_if_interrupted(*parts: _Stateful) -> Iterator[None]:
    """Put every part back as it was if the block raises (an exception, or Ctrl-C), then let the error go on.

    Example:
        >>> from torch import nn
        >>> layer = nn.Linear(1, 1, bias=False)
        >>> try:
        ...     with undone_if_interrupted(layer):
        ...         _ = layer.weight.data.fill_(5.0)
        ...         raise KeyboardInterrupt
        ... except KeyboardInterrupt:
        ...     pass
        >>> float(layer.weight) != 5.0
        True
    """
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
    """How Lightning will restart from ``checkpoint``, as far as a pending step is concerned.

    - ``"train_start"``: written at an epoch's last batch end; Lightning skips that epoch's validation and end and
      builds the next loader after ``on_train_start``, where the pending step runs.
    - ``"reenter"``: written inside an epoch; Lightning re-enters it and ends it with ``on_train_epoch_end``, where
      the step runs as it would have (catching up earlier would grow the loader under the restarted epoch).
    - ``None``: written between epochs; a pending step runs at ``on_fit_start``, before the next loader.

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
