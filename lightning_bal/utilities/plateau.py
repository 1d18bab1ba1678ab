"""A monitored figure: the direction that improves it (:func:`monitor_mode`), and when it stalls (:class:`Plateau`)."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from typing import Any, Literal

from lightning_bal.utilities.checks import check_finite_number, check_non_empty_str, check_positive_int

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "Plateau", "monitor_mode", "plateau_state"]

#: Words of a monitor's name that make a higher value better.
HIGHER_IS_BETTER = frozenset(
    {"acc", "accuracy", "f1", "auroc", "auc", "precision", "recall", "iou", "jaccard", "map", "r2", "kappa"}
)
#: Words of a monitor's name that make a lower value better.
LOWER_IS_BETTER = frozenset({"loss", "error", "nll", "mse", "mae", "rmse", "ece", "brier"})


def _words(monitor: str) -> set[str]:
    # `val_acc`, `val/acc`, `test-acc`, `valAcc`; a trailing count names a variant (`map50`, `acc5`), not a new figure.
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", monitor).lower()
    words = {word for word in re.split(r"[^a-z0-9]+", spaced) if word}
    return words | {word.rstrip("0123456789") for word in words}


def monitor_mode(monitor: str | None, mode: str | None = None) -> Literal["min", "max"]:
    """The direction in which ``monitor`` improves: ``mode`` if given, else read from the monitor's name's words.

    A name with no word of :data:`HIGHER_IS_BETTER` or :data:`LOWER_IS_BETTER`, or with both, needs ``mode``.

    Examples:
        >>> monitor_mode("val_acc"), monitor_mode("val_loss"), monitor_mode("val_score", "max")
        ('max', 'min', 'max')
    """
    if mode is not None:
        if mode not in ("min", "max"):
            raise ValueError(
                f"Expected argument `mode` to be 'min' or 'max' (or None to read it from the monitor's name), but got"
                f" {mode!r}."
            )
        return "min" if mode == "min" else "max"
    words = _words(check_non_empty_str("monitor", monitor))
    higher, lower = words & HIGHER_IS_BETTER, words & LOWER_IS_BETTER
    if higher and lower:
        raise ValueError(
            f"Expected argument `mode` ('min' or 'max') for the monitor {monitor!r}: its name reads both as higher is"
            f" better ({sorted(higher)}) and as lower is better ({sorted(lower)})."
        )
    if not higher and not lower:
        raise ValueError(
            f"Expected argument `mode` ('min' or 'max') for the monitor {monitor!r}: its name does not say whether"
            " higher is better."
        )
    return "max" if higher else "min"


class Plateau:
    """The one comparison ``EarlyStopping`` makes: has ``value`` stopped improving for ``patience`` updates?

    Args:
        mode: ``"min"`` or ``"max"``; ``None`` reads it from ``monitor``'s name (:func:`monitor_mode`).
        patience: updates without improvement after which :attr:`stalled` is true.

    Examples:
        >>> plateau = Plateau("min", patience=2)
        >>> [plateau.update(v) for v in (1.0, 0.5, 0.5, 0.6)], plateau.stalled, plateau.best
        ([True, True, False, False], True, 0.5)
    """

    def __init__(
        self,
        mode: Literal["min", "max"] | None = None,
        patience: int = 3,
        min_delta: float = 0.0,
        *,
        monitor: str | None = None,
    ) -> None:
        if mode is None and monitor is None:
            raise ValueError(
                "Expected argument `mode` ('min' or 'max') or a `monitor` whose name tells it, got neither."
            )
        self.mode = monitor_mode(monitor, mode)
        self.min_delta = check_finite_number("min_delta", min_delta, low=0)
        self.patience = check_positive_int("patience", patience)
        self.best: float | None = None
        self.wait = 0

    def update(self, value: float) -> bool:
        """Record one value; returns whether it improved on the best so far (NaN or infinite: an error)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            raise ValueError(f"Expected argument `value` to be a number, but got {value!r}.")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"Expected a finite monitored value, but got {value}: the model diverged.")
        best = self.best
        improved = best is None or (
            value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta
        )
        if improved:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        return improved

    @property
    def stalled(self) -> bool:
        """Whether the last ``patience`` updates brought no improvement."""
        return self.wait >= self.patience

    def reset(self) -> None:
        """Forget the best value (a new step starts)."""
        self.best, self.wait = None, 0

    def state_dict(self) -> dict[str, Any]:
        """The best value and the updates since."""
        return {"best_score": self.best, "wait": self.wait}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; a bad entry raises before anything changes."""
        self.best, self.wait = plateau_state(state_dict, best="best_score", wait="wait")


def plateau_state(state: Mapping[str, Any], *, best: str, wait: str) -> tuple[float | None, int]:
    """The entries ``best`` (a finite number or None) and ``wait`` (an integer >= 0) of ``state``, or a fresh start."""
    if not isinstance(state, Mapping):
        raise TypeError(f"Expected the state to be a mapping, but got {type(state).__name__}.")
    value = state.get(best)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value))
    ):
        raise ValueError(f"Expected state entry `{best}` to be a finite number or None, but got {value!r}.")
    count = state.get(wait, 0)
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
        raise ValueError(f"Expected state entry `{wait}` to be an integer >= 0, but got {count!r}.")
    return (None if value is None else float(value)), int(count)
