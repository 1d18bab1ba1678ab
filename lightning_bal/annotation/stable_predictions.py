"""Stopping on stable predictions: Cohen's kappa between successive steps' predictions on a fixed stop set."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchmetrics.functional.classification import multiclass_cohen_kappa

from lightning_bal.annotation.criterion import StepView, StoppingCriterion, _entry
from lightning_bal.utilities.checks import check_positive_int

__all__ = ["StablePredictions", "cohen_kappa"]


def cohen_kappa(first: Tensor, second: Tensor) -> float:
    r"""Cohen's kappa of two labelings of the same items: :math:`(p_o - p_e) / (1 - p_e)` (torchmetrics' figure).

    Two identical constant labelings (:math:`p_e = 1`) have kappa 1.

    Example:
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
    """Stop when predictions on a fixed stop set no longer change (Bloodgood and Vijay-Shanker, 2009).

    Stops once Cohen's kappa between successive steps' predictions (``stop_kappa``) has stayed at or above
    ``threshold`` for ``patience`` steps.

    Args:
        stop_set: unlabelled items, read like the pool (``input_fn``); a few thousand are typical.
        threshold: the agreement that counts as stable (the paper uses 0.99).

    Example:
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

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (an empty mapping restores a fresh criterion); a bad entry changes nothing."""
        valid = self._checked_state(state)
        previous = _entry(self, state, "previous") if state else torch.empty(0, dtype=torch.long)
        steps = _entry(self, state, "stable_steps") if state else 0
        if not isinstance(previous, Tensor):
            raise TypeError(f"Expected state entry `previous` to be a tensor of class indices, got {previous!r:.80}.")
        _check_labels("previous", previous)
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            raise ValueError(f"Expected state entry `stable_steps` to be an integer >= 0, but got {steps!r}.")
        self.stop, self.reason = valid["stop"], valid["reason"]
        self.previous = None if previous.numel() == 0 else previous.detach().cpu().long().clone()
        self.stable_steps = int(steps)
