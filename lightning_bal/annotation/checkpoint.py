"""The label state inside a Lightning checkpoint: read it, export its pending query, import answers into it.

These work on the checkpoint file alone (no dataset, no model), so a labelling team can run them from the command
line (``lightning-bal``) while the run is stopped between rounds.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from numbers import Real
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from lightning_bal.annotation.label_studio import read_label_studio_export, write_label_studio_tasks
from lightning_bal.data.ids import ItemId, check_ids, id_lookup
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.data.queries import read_answers, read_text, write_queries

__all__ = [
    "Imported",
    "LabelState",
    "answers_format",
    "bring_in_answers",
    "import_answers",
    "load_label_state",
    "temporary_path",
]

CALLBACK_KEY = "ActiveLearningCallback"
_FORMATS = ("csv", "json", "label_studio")


def temporary_path(path: str | Path) -> Path:
    """Where :meth:`LabelState.save` writes before it replaces ``path``: one fixed name per checkpoint.

    The name is fixed so that a write killed half-way (SIGKILL, power loss) leaves no litter: the next write of the
    same checkpoint starts by truncating the same file.

    Example:
        >>> temporary_path("runs/annotation-step001.ckpt").as_posix()
        'runs/.annotation-step001.ckpt.lbal-tmp'
    """
    path = Path(path)
    return path.with_name(f".{path.name}.lbal-tmp")


def _some(ids: list[Any], limit: int = 5) -> str:
    return f"{ids[:limit]}{' ...' if len(ids) > limit else ''}"


def _mapping(value: Any, entry: str, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"Expected the entry `{entry}` of {source} to be a dict, but got {type(value).__name__}.")
    return value


def _check_recorded(annotator: dict[str, Any], source: str) -> None:
    # The exports read these by id; a malformed entry would end in a traceback half-way through writing.
    entry = f"callbacks.{CALLBACK_KEY}.annotator"
    for item, score in _mapping(annotator.get("scores"), f"{entry}.scores", source).items():
        if isinstance(score, bool) or not isinstance(score, Real):
            raise ValueError(
                f"Expected every score in the entry `{entry}.scores` of {source} to be a number, but {item!r} has"
                f" {score!r}."
            )
    corrections = annotator.get("corrections") or []
    if not isinstance(corrections, list) or not all(
        isinstance(row, dict) and isinstance(row.get("id"), str) for row in corrections
    ):
        raise ValueError(
            f"Expected the entry `{entry}.corrections` of {source} to be a list of dicts with an `id`, but got"
            f" {corrections!r}."
        )
    query = annotator.get("query_file")
    if query is not None and not isinstance(query, str):
        raise ValueError(f"Expected the entry `{entry}.query_file` of {source} to be a path, but got {query!r}.")
    names = annotator.get("label_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(name, str) for name in names)):
        raise ValueError(
            f"Expected the entry `{entry}.label_names` of {source} to be a list of names, but got {names!r}."
        )
    budget = annotator.get("label_budget")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise ValueError(
            f"Expected the entry `{entry}.label_budget` of {source} to be a positive integer, but got {budget!r}."
        )
    for item, guess in _mapping(annotator.get("predictions"), f"{entry}.predictions", source).items():
        if (
            not isinstance(guess, (list, tuple))
            or len(guess) != 2
            or isinstance(guess[0], bool)
            or not isinstance(guess[0], int)
            or guess[0] < 0
            or not isinstance(guess[1], Real)
        ):
            raise ValueError(
                f"Expected every guess in the entry `{entry}.predictions` of {source} to be [class, probability],"
                f" but {item!r} has {guess!r}."
            )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _when(text: Any) -> datetime | None:
    """A recorded time as an aware datetime (Label Studio's ``...Z`` included; a time without zone is UTC)."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None  # an unreadable time is treated as unknown
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None  # no login name in this environment (a container without a passwd entry)


class Imported(NamedTuple):
    """What an import did.

    Attributes:
        labelled: dataset indices of the pending items now labelled.
        corrected: ids whose earlier answer changed (recorded in the history).
        unchanged: how many answers were in the checkpoint already, with the same label (an earlier round's).
        kept: ids whose answer differs from the checkpoint but was changed here later (``lightning-bal relabel`` or
            ``unlabel``): the checkpoint's label is kept.
    """

    labelled: Tensor
    corrected: list[str]
    unchanged: int
    kept: list[str]


class LabelState:
    """The datamodule's label state found in a checkpoint, as a validated :class:`LabelLedger` with its ids.

    Args:
        checkpoint: a loaded Lightning checkpoint (a dict).
        source: where it came from, for messages.
        path: the checkpoint's file, if it came from one (an export there is refused).

    Example:
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
        keys = [
            key
            for key, value in checkpoint.items()
            if isinstance(value, dict) and {"acquired_at", "step", "pending_query"} <= set(value)
        ]
        if len(keys) != 1:
            raise ValueError(
                f"Expected {source} to hold the state of one `ActiveDataModule`, but found {len(keys)}"
                f" (top-level keys: {sorted(checkpoint)})."
            )
        key = keys[0]
        state = checkpoint[key]
        acquired_at = state["acquired_at"]
        if not isinstance(acquired_at, Tensor) or acquired_at.dim() != 1:
            raise ValueError(
                f"Expected the entry `{key}.acquired_at` of {source} to be a 1-D tensor, but got"
                f" {tuple(acquired_at.shape) if isinstance(acquired_at, Tensor) else type(acquired_at).__name__}."
            )
        size = int(acquired_at.numel())
        ledger = LabelLedger(size, state.get("task"), state.get("num_classes"))
        ledger.load_state_dict(state)
        saved = state.get("ids")
        ids: list[ItemId] = list(range(size)) if saved is None else check_ids(f"{key}.ids", saved, size)
        callbacks = _mapping(checkpoint.get("callbacks"), "callbacks", source)
        callback_state = _mapping(callbacks.get(CALLBACK_KEY), f"callbacks.{CALLBACK_KEY}", source)
        annotator = _mapping(callback_state.get("annotator"), f"callbacks.{CALLBACK_KEY}.annotator", source)
        _check_recorded(annotator, source)
        history = callback_state.get("history") or []
        if not isinstance(history, list) or not all(isinstance(entry, dict) for entry in history):
            raise ValueError(
                f"Expected the entry `callbacks.{CALLBACK_KEY}.history` of {source} to be a list of dicts, but got"
                f" {history!r}."
            )
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
        """Sizes, step, pending query, where the query file is, the label budget left and the next command.

        Args:
            path: the checkpoint's file as the user named it (for the next command; default: where it was loaded).
        """
        history = self.callback_state.get("history") or []
        recorded = self.annotator_state
        budget = recorded.get("label_budget")
        # Queried items not yet answered are labels already bought (as the callback counts them).
        left = None if budget is None else max(0, budget - self.ledger.num_labelled - len(self.ledger.pending_query))
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
            "next": self._next_command(path if path is not None else self.path),
        }

    def _next_command(self, path: str | Path | None) -> str:
        checkpoint = "CKPT" if path is None else str(path)
        if not self.ledger.pending_query:
            return f"resume training on the answers: trainer.fit(model, datamodule=dm, ckpt_path={checkpoint!r})"
        names = self.annotator_state.get("label_names")
        query = self.annotator_state.get("query_file")
        if query is not None and query.endswith(".json") and names:
            return (
                f"import the tasks {query} into the Label Studio project, label them, export the project as JSON,"
                f" then: lightning-bal import {checkpoint} EXPORT.json --labels {','.join(names)}"
            )
        where = f"the query file {query}" if query is not None else f"`lightning-bal export {checkpoint} QUERY.csv`"
        return f"fill in the labels of {where}, then: lightning-bal import {checkpoint} ANSWERS"

    def export(
        self,
        path: str | Path,
        format: Literal["csv", "json", "label_studio"] | None = None,
        **label_studio: Any,
    ) -> Path:
        """Write the pending query to ``path`` (format from the suffix unless given; Label Studio: see kwargs)."""
        path = Path(path)
        if self.path is not None and path.resolve() == self.path.resolve():
            raise ValueError(
                f"Expected argument `path` (the output) to be another file than the checkpoint, but got {str(path)!r}:"
                " writing the query there would destroy the checkpoint."
            )
        format = format or ("csv" if path.suffix.lower() == ".csv" else "json")
        ids = self.pending_ids()
        recorded = self.annotator_state
        scores = [recorded.get("scores", {}).get(str(i)) for i in ids]
        if format == "label_studio":
            guesses = recorded.get("predictions", {})
            predictions = None
            if label_studio.get("label_names") is not None and all(str(i) in guesses for i in ids):
                predictions = [tuple(guesses[str(i)]) for i in ids]
            return write_label_studio_tasks(
                path, ids, self.ledger.step, scores=scores, predictions=predictions, **label_studio
            )
        if format not in ("csv", "json"):
            raise ValueError(f"Expected argument `format` to be 'csv', 'json' or 'label_studio', but got {format!r}.")
        if path.suffix.lower() != f".{format}":
            raise ValueError(
                f"Expected argument `path` to end in `.{format}` for format {format!r}, but got {str(path)!r}."
            )
        return write_queries(path, self.ledger.pending_query, self.ledger.step, ids, scores)

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every label changed after it was given: the earlier label, the new one (``None``: unlabelled), by whom, when.

        Each entry: ``id``, ``step`` (when the item was labelled), ``label`` (before), ``new``, ``source`` (the file,
        or the command), ``by`` (the annotator or the user), ``updated_at`` (Label Studio's time of the change, if
        known) and ``recorded_at`` (when it came into the checkpoint).
        """
        return list(self.annotator_state.get("corrections") or [])

    def _changed_here_since(self, item: str, when: str | None) -> bool:
        """Whether the team changed ``item`` on the command line after the answer's time (unknown: yes)."""
        local = [
            row for row in self.history if row["id"] == item and str(row.get("source")).startswith("lightning-bal")
        ]
        if not local:
            return False
        answered, changed = _when(when), _when(local[-1].get("recorded_at"))
        return answered is None or changed is None or changed >= answered

    def _check_known(self, ids: list[str], source: str) -> dict[str, int]:
        lookup = id_lookup(self.ids)
        unknown = [item for item in ids if item not in lookup]
        if unknown:
            raise ValueError(
                f"Expected ids of items of the checkpoint's dataset, but {source} has unknown ids {_some(unknown)}"
                " (answers from another project or dataset?)."
            )
        repeated = sorted({item for item in ids if ids.count(item) > 1})
        if repeated:
            raise ValueError(f"Expected each id once, but {source} has ids {_some(repeated)} more than once.")
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

        An answer to an item labelled by an earlier import with the same label is counted and skipped (a whole
        project's export holds every round). One with another label is a correction: the item is relabelled and
        the earlier label kept in :attr:`history`, with ``authors`` and ``times`` (Label Studio's). An answer that
        differs from a label changed here later (``relabel``/``unlabel``) is skipped: the later change wins.
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
            elif self.ledger.annotations[index] == values[position]:
                unchanged += 1
            elif self._changed_here_since(item, times[position]):
                kept.append(item)
            else:
                fixes.append(position)
        if given:
            raise ValueError(
                f"Expected answers for items queried from annotators, but {source} answers ids {_some(given)} that are"
                " already labelled from the dataset (initial labels); correct those with `lightning-bal relabel`."
                " Nothing was imported."
            )
        if stray:
            raise ValueError(
                f"Expected answers for the pending query only, but {source} answers ids {_some(stray)}, which were"
                f" not queried (pending: {_some(self.pending_ids())}); nothing was imported."
            )
        labelled = self.ledger.answer([lookup[ids[p]] for p in new], [values[p] for p in new])
        self._relabel(
            [(ids[p], values[p]) for p in fixes], source, [authors[p] for p in fixes], [times[p] for p in fixes]
        )
        return Imported(labelled, [ids[p] for p in fixes], unchanged, kept)

    def _relabel(
        self,
        changes: Sequence[tuple[str, int | float | None]],
        source: str,
        authors: list[str | None],
        times: list[str | None],
    ) -> None:
        """Apply validated changes (``None``: back to the pool) and record each in the history."""
        lookup = id_lookup(self.ids)
        recorded = _now()
        rows = []
        for (item, label), author, time in zip(changes, authors, times, strict=True):
            index = lookup[item]
            rows.append(
                {
                    "id": item,
                    "step": int(self.ledger.acquired_at[index]),
                    "label": self.ledger.annotations.get(index),
                    "new": label,
                    "source": source,
                    "by": author,
                    "updated_at": time,
                    "recorded_at": recorded,
                }
            )
        relabelled = [(lookup[item], label) for item, label in changes if label is not None]
        if relabelled:
            self.ledger.relabel([i for i, _ in relabelled], [label for _, label in relabelled])
        removed = [lookup[item] for item, label in changes if label is None]
        if removed:
            self.ledger.unlabel(removed)
        if rows:
            annotator = self.annotator_state
            self.callback_state["annotator"] = {**annotator, "corrections": [*self.history, *rows]}

    def _check_labelled(self, ids: list[str], source: str) -> dict[str, int]:
        lookup = self._check_known(ids, source)
        pool = [item for item in ids if self.ledger.acquired_at[lookup[item]] < 0]
        if pool:
            pending = set(self.ledger.pending_query)
            queried = [item for item in pool if lookup[item] in pending]
            raise ValueError(
                f"Expected ids of labelled items, but {source} names ids {_some(pool)} that are in the pool"
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
        changes = [
            (item, value)
            for item, value in zip(ids, values, strict=True)
            if self.ledger.annotations.get(lookup[item]) != value
        ]
        self._relabel(changes, source, [by or _user()] * len(changes), [None] * len(changes))
        return [item for item, _ in changes]

    def unlabel(self, ids: list[str], by: str | None = None) -> None:
        """Return labelled items to the pool by id, all or nothing; each is kept in :attr:`history`."""
        source = "lightning-bal unlabel"
        self._check_labelled(ids, source)
        self._relabel([(item, None) for item in ids], source, [by or _user()] * len(ids), [None] * len(ids))

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint with the (changed) label state, atomically: a crash leaves the old file whole."""
        path = Path(path)
        self.checkpoint[self.key] = {**self.checkpoint[self.key], **self.ledger.state_dict()}
        temporary = temporary_path(path)
        try:
            torch.save(self.checkpoint, temporary)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return path


def load_label_state(path: str | Path) -> LabelState:
    """Load a checkpoint (``weights_only=True``) and find its label state.

    Example:
        >>> import tempfile
        >>> from torch.utils.data import TensorDataset
        >>> from lightning_bal import ActiveDataModule
        >>> dm = ActiveDataModule(TensorDataset(torch.zeros(5, 1)), initial_labels=2, seed=0)
        >>> dm.query([int(dm.pool_indices[0])], new_step=True)
        >>> path = Path(tempfile.mkdtemp()) / "run.ckpt"
        >>> torch.save({"ActiveDataModule": dm.state_dict()}, path)
        >>> status = load_label_state(path).status()
        >>> status["items"], status["labelled"], status["step"], status["pending"]
        (5, 2, 1, 1)
    """
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a torn file
        raise ValueError(f"Expected {str(path)!r} to be a readable checkpoint, but loading failed: {err}") from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"Expected {str(path)!r} to hold a checkpoint dict, but got {type(checkpoint).__name__}.")
    return LabelState(checkpoint, repr(str(path)), path)


def _holds_label_studio_tasks(path: Path) -> bool:
    try:
        rows = json.loads(read_text(path))
    except (ValueError, OSError):
        return False  # the reader of the chosen format names what is wrong with the file
    return isinstance(rows, list) and any(isinstance(row, dict) and isinstance(row.get("data"), dict) for row in rows)


def answers_format(
    path: str | Path, format: str | None = None, label_map: dict[str, int] | None = None
) -> Literal["csv", "json", "label_studio"]:
    """The format to read an answers file in (``format`` if given, else guessed from the file).

    Without ``format``: CSV for a ``.csv`` file, else Label Studio for a JSON list of Label Studio tasks (or when a
    ``label_map`` is given), else JSON query rows.

    Example:
        >>> answers_format("answers.txt", "csv"), answers_format("answers.csv")
        ('csv', 'csv')
    """
    if format is not None:
        if format not in _FORMATS:
            raise ValueError(f"Expected argument `format` to be 'csv', 'json' or 'label_studio', but got {format!r}.")
        return format  # type: ignore[return-value]
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return "csv"
    return "label_studio" if label_map is not None or _holds_label_studio_tasks(path) else "json"


def _read_answers_file(
    path: str | Path,
    format: Literal["csv", "json", "label_studio"] | None = None,
    label_map: dict[str, int] | None = None,
    on_disagreement: Literal["first", "skip", "error"] = "first",
) -> tuple[list[str], list[int | float], set[int], list[str | None] | None, list[str | None] | None]:
    """Answers of a query file (CSV/JSON) or a Label Studio export (needs ``label_map``).

    Returns ids, labels, steps, and for Label Studio who gave and when they last changed each answer.
    """
    path = Path(path)
    format = answers_format(path, format, label_map)
    if format == "label_studio":
        if label_map is None:
            raise ValueError(
                f"Expected argument `label_map` (class names to indices) to read the Label Studio export"
                f" {str(path)!r}, but got None."
            )
        studio = read_label_studio_export(path, label_map, on_disagreement=on_disagreement)
        return studio.ids, studio.labels, studio.steps, studio.authors, studio.times
    answers = read_answers(path, format)
    return answers.ids, answers.labels, answers.steps, None, None


def bring_in_answers(
    checkpoint: str | Path,
    answers: str | Path,
    output: str | Path | None = None,
    format: Literal["csv", "json", "label_studio"] | None = None,
    label_map: dict[str, int] | None = None,
    on_disagreement: Literal["first", "skip", "error"] = "first",
    by: str | None = None,
) -> Imported:
    """:func:`import_answers`, returning what it did: labelled, corrected, unchanged and kept answers.

    ``by`` names who gave the answers that do not say it themselves (CSV and JSON rows), for the history.
    """
    if output is not None and Path(output).resolve() == Path(answers).resolve():
        raise ValueError(
            f"Expected argument `output` to be another file than the answers, but got {str(output)!r} for both."
        )
    state = load_label_state(checkpoint)
    ids, labels, steps, authors, times = _read_answers_file(answers, format, label_map, on_disagreement)
    authors = [by] * len(ids) if authors is None else [author or by for author in authors]
    imported = state.answer(ids, labels, steps, repr(str(answers)), authors, times)
    state.save(output or checkpoint)
    return imported


def import_answers(
    checkpoint: str | Path,
    answers: str | Path,
    output: str | Path | None = None,
    format: Literal["csv", "json", "label_studio"] | None = None,
    label_map: dict[str, int] | None = None,
    on_disagreement: Literal["first", "skip", "error"] = "first",
) -> Tensor:
    r"""Record the answers of ``answers`` in the checkpoint's label state and write it back (to ``output``).

    Every answer is checked first (known id, a query step of this checkpoint, label valid for the task); on any
    error nothing is written. Answers to pending items label them; answers already imported are skipped; a changed
    answer to an item labelled by an earlier import corrects it (see :meth:`LabelState.answer`), so the export of one
    Label Studio project can be imported after every round. The checkpoint is replaced atomically. Resume with
    ``trainer.fit(..., ckpt_path=checkpoint)``. Returns the dataset indices labelled.

    Example:
        >>> import tempfile
        >>> from torch.utils.data import TensorDataset
        >>> from lightning_bal import ActiveDataModule
        >>> dm = ActiveDataModule(TensorDataset(torch.zeros(5, 1)), ids=list("abcde"), task="classification",
        ...                       num_classes=2, seed=0)
        >>> dm.query([1, 3], new_step=True)
        >>> folder = Path(tempfile.mkdtemp())
        >>> torch.save({"ActiveDataModule": dm.state_dict()}, folder / "run.ckpt")
        >>> _ = (folder / "answers.csv").write_text("id,step,label\nd,1,1\n")
        >>> import_answers(folder / "run.ckpt", folder / "answers.csv").tolist()
        [3]
        >>> load_label_state(folder / "run.ckpt").pending_ids()
        ['b']
    """
    return bring_in_answers(checkpoint, answers, output, format, label_map, on_disagreement).labelled
