"""Train each active learning step to convergence: when has a monitored validation metric stopped improving?"""

from __future__ import annotations

import math
from typing import Any, Literal

from torch import Tensor

from lightning_bal.callbacks.state import validated_convergence_state
from lightning_bal.utilities.checks import check_bool, check_non_negative_int, check_positive_int
from lightning_bal.utilities.plateau import Plateau

__all__ = ["Convergence"]


class Convergence:
    """Run each active learning step once the model has converged on D_L, not after a fixed number of epochs.

    The step runs once ``monitor`` has not improved for ``patience`` validations, or after ``max_epochs`` epochs:
    Lightning's ``EarlyStopping`` for the step, not the fit.

    Args:
        monitor: a validation metric the model logs with ``self.log`` (e.g. ``"val_loss"``).
        mode: ``"min"`` or ``"max"``: whether a lower or a higher ``monitor`` is better; ``None`` reads it from the
            name (:func:`~lightning_bal.utilities.plateau.monitor_mode`), and asks for it when the name does not tell.
        patience: validations without improvement after which the step runs.
        min_delta: the smallest change of ``monitor`` that counts as an improvement.
        max_epochs: run the step after this many epochs even without convergence.
        restore_best_weights: score the pool (and report the step's figures) with the weights of the step's best
            validation (a CPU copy, also kept in the checkpoint).

    Examples:
        >>> from lightning_bal import ActiveLearningCallback
        >>> callback = ActiveLearningCallback("bald", 10, convergence=Convergence("val_loss", patience=3))
        >>> callback.convergence.monitor
        'val_loss'
    """

    def __init__(
        self,
        monitor: str,
        mode: Literal["min", "max"] | None = None,
        patience: int = 3,
        min_delta: float = 0.0,
        max_epochs: int | None = None,
        restore_best_weights: bool = True,
    ) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"Expected argument `monitor` to be a metric name, but got {monitor!r}.")
        self.monitor = monitor
        self.plateau = Plateau(mode, patience, min_delta, monitor=monitor)
        self.max_epochs = None if max_epochs is None else check_positive_int("max_epochs", max_epochs)
        self.restore_best_weights = check_bool("restore_best_weights", restore_best_weights)
        self.best_weights: dict[str, Tensor] | None = None
        self.best_val_metrics: dict[str, float] | None = None

    def due(self, epochs_since_step: int) -> bool:
        """Whether the step should run after this epoch."""
        epochs_since_step = check_non_negative_int("epochs_since_step", epochs_since_step)
        return self.plateau.stalled or (self.max_epochs is not None and epochs_since_step >= self.max_epochs)

    def observe(self, value: float, state: dict[str, Tensor], val_metrics: dict[str, float]) -> None:
        """Record one validation's ``value``; on improvement keep a CPU copy of the model ``state`` and its figures."""
        if not math.isfinite(value):
            raise ValueError(f"The monitored metric `{self.monitor}` is {value}: the model diverged.")
        if self.plateau.update(value) and self.restore_best_weights:
            # On the CPU: the copy must not cost accelerator memory, and is only read back once per step.
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
            self.best_val_metrics = val_metrics

    def take_best(self) -> tuple[dict[str, Tensor] | None, dict[str, float] | None]:
        """The best weights and validation figures of the step, and start tracking the next step afresh."""
        best = self.best_weights, self.best_val_metrics
        self.plateau.reset()
        self.best_weights, self.best_val_metrics = None, None
        return best

    def state_dict(self) -> dict[str, Any]:
        """The tracking of the current step, so a resumed step ends where it would have."""
        return {
            **self.plateau.state_dict(),
            "best_weights": dict(self.best_weights or {}),
            "best_val_metrics": dict(self.best_val_metrics or {}),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a bad entry raises before anything changes."""
        valid = validated_convergence_state(state_dict)
        self.plateau.best, self.plateau.wait = valid["best_score"], valid["wait"]
        self.best_weights, self.best_val_metrics = valid["best_weights"], valid["best_val_metrics"]

    def __repr__(self) -> str:
        p = self.plateau
        return (
            f"Convergence({self.monitor!r}, mode={p.mode!r}, patience={p.patience}, min_delta={p.min_delta},"
            f" max_epochs={self.max_epochs}, restore_best_weights={self.restore_best_weights})"
        )
