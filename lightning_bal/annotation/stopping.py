"""When to stop buying labels: criteria passed to the callback as ``stopping=[...]`` (docs/annotators.md)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from lightning_bal.annotation.criterion import StepView, StoppingCriterion, _entry, stop_reasons
from lightning_bal.annotation.stable_predictions import StablePredictions, cohen_kappa
from lightning_bal.utilities.checks import check_finite_number, check_non_empty_str
from lightning_bal.utilities.plateau import Plateau, monitor_mode, plateau_state

__all__ = [
    "LowUncertainty",
    "MetricPlateau",
    "StablePredictions",
    "StepView",
    "StoppingCriterion",
    "TargetReached",
    "cohen_kappa",
    "stop_reasons",
]


def _finite_figure(criterion: str, monitor: str, value: Any) -> float:
    """The step's value of ``monitor`` as a float, refused (naming it) unless a finite number."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{criterion}` expected the figure `{monitor}` to be a number, but got {value!r:.80}.")
    if not math.isfinite(float(value)):
        raise ValueError(f"`{criterion}` expected the figure `{monitor}` to be finite, but got {float(value)}.")
    return float(value)


class MetricPlateau(StoppingCriterion):
    """Stop when a validation metric has not improved across ``patience`` active learning steps.

    Args:
        monitor: a metric the model logs in validation, e.g. ``"val_acc"``.
        mode: ``"max"`` or ``"min"``; ``None`` reads it from ``monitor``'s name (``val_acc``: ``"max"``).
        patience: steps without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.

    Example:
        >>> from types import SimpleNamespace
        >>> criterion = MetricPlateau("val_acc", mode="max", patience=2)
        >>> for value in (0.70, 0.80, 0.80, 0.79):
        ...     figures = criterion.update(SimpleNamespace(val_metrics={"val_acc": value}))
        >>> criterion.stop, figures["stop_val_acc_best"]
        (True, 0.8)
    """

    name = "metric_plateau"

    def __init__(
        self, monitor: str, mode: Literal["min", "max"] | None = None, patience: int = 3, min_delta: float = 0.0
    ) -> None:
        super().__init__()
        self.monitor = check_non_empty_str("monitor", monitor)
        self.plateau = Plateau(mode, patience, min_delta, monitor=monitor)

    def update(self, context: StepView) -> dict[str, float]:
        """Record the step's value of ``monitor``."""
        if self.monitor not in context.val_metrics:
            raise RuntimeError(
                f"`MetricPlateau(monitor={self.monitor!r})` found no such validation metric at the step; the"
                f" metrics are: {sorted(context.val_metrics) or 'none'}."
            )
        self.plateau.update(_finite_figure("MetricPlateau", self.monitor, context.val_metrics[self.monitor]))
        if self.plateau.stalled and not self.stop:
            self.stop = True
            self.reason = (
                f"{self.monitor} has not improved for {self.plateau.patience} steps (best {self.plateau.best})"
            )
        return {
            f"stop_{self.monitor}_best": float(self.plateau.best or 0.0),
            "stop_plateau_wait": float(self.plateau.wait),
        }

    def state_dict(self) -> dict[str, Any]:
        """The plateau's best and wait, and the decision."""
        return {**super().state_dict(), "best": self.plateau.best, "wait": self.plateau.wait}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (an empty mapping restores a fresh criterion); a bad entry changes nothing."""
        valid = self._checked_state(state)
        for name in ("best", "wait") if state else ():
            _entry(self, state, name)
        self.plateau.best, self.plateau.wait = plateau_state(state, best="best", wait="wait")
        self.stop, self.reason = valid["stop"], valid["reason"]


class TargetReached(StoppingCriterion):
    """Stop once a step's figure reaches a target: the labels bought are enough for the accuracy the team needs.

    Args:
        monitor: a validation metric (``"val_acc"``) or a figure of the step's evaluations (``"test_acc"``).
        target: the value that is enough.
        mode: ``"max"``: reached at ``target`` or above; ``"min"``: at ``target`` or below; ``None`` reads it from
            ``monitor``'s name.

    Example:
        >>> from types import SimpleNamespace
        >>> criterion = TargetReached("test_acc", 0.9)
        >>> step = SimpleNamespace(num_labelled=40, val_metrics={}, figures={"test_acc": 0.91})
        >>> criterion.update(step), criterion.stop
        ({}, True)
        >>> criterion.reason
        'test_acc reached 0.9 (0.91 with 40 labels)'
    """

    name = "target_reached"

    def __init__(self, monitor: str, target: float, mode: Literal["min", "max"] | None = None) -> None:
        super().__init__()
        self.monitor = check_non_empty_str("monitor", monitor)
        self.target = check_finite_number("target", target)
        self.mode = monitor_mode(monitor, mode)

    def update(self, context: StepView) -> dict[str, float]:
        """Compare the step's value of ``monitor`` with the target."""
        metrics = {**context.val_metrics, **context.figures}
        if self.monitor not in metrics:
            raise RuntimeError(
                f"`TargetReached(monitor={self.monitor!r})` found no such figure at the step; the validation metrics"
                f" and evaluation figures are: {sorted(metrics) or 'none'}."
            )
        value = _finite_figure("TargetReached", self.monitor, metrics[self.monitor])
        reached = value >= self.target if self.mode == "max" else value <= self.target
        if reached and not self.stop:
            self.stop = True
            self.reason = f"{self.monitor} reached {self.target:g} ({value:.4g} with {context.num_labelled} labels)"
        return {}


