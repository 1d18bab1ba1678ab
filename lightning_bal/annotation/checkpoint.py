"""The label state inside a Lightning checkpoint: read it, export its pending query, import answers into it.

These work on the checkpoint file alone (no dataset, no model), so a labelling team can run them from the command
line (``lightning-bal``) while the run is stopped between rounds.
"""

from __future__ import annotations

import json
import os
from numbers import Real
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from lightning_bal.annotation.label_studio import read_label_studio_export, write_label_studio_tasks
from lightning_bal.data.ids import ItemId, check_ids, id_lookup
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.data.queries import read_answers, read_text, write_queries

__all__ = ["LabelState", "answers_format", "import_answers", "load_label_state", "temporary_path"]

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
        >>> state.answer(["c"], [1], {1}, "answers").tolist()
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

    def status(self) -> dict[str, Any]:
        """Sizes, step and pending query, as plain values."""
        history = self.callback_state.get("history") or []
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
        }

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

    def answer(self, ids: list[str], labels: list[int | float], steps: set[int], source: str) -> Tensor:
        """Validate answers (ids known and pending, step current, labels valid) and record them; all or nothing."""
        stale = sorted(steps - {self.ledger.step})
        if stale:
            raise ValueError(
                f"Expected answers to the query of step {self.ledger.step}, but {source} answers step(s) {stale}: it"
                " is stale (an older query) or belongs to another run. Export the pending query again."
            )
        lookup = id_lookup(self.ids)
        unknown = [item for item in ids if item not in lookup]
        if unknown:
            raise ValueError(
                f"Expected ids of items of the checkpoint's dataset, but {source} has unknown ids {unknown[:5]}"
                f"{' ...' if len(unknown) > 5 else ''} (answers from another project or dataset?)."
            )
        # The ledger names dataset positions; the team knows its items by id, so say here which ids are off.
        pending = set(self.ledger.pending_query)
        labelled = [item for item in ids if lookup[item] not in pending and self.ledger.acquired_at[lookup[item]] >= 0]
        if labelled:
            raise ValueError(
                f"Expected answers for items still pending, but {source} answers ids {_some(labelled)} that are"
                " already labelled (this file, or one like it, was imported before?); nothing was imported."
            )
        stray = [item for item in ids if lookup[item] not in pending]
        if stray:
            raise ValueError(
                f"Expected answers for the pending query only, but {source} answers ids {_some(stray)}, which were"
                f" not queried (pending: {_some(self.pending_ids())}); nothing was imported."
            )
        return self.ledger.answer([lookup[item] for item in ids], labels)

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
) -> tuple[list[str], list[int | float], set[int]]:
    """Answers of a query file (CSV/JSON) or a Label Studio export (needs ``label_map``), as ids, labels, steps."""
    path = Path(path)
    format = answers_format(path, format, label_map)
    if format == "label_studio":
        if label_map is None:
            raise ValueError(
                f"Expected argument `label_map` (class names to indices) to read the Label Studio export"
                f" {str(path)!r}, but got None."
            )
        studio = read_label_studio_export(path, label_map, on_disagreement=on_disagreement)
        return studio.ids, studio.labels, studio.steps
    answers = read_answers(path, format)
    return answers.ids, answers.labels, answers.steps


def import_answers(
    checkpoint: str | Path,
    answers: str | Path,
    output: str | Path | None = None,
    format: Literal["csv", "json", "label_studio"] | None = None,
    label_map: dict[str, int] | None = None,
    on_disagreement: Literal["first", "skip", "error"] = "first",
) -> Tensor:
    r"""Record the answers of ``answers`` in the checkpoint's label state and write it back (to ``output``).

    Every answer is checked first (known id, pending, current step, label valid for the task); on any error nothing
    is written. The checkpoint is replaced atomically. Resume with ``trainer.fit(..., ckpt_path=checkpoint)``.
    Returns the dataset indices labelled.

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
    if output is not None and Path(output).resolve() == Path(answers).resolve():
        raise ValueError(
            f"Expected argument `output` to be another file than the answers, but got {str(output)!r} for both."
        )
    state = load_label_state(checkpoint)
    ids, labels, steps = _read_answers_file(answers, format, label_map, on_disagreement)
    labelled = state.answer(ids, labels, steps, repr(str(answers)))
    state.save(output or checkpoint)
    return labelled
