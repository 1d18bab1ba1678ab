"""A checkpoint's label state, read, exported and changed without the dataset or the model (for ``lightning-bal``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from lightning_bal.annotation.agreement import agreement_by_step, answer_key
from lightning_bal.annotation.answers import same_label
from lightning_bal.annotation.checkpoint_entries import (
    Imported,
    login_name,
    next_command,
    recorded_guesses,
    recorded_time,
    some_ids,
    temporary_path,
    utc_now,
    write_status,
)
from lightning_bal.annotation.label_entries import find_label_entries
from lightning_bal.annotation.label_studio import AnnotatorAnswer, write_label_studio_tasks
from lightning_bal.data.ids import ItemId, id_lookup
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.data.ledger_state import OPTIONAL_STATE_KEYS
from lightning_bal.data.queries import write_queries
from lightning_bal.utilities.checks import check_one_of

__all__ = ["FORMATS", "LabelState", "load_label_state", "write_query"]

FORMATS = ("csv", "json", "label_studio")


class LabelState:
    """The datamodule's label state found in a loaded checkpoint, as a validated :class:`LabelLedger` with its ids.

    Args:
        source: where the checkpoint came from, for messages.
        path: the checkpoint's file, if it came from one (an export there is refused).

    Examples:
        >>> from torch.utils.data import TensorDataset
        >>> from lightning_bal import ActiveDataModule
        >>> dm = ActiveDataModule(TensorDataset(torch.zeros(4, 1)), ids=["a", "b", "c", "d"], seed=0)
        >>> dm.query([2], new_step=True)
        >>> state = LabelState({"ActiveDataModule": dm.state_dict()})
        >>> state.pending_ids(), state.ledger.step
        (['c'], 1)
        >>> state.answer(["c"], [1], {1}, "answers").labelled.tolist()
        [2]
    """

    def __init__(self, checkpoint: dict[str, Any], source: str = "the checkpoint", path: Path | None = None) -> None:
        key, ledger, ids, callback_state = find_label_entries(checkpoint, source)
        self.checkpoint = checkpoint
        self.key = key
        self.ledger = ledger
        self.ids = ids
        self.callback_state: dict[str, Any] = callback_state
        self.path = path

    @property
    def annotator_state(self) -> dict[str, Any]:
        """What the callback's annotator recorded about the pending query (scores, model guesses)."""
        return dict(self.callback_state.get("annotator") or {})

    def pending_ids(self) -> list[ItemId]:
        """Ids of the pending query, in query order."""
        return [self.ids[i] for i in self.ledger.pending_query]

    def check_class_names(self, names: list[str], flag: str = "--labels") -> list[str]:
        """``names`` if they name every class of the model once, in class order (and each class it guessed)."""
        guesses = self.annotator_state.get("predictions") or {}
        guessed = 1 + max((int(guess[0]) for guess in guesses.values()), default=-1)
        classes = self.ledger.num_classes
        if (classes is not None and len(names) != classes) or len(names) < guessed:
            raise ValueError(
                f"Expected `{flag}` to name every class of the model ({classes or f'at least {guessed}'}), in class"
                f" order, but got {len(names)} names: {names}."
            )
        return names

    def status(self, path: str | Path | None = None) -> dict[str, Any]:
        """Sizes, step, pending query, query file, label budget left and the next command (naming ``path``)."""
        history = self.callback_state.get("history") or []
        recorded = self.annotator_state
        budget = recorded.get("label_budget")
        # Queried items not yet answered are labels already bought (as the callback counts them).
        left = None if budget is None else max(0, budget - self.ledger.num_labelled - len(self.ledger.pending_query))
        where = path if path is not None else self.path
        return {
            "items": len(self.ledger),
            "labelled": self.ledger.num_labelled,
            "pool": self.ledger.num_pool,
            "step": self.ledger.step,
            "annotated": len(self.ledger.annotations),
            "pending": len(self.ledger.pending_query),
            "pending_ids": self.pending_ids(),
            "steps_done": self.callback_state.get("steps_done"),
            "last_metrics": dict(history[-1]) if history else {},
            "query_file": recorded.get("query_file"),
            "label_budget": budget,
            "budget_left": left,
            "corrections": len(self.history),
            "agreement": [dict(row) for row in self.annotator_state.get("agreement") or []],
            "next": next_command(
                "CKPT" if where is None else str(where),
                bool(self.ledger.pending_query),
                recorded.get("query_file"),
                recorded.get("label_names"),
            ),
        }

    def export(
        self, path: str | Path, format: Literal["csv", "json", "label_studio"] | None = None, **label_studio: Any
    ) -> Path:
        """Write the pending query to ``path`` (format from the suffix unless given; Label Studio: see kwargs)."""
        path = Path(path)
        if self.path is not None and path.resolve() == self.path.resolve():
            raise ValueError(
                f"Expected argument `path` (the output) to be another file than the checkpoint, but got {str(path)!r}:"
                " writing the query there would destroy the checkpoint."
            )
        format = check_one_of("format", format or ("csv" if path.suffix.lower() == ".csv" else "json"), FORMATS)
        if format != "label_studio" and path.suffix.lower() != f".{format}":
            raise ValueError(
                f"Expected argument `path` to end in `.{format}` for format {format!r}, but got {str(path)!r}."
            )
        return write_query(path, format, self.ledger, self.ids, self.annotator_state, **label_studio)

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every label changed after it was given, oldest first.

        Each entry: ``id``, ``step`` (when the item was labelled), ``label`` (before), ``new`` (``None``: unlabelled),
        ``source``, ``by``, ``updated_at`` (Label Studio's time of the change) and ``recorded_at``.
        """
        return list(self.annotator_state.get("corrections") or [])

    def _changed_here_since(self, item: str, when: str | None) -> bool:
        """Whether the team changed ``item`` on the command line after the answer's time (unknown: yes)."""
        local = [
            row for row in self.history if row["id"] == item and str(row.get("source")).startswith("lightning-bal")
        ]
        if not local:
            return False
        answered, changed = recorded_time(when), recorded_time(local[-1].get("recorded_at"))
        return answered is None or changed is None or changed >= answered

    def _check_known(self, ids: list[str], source: str) -> dict[str, int]:
        lookup = id_lookup(self.ids)
        unknown = [item for item in ids if item not in lookup]
        if unknown:
            raise ValueError(
                f"Expected ids of items of the checkpoint's dataset, but {source} has unknown ids {some_ids(unknown)}"
                " (answers from another project or dataset?)."
            )
        repeated = sorted({item for item in ids if ids.count(item) > 1})
        if repeated:
            raise ValueError(f"Expected each id once, but {source} has ids {some_ids(repeated)} more than once.")
        return lookup

    def answer(
        self,
        ids: list[str],
        labels: list[int | float],
        steps: set[int],
        source: str,
        authors: list[str | None] | None = None,
        times: list[str | None] | None = None,
    ) -> Imported:
        """Validate answers and record them, all or nothing: new answers label pending items, changed ones correct.

        Repeated answers are skipped, and a label changed here later (``relabel``/``unlabel``) wins over the answer
        (docs/annotators.md#one-project-for-the-whole-run).
        """
        later = sorted(step for step in steps if step > self.ledger.step)
        if later:
            raise ValueError(
                f"Expected answers to the queries up to the checkpoint's step {self.ledger.step}, but {source} answers"
                f" step(s) {later}: it belongs to another run, or to a later checkpoint of this one."
            )
        lookup = self._check_known(ids, source)
        values = self.ledger.check_labels(labels, len(ids))
        authors = [None] * len(ids) if authors is None else authors
        times = [None] * len(ids) if times is None else times
        pending = set(self.ledger.pending_query)
        new: list[int] = []
        fixes: list[int] = []
        kept: list[str] = []
        given: list[str] = []
        stray: list[str] = []
        unchanged = 0
        for position, item in enumerate(ids):
            index = lookup[item]
            if index in pending:
                new.append(position)
            elif self.ledger.acquired_at[index] < 0:
                # Returned to the pool by `unlabel` after it was answered: the answer stays out.
                (kept if self._changed_here_since(item, None) else stray).append(item)
            elif index not in self.ledger.annotations:
                given.append(item)
            elif same_label(self.ledger.annotations[index], values[position]):
                unchanged += 1
            elif self._changed_here_since(item, times[position]):
                kept.append(item)
            else:
                fixes.append(position)
        if given:
            raise ValueError(
                f"Expected answers for items queried from annotators, but {source} answers ids {some_ids(given)}"
                " that are already labelled from the dataset (initial labels); correct those with"
                " `lightning-bal relabel`. Nothing was imported."
            )
        if stray:
            raise ValueError(
                f"Expected answers for the pending query only, but {source} answers ids {some_ids(stray)}, which were"
                f" not queried (pending: {some_ids(self.pending_ids())}); nothing was imported."
            )
        self.ledger.check_shapes_kept([lookup[ids[p]] for p in fixes], [values[p] for p in fixes])
        labelled = self.ledger.answer([lookup[ids[p]] for p in new], [values[p] for p in new])
        self._relabel([(ids[p], values[p], authors[p], times[p]) for p in fixes], source)
        return Imported(labelled, [ids[p] for p in fixes], unchanged, kept)

    def _relabel(self, changes: Sequence[tuple[str, int | float | None, str | None, str | None]], source: str) -> None:
        """Apply validated changes ``(id, label, by, when)`` (label ``None``: back to the pool), each in the history."""
        lookup = id_lookup(self.ids)
        recorded = utc_now()
        rows = [
            {
                "id": item,
                "step": int(self.ledger.acquired_at[lookup[item]]),
                "label": self.ledger.annotations.get(lookup[item]),
                "new": label,
                "source": source,
                "by": author,
                "updated_at": time,
                "recorded_at": recorded,
            }
            for item, label, author, time in changes
        ]
        relabelled = [(lookup[item], label) for item, label, _, _ in changes if label is not None]
        if relabelled:
            self.ledger.relabel([i for i, _ in relabelled], [label for _, label in relabelled])
        removed = [lookup[item] for item, label, _, _ in changes if label is None]
        if removed:
            self.ledger.unlabel(removed)
        if rows:
            annotator = self.annotator_state
            self.callback_state["annotator"] = {**annotator, "corrections": [*self.history, *rows]}

    @property
    def answers(self) -> list[dict[str, Any]]:
        """Every annotator's answer brought in, reconciled or not, oldest first.

        Each entry: ``id``, ``step`` (of the task, else of the item's label), ``by``, ``label``, ``time`` (the
        answer's), ``annotation`` (Label Studio's id) and ``source``.
        """
        return list(self.annotator_state.get("answers") or [])

    def check_answers(self, answers: Sequence[AnnotatorAnswer], source: str) -> None:
        """Refuse answers of unknown items, or with labels the task does not take, before anything is recorded."""
        self._check_known(sorted({answer.id for answer in answers}), source)
        self.ledger.check_labels([answer.label for answer in answers], len(answers))

    def record_answers(self, answers: Sequence[AnnotatorAnswer], source: str) -> int:
        """Keep every answer once (checked as by :meth:`check_answers`) and the agreement of each step; the number new.

        The agreement of a step is Cohen's kappa where two annotators answered it, Fleiss' kappa where more did (or
        answers name no annotator), over the items answered more than once (docs/annotators.md#several-annotators-
        per-item).
        """
        self.check_answers(answers, source)
        lookup = id_lookup(self.ids)
        rows = self.answers
        known = {answer_key(row) for row in rows}
        added = 0
        for answer in answers:
            step = answer.step
            if step is None:
                labelled_at = int(self.ledger.acquired_at[lookup[answer.id]])
                step = labelled_at if labelled_at >= 0 else self.ledger.step
            row = {**answer._asdict(), "step": step, "source": source}
            if answer_key(row) not in known:
                known.add(answer_key(row))
                rows.append(row)
                added += 1
        if added:
            self.callback_state["annotator"] = {
                **self.annotator_state,
                "answers": rows,
                "agreement": agreement_by_step(rows),
            }
        return added

    def requeue(self, ids: Sequence[str], times: dict[str, str | None], source: str) -> list[str]:
        """Send labelled items of ``ids`` back to the pending query (their answers now disagree); the ids sent back.

        Pending items stay pending; a label changed here after the item's latest answer (``times``) stays, and so do
        initial labels (docs/annotators.md#several-annotators-per-item).
        """
        lookup = self._check_known(list(ids), source)
        back = [
            item
            for item in ids
            if lookup[item] in self.ledger.annotations
            and lookup[item] not in self.ledger.pending_query
            and not self._changed_here_since(item, times.get(item))
        ]
        self._relabel([(item, None, None, times.get(item)) for item in back], f"{source} (answers disagree)")
        if back:
            self.ledger.query([*self.ledger.pending_query, *(lookup[item] for item in back)])
        return back

    def _check_labelled(self, ids: list[str], source: str) -> dict[str, int]:
        lookup = self._check_known(ids, source)
        pool = [item for item in ids if self.ledger.acquired_at[lookup[item]] < 0]
        if pool:
            pending = set(self.ledger.pending_query)
            queried = [item for item in pool if lookup[item] in pending]
            raise ValueError(
                f"Expected ids of labelled items, but {source} names ids {some_ids(pool)} that are in the pool"
                f"{' (pending: answer them with `lightning-bal import`)' if queried else ''}; nothing was changed."
            )
        return lookup

    def relabel(self, ids: list[str], labels: list[Any], by: str | None = None) -> list[ItemId]:
        """Correct the labels of labelled items by id, all or nothing; each change is kept in :attr:`history`.

        Returns the ids whose label changed (an id given its current label is left as it is).
        """
        source = "lightning-bal relabel"
        lookup = self._check_labelled(ids, source)
        values = self.ledger.check_labels(labels, len(ids))
        by = by or login_name()
        changes = [
            (item, value, by, None)
            for item, value in zip(ids, values, strict=True)
            if not same_label(self.ledger.annotations.get(lookup[item]), value)
        ]
        self._relabel(changes, source)
        return [change[0] for change in changes]

    def unlabel(self, ids: list[str], by: str | None = None) -> None:
        """Return labelled items to the pool by id, all or nothing; each is kept in :attr:`history`."""
        source = "lightning-bal unlabel"
        self._check_labelled(ids, source)
        self._relabel([(item, None, by or login_name(), None) for item in ids], source)

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint with the (changed) label state, atomically: a crash leaves the old file whole."""
        path = Path(path)
        # The entries the ledger writes only sometimes go first: kept, the last structured or tensor label unlabelled
        # would leave its fields behind, which the next load refuses.
        saved = {key: value for key, value in self.checkpoint[self.key].items() if key not in OPTIONAL_STATE_KEYS}
        self.checkpoint[self.key] = {**saved, **self.ledger.state_dict()}
        temporary = temporary_path(path)
        try:
            torch.save(self.checkpoint, temporary)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        write_status(path, self.status(), self.annotator_state.get("label_names"))
        return path


def write_query(
    path: Path, format: str, ledger: LabelLedger, ids: Sequence[ItemId], recorded: dict[str, Any], **kwargs: Any
) -> Path:
    """Write the ledger's pending query with the ``recorded`` scores and guesses of its items (Label Studio: kwargs)."""
    queried = [ids[i] for i in ledger.pending_query]
    scores, predictions = recorded_guesses(recorded, queried)
    if format != "label_studio":
        return write_queries(path, ledger.pending_query, ledger.step, queried, scores)
    if kwargs.get("label_names") is None:
        predictions = None  # Label Studio shows a guess by its class name
    return write_label_studio_tasks(path, queried, ledger.step, scores=scores, predictions=predictions, **kwargs)


def load_label_state(path: str | Path) -> LabelState:
    """Load a checkpoint (``weights_only=True``) and find its label state (used in :func:`import_answers`'s example)."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a torn file
        raise ValueError(f"Expected {str(path)!r} to be a readable checkpoint, but loading failed: {err}") from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"Expected {str(path)!r} to hold a checkpoint dict, but got {type(checkpoint).__name__}.")
    return LabelState(checkpoint, repr(str(path)), path)