class LowUncertainty(StoppingCriterion):
    """Stop once the mean and/or max of the pool's scores are at most the given thresholds (every given one).

    Thresholds are in the units of the callback's heuristic (BALD: nats); the logged ``stop_pool_score_mean`` and
    ``stop_pool_score_max`` help choose them.

    Example:
        >>> from types import SimpleNamespace
        >>> criterion = LowUncertainty(mean_below=0.05, max_below=0.2)
        >>> scores = torch.tensor([0.0, 0.05], dtype=torch.float64)
        >>> criterion.update(SimpleNamespace(pool_scores=scores, pool_mean=None, pool_max=None)), criterion.stop
        ({'stop_pool_score_mean': 0.025, 'stop_pool_score_max': 0.05}, True)
    """

    name = "low_uncertainty"
    needs_pool_scores = True

    def __init__(self, mean_below: float | None = None, max_below: float | None = None) -> None:
        super().__init__()
        if mean_below is None and max_below is None:
            raise ValueError("Expected argument `mean_below` or `max_below` (or both), but got neither.")
        for name, value in (("mean_below", mean_below), ("max_below", max_below)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError(f"Expected argument `{name}` to be a number, but got {value!r}.")
            if value is not None and not math.isfinite(value):
                raise ValueError(f"Expected argument `{name}` to be a finite number, but got {value!r}.")
        self.mean_below = None if mean_below is None else float(mean_below)
        self.max_below = None if max_below is None else float(max_below)

    def update(self, context: StepView) -> dict[str, float]:
        """Compare the pool's mean and max score with the thresholds (no scores: no decision)."""
        scores = context.pool_scores
        if scores is None:
            return {}
        if not isinstance(scores, Tensor) or scores.is_complex() or scores.dtype == torch.bool:
            raise TypeError(f"`LowUncertainty` expected `pool_scores` to be a real tensor, but got {scores!r:.80}.")
        if scores.numel() == 0:
            return {}
        if not bool(torch.isfinite(scores).all()):
            raise ValueError(
                f"`LowUncertainty` expected finite `pool_scores`, but {int((~torch.isfinite(scores)).sum())} of"
                f" {scores.numel()} are NaN or infinite."
            )
        mean, largest = float(scores.double().mean()), float(scores.double().max())
        if context.pool_mean is not None and context.pool_max is not None:
            mean, largest = context.pool_mean, context.pool_max  # exact: the scores may be a sample of the pool
        met = (self.mean_below is None or mean <= self.mean_below) and (
            self.max_below is None or largest <= self.max_below
        )
        if met and not self.stop:
            self.stop = True
            self.reason = f"the pool's uncertainty is low (mean {mean:.4g}, max {largest:.4g})"
        return {"stop_pool_score_mean": mean, "stop_pool_score_max": largest}
