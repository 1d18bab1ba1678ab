"""Handing the final labelled set back to the main process after ``ddp_spawn`` (which shares no memory with it)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn

from lightning_bal.data import ActiveDataModule

__all__ = ["FINAL_STATE_FILE", "hand_back_labels"]

#: Written to the trainer's ``default_root_dir`` by rank zero at the end of a spawned fit.
FINAL_STATE_FILE = "active_learning_final_state.pt"


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
