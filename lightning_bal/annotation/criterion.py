"""The stopping criteria's contract: what a criterion reads of the step, and what it keeps in the checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol

from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["StepView", "StoppingCriterion", "stop_reasons"]


class StepView(Protocol):
    """What a stopping criterion reads of the step (any object with these attributes, e.g. a ``SimpleNamespace``).

    Attributes:
        num_labelled: size of D_L the model was trained on.
        step: the number of active learning steps done before this one.
        val_metrics: the validation figures of the model that scores the pool.
        figures: the step's figures so far, e.g. ``test_acc`` of ``TestCurve`` (read them, do not change them).
        pool_scores: the heuristic's scores of the scored pool items, or a bounded sample of them (``None`` before the
            pool pass or off rank zero).
        pool_mean: the exact mean score of the whole scored pool over every rank (``None`` where unknown).
        pool_max: the exact largest score of the whole scored pool over every rank (``None`` where unknown).
        predict: the model's predicted classes ``[N]`` on a dataset (eval mode, deterministic).
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

    Example:
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
