"""When to stop buying labels: criteria passed to the callback as ``stopping=[...]`` (docs/annotators.md)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchmetrics.functional.classification import multiclass_cohen_kappa

from lightning_bal.utilities.checks import check_finite_number, check_non_empty_str, check_positive_int
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


class StepView(Protocol):
    """What a stopping criterion reads of the step (any object with these attributes, e.g. a ``SimpleNamespace``).

    ``pool_scores`` may be a bounded sample of the pool's scores; ``pool_mean`` and ``pool_max`` are exact over every
    rank (``None`` where unknown). See docs/annotators.md#stopping-criteria.
    """

    @property
    def num_labelled(self) -> int: ...  # noqa: D102
    @property
    def step(self) -> int: ...  # noqa: D102
    @property
    def val_metrics(self) -> Mapping[str, float]: ...  # noqa: D102
    @property
    def figures(self) -> Mapping[str, float]: ...  # noqa: D102
    @property
    def pool_scores(self) -> Tensor | None: ...  # noqa: D102
    @property
    def pool_mean(self) -> float | None: ...  # noqa: D102
    @property
    def pool_max(self) -> float | None: ...  # noqa: D102
    @property
    def predict(self) -> Callable[[Dataset], Tensor] | None: ...  # noqa: D102


class StoppingCriterion:
    """Base class: :meth:`update` once per step; :attr:`stop` and :attr:`reason` say whether and why to stop.

    Examples:
        >>> class EnoughLabels(StoppingCriterion):
        ...     name = "enough_labels"
        ...
        ...     def update(self, context):
        ...         if context.num_labelled >= 100:
        ...             self.stop, self.reason = True, "100 labels"
        ...         return {"stop_labels": float(context.num_labelled)}
        >>> from types import SimpleNamespace
        >>> criterion = EnoughLabels()
        >>> criterion.update(SimpleNamespace(num_labelled=120)), criterion.stop
        ({'stop_labels': 120.0}, True)
    """

    name: ClassVar[str] = "criterion"
    #: The criterion reads the heuristic's pool scores (the heuristic must score uncertainty, higher = more).
    needs_pool_scores: ClassVar[bool] = False

    def __init__(self) -> None:
        self.stop = False
        self.reason = ""

    def update(self, context: StepView) -> dict[str, float]:
        """Take one step's context; return the figures to log (keys prefixed ``stop_``)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Primitives and tensors only."""
        return {"stop": self.stop, "reason": self.reason}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (an empty mapping restores a fresh criterion); a bad entry changes nothing."""
        for name, value in self._checked_state(state).items():
            setattr(self, name, value)

    def _checked_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """The attributes :meth:`load_state_dict` sets, read from ``state`` and checked (subclasses add theirs)."""
        if not isinstance(state, Mapping):
            raise TypeError(f"Expected the state of `{type(self).__name__}` to be a mapping, but got {state!r:.80}.")
        if not state:
            return {"stop": False, "reason": ""}
        stop, reason = _entry(self, state, "stop"), _entry(self, state, "reason")
        if not isinstance(stop, bool):
            raise TypeError(f"Expected state entry `stop` of `{type(self).__name__}` to be a bool, but got {stop!r}.")
        if not isinstance(reason, str):
            raise TypeError(
                f"Expected state entry `reason` of `{type(self).__name__}` to be a string, but got {reason!r:.80}."
            )
        return {"stop": stop, "reason": reason}


def _entry(criterion: StoppingCriterion, state: Mapping[str, Any], name: str) -> Any:
    # A non-empty state is a saved one: every entry the criterion saves must be there.
    if name not in state:
        raise KeyError(
            f"Expected state entry `{name}` in the state of `{type(criterion).__name__}`, but it is missing."
        )
    return state[name]


def stop_reasons(criteria: list[StoppingCriterion], context: StepView, figures: dict[str, float]) -> list[str]:
    """Update every criterion with ``context``, add their figures to ``figures``; the reasons of those that stop."""
    reasons = []
    for criterion in criteria:
        figures.update(criterion.update(context))
        if criterion.stop:
            reasons.append(criterion.reason)
    return reasons


def _finite_figure(criterion: str, monitor: str, metrics: Mapping[str, Any], what: str, listed: str) -> float:
    """The step's value of ``monitor`` as a float, refused (naming it) unless there and a finite number."""
    if monitor not in metrics:
        raise RuntimeError(
            f"`{criterion}(monitor={monitor!r})` found no such {what} at the step; the {listed} are:"
            f" {sorted(metrics) or 'none'}."
        )
    value = metrics[monitor]
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

    Examples:
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
        metrics = context.val_metrics
        self.plateau.update(_finite_figure("MetricPlateau", self.monitor, metrics, "validation metric", "metrics"))
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
        mode: ``"max"``: reached at ``target`` or above; ``"min"``: at ``target`` or below; ``None`` reads it from
            ``monitor``'s name.

    Examples:
        >>> from types import SimpleNamespace
        >>> criterion = TargetReached("test_acc", 0.9)
        >>> step = SimpleNamespace(num_labelled=40, val_metrics={}, figures={"test_acc": 0.91})
        >>> criterion.update(step), criterion.stop, criterion.reason
        ({}, True, 'test_acc reached 0.9 (0.91 with 40 labels)')
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
        listed = "validation metrics and evaluation figures"
        value = _finite_figure("TargetReached", self.monitor, metrics, "figure", listed)
        reached = value >= self.target if self.mode == "max" else value <= self.target
        if reached and not self.stop:
            self.stop = True
            self.reason = f"{self.monitor} reached {self.target:g} ({value:.4g} with {context.num_labelled} labels)"
        return {}


