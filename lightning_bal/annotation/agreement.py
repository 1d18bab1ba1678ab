"""Several annotators' answers to one query: when two answers are the same one, and how far they agree per step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from lightning_bal.annotation.consensus import cohen_kappa, fleiss_kappa

__all__ = ["agreement_by_step", "log_agreement"]


def answer_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes an answer row the same answer: item, step, annotator, label, time and annotation id."""
    # The same answer imported again (a second export of the project) is recorded once; a tensor label (a mask)
    # compares by value, as its own hash would tell two copies apart.
    return tuple(_hashable(row.get(key)) for key in ("id", "step", "by", "label", "time", "annotation"))


def _hashable(value: Any) -> Any:
    if isinstance(value, Tensor):
        return ("tensor", tuple(value.shape), tuple(value.reshape(-1).tolist()))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(key), _hashable(part)) for key, part in value.items())))
    return value


def agreement_by_step(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agreement of the answers ``rows`` (``LabelState.answers``) of each step answered more than once.

    Each annotator's latest answer to an item counts; an answer that names no annotator counts as one of its own.
    Cohen's kappa where exactly two named annotators answered the step, else Fleiss' kappa; steps with no item
    answered twice, or with answers that are not class indices, have none.

    Examples:
        >>> rows = [{"id": i, "step": 1, "by": by, "label": label}
        ...         for by, labels in (("ann", [0, 1, 1, 0]), ("bob", [0, 1, 0, 0])) for i, label in enumerate(labels)]
        >>> agreement_by_step(rows)
        [{'step': 1, 'kappa': 0.5, 'method': 'cohen', 'annotators': 2, 'items': 4}]
    """
    steps: dict[int, dict[Any, dict[tuple[Any, ...], Any]]] = {}
    for number, row in enumerate(rows):
        who = ("by", row["by"]) if row.get("by") is not None else ("nobody", number)
        steps.setdefault(row["step"], {}).setdefault(row["id"], {})[who] = row["label"]
    found = []
    for step, items in sorted(steps.items()):
        labels = [label for answers in items.values() for label in answers.values()]
        if not all(isinstance(label, int) and not isinstance(label, bool) and label >= 0 for label in labels):
            continue  # regression answers: kappa is for classes
        columns = sorted({who for answers in items.values() for who in answers}, key=repr)
        table = [[answers.get(who) for who in columns] for answers in items.values()]
        twice = sum(len(answers) >= 2 for answers in items.values())
        if not twice:
            continue
        if len(columns) == 2 and all(who[0] == "by" for who in columns):
            kappa, method = cohen_kappa([row[0] for row in table], [row[1] for row in table]), "cohen"
        else:
            kappa, method = fleiss_kappa(table), "fleiss"
        named = len({who for who in columns if who[0] == "by"})
        found.append({"step": step, "kappa": kappa, "method": method, "annotators": named, "items": twice})
    return found


def log_agreement(trainer: Any, annotator: Any) -> dict[str, float]:
    """Log the newest step's agreement of the ``annotator`` state as ``annotation/kappa`` against that step.

    The resumed callback calls it with the checkpoint's annotator state, so the kappa of the answers the run resumes on
    reaches the trainer's loggers; returns what it logged (nothing without a recorded agreement).
    """
    rows = annotator.get("agreement") if isinstance(annotator, dict) else None
    if not isinstance(rows, list) or not rows or not isinstance(rows[-1], dict):
        return {}
    newest = rows[-1]
    metrics = {"annotation/kappa": float(newest["kappa"])}
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=int(newest["step"]))
    return metrics
