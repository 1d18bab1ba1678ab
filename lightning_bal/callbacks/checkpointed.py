"""The active learning callback's checkpointed state: what it saves, and how a saved state is checked and restored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from lightning_bal.annotation.annotator import QueryFiles
from lightning_bal.annotation.stopping import StoppingCriterion
from lightning_bal.callbacks.convergence import Convergence
from lightning_bal.callbacks.resume import resume_stage
from lightning_bal.callbacks.state import validated_callback_state, validated_convergence_state
from lightning_bal.mc.posterior import Posterior

__all__ = ["CheckpointedState"]


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