class LowUncertainty(StoppingCriterion):
    """Stop once the mean and/or max of the pool's scores are at most the given thresholds (in the heuristic's units).

    Examples:
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


def cohen_kappa(first: Tensor, second: Tensor) -> float:
    r"""Cohen's kappa of two labelings of the same items (torchmetrics'); two identical constant labelings have 1.

    Examples:
        >>> cohen_kappa(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0]))
        0.5
    """
    _check_labels("first", first)
    _check_labels("second", second)
    if first.shape != second.shape or first.numel() == 0:
        raise ValueError(
            f"Expected two non-empty [N] labelings, but got shapes {tuple(first.shape)} and {tuple(second.shape)}."
        )
    if bool((first == first[0]).all()) and torch.equal(first, second):
        # p_e = 1: kappa is 0 / 0; a labeling agrees fully with itself.
        return 1.0
    # torchmetrics needs at least two classes; a missing class changes no count.
    num_classes = max(int(torch.cat([first, second]).max()) + 1, 2)
    return float(multiclass_cohen_kappa(second, first, num_classes=num_classes))


def _check_labels(name: str, labels: Any) -> None:
    if not isinstance(labels, Tensor) or labels.dim() != 1:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"Expected `{name}` to be a labeling [N] of class indices, but got {shape}.")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"Expected `{name}` to hold integer class indices, but got dtype {labels.dtype}.")
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"Expected `{name}` to hold class indices >= 0, but got {int(labels.min())}.")


class StablePredictions(StoppingCriterion):
    """Stop when the kappa of successive predictions on a fixed stop set stays >= ``threshold`` for ``patience`` steps.

    Bloodgood and Vijay-Shanker (2009); see docs/annotators.md#stopping-criteria.

    Args:
        stop_set: unlabelled items, read like the pool (``input_fn``); a few thousand are typical.
        threshold: the agreement that counts as stable (the paper uses 0.99).

    Examples:
        >>> from types import SimpleNamespace
        >>> criterion = StablePredictions(stop_set=None, threshold=0.9, patience=2)
        >>> guesses = iter([torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 1, 0])])
        >>> for step in range(3):
        ...     figures = criterion.update(SimpleNamespace(predict=lambda _: next(guesses)))
        >>> figures, criterion.stop
        ({'stop_kappa': 1.0, 'stop_stable_steps': 2.0}, True)
    """

    name = "stable_predictions"

    def __init__(self, stop_set: Dataset | None, threshold: float = 0.99, patience: int = 3) -> None:
        super().__init__()
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1:
            raise ValueError(f"Expected argument `threshold` to be a kappa in [-1, 1], but got {threshold!r}.")
        self.stop_set = stop_set
        self.threshold = float(threshold)
        self.patience = check_positive_int("patience", patience)
        self.previous: Tensor | None = None
        self.stable_steps = 0

    def update(self, context: StepView) -> dict[str, float]:
        """Predict the stop set and compare with the previous step's predictions."""
        if context.predict is None:
            raise RuntimeError("`StablePredictions` needs the model's predictions, but the context has no `predict`.")
        predicted = context.predict(self.stop_set)  # type: ignore[arg-type]
        if not isinstance(predicted, Tensor):
            raise TypeError(f"`StablePredictions` expected `predict` to return a tensor, but got {predicted!r:.80}.")
        current = predicted.reshape(-1).cpu()
        _check_labels("predict(stop_set)", current)
        current = current.long()
        if self.previous is not None and current.shape != self.previous.shape:
            raise ValueError(
                f"`StablePredictions` expected {self.previous.numel()} predictions on the stop set, as at the previous"
                f" step, but got {current.numel()}."
            )
        figures: dict[str, float] = {}
        if self.previous is not None:
            kappa = cohen_kappa(self.previous, current)
            self.stable_steps = self.stable_steps + 1 if kappa >= self.threshold else 0
            figures = {"stop_kappa": kappa, "stop_stable_steps": float(self.stable_steps)}
            if self.stable_steps >= self.patience and not self.stop:
                self.stop = True
                self.reason = (
                    f"predictions on the stop set are stable (kappa >= {self.threshold} for {self.patience} steps)"
                )
        self.previous = current
        return figures

    def state_dict(self) -> dict[str, Any]:
        """The last predictions and the count of stable steps."""
        previous = torch.empty(0, dtype=torch.long) if self.previous is None else self.previous
        return {**super().state_dict(), "previous": previous, "stable_steps": self.stable_steps}

    def _checked_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        valid = super()._checked_state(state)
        previous = _entry(self, state, "previous") if state else torch.empty(0, dtype=torch.long)
        steps = _entry(self, state, "stable_steps") if state else 0
        if not isinstance(previous, Tensor):
            raise TypeError(f"Expected state entry `previous` to be a tensor of class indices, got {previous!r:.80}.")
        _check_labels("previous", previous)
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            raise ValueError(f"Expected state entry `stable_steps` to be an integer >= 0, but got {steps!r}.")
        previous = None if previous.numel() == 0 else previous.detach().cpu().long().clone()
        return {**valid, "previous": previous, "stable_steps": int(steps)}
