"""A checkpoint's label entries: what they must hold, who changed them and when, what an import did.

Torch-free, so that ``lightning-bal status`` can answer from the summary saved next to a checkpoint.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from datetime import datetime, timezone
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "CALLBACK_KEY",
    "Imported",
    "check_output",
    "check_recorded",
    "entry_mapping",
    "file_digest",
    "login_name",
    "next_command",
    "recorded_guesses",
    "recorded_time",
    "saved_status",
    "some_ids",
    "status_path",
    "temporary_path",
    "utc_now",
    "write_status",
]

CALLBACK_KEY = "ActiveLearningCallback"


def temporary_path(path: str | Path) -> Path:
    """Where :meth:`LabelState.save` writes before replacing ``path`` (a fixed name: a killed write leaves no mess)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lbal-tmp")


def status_path(path: str | Path) -> Path:
    """Where a checkpoint's status summary is kept (written with the checkpoint, read by ``lightning-bal status``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lbal-status.json")


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def next_command(checkpoint: str, pending: bool, query: str | None, names: list[str] | None) -> str:
    """What the team does next with the checkpoint (named ``checkpoint`` in the command)."""
    if not pending:
        return f"resume training on the answers: trainer.fit(model, datamodule=dm, ckpt_path={checkpoint!r})"
    if query is not None and query.endswith(".json") and names:
        return (
            f"import the tasks {query} into the Label Studio project, label them, export the project as JSON,"
            f" then: lightning-bal import {checkpoint} EXPORT.json --labels {','.join(names)}"
        )
    where = f"the query file {query}" if query is not None else f"`lightning-bal export {checkpoint} QUERY.csv`"
    return f"fill in the labels of {where}, then: lightning-bal import {checkpoint} ANSWERS"


def saved_status(path: str | Path) -> dict[str, Any] | None:
    """The status summary saved with the checkpoint at ``path``, or ``None`` if there is none or it is out of date.

    The summary names the checkpoint's SHA-256: a checkpoint written since by anything else is read in full instead.
    """
    try:
        summary = json.loads(status_path(path).read_text(encoding="utf-8"))
        digest = file_digest(Path(path))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("sha256") != digest or not isinstance(summary.get("status"), dict):
        return None
    status = summary["status"]
    names = summary.get("label_names")
    return {**status, "next": next_command(str(path), bool(status.get("pending")), status.get("query_file"), names)}


def check_output(output: str | Path | None) -> None:
    """Refuse an ``--output`` outside an existing folder before anything is read."""
    if output is not None and not Path(output).parent.is_dir():
        raise FileNotFoundError(
            f"Expected `--output` to be a file in an existing folder, but {str(Path(output).parent)!r} is not one."
        )


def recorded_guesses(
    recorded: dict[str, Any], ids: list[Any]
) -> tuple[list[float | None], list[tuple[int, float]] | None]:
    """The recorded scores of ``ids``, and the model's guesses for them (``None`` unless each has one)."""
    scores = [recorded.get("scores", {}).get(str(item)) for item in ids]
    guesses = recorded.get("predictions") or {}
    if not guesses or not all(str(item) in guesses for item in ids):
        return scores, None
    return scores, [tuple(guesses[str(item)]) for item in ids]


def write_status(path: Path, status: dict[str, Any], label_names: list[str] | None) -> None:
    """Write the summary :func:`saved_status` reads, atomically, after the checkpoint at ``path`` is written."""
    status = {key: value for key, value in status.items() if key != "next"}  # it names the path the user gives
    summary = {"sha256": file_digest(path), "status": status, "label_names": label_names}
    target = status_path(path)
    try:
        text = json.dumps(summary)
        exact = json.loads(text) == summary
    except (TypeError, ValueError):
        exact = False
    if not exact:
        # Figures JSON cannot hold as they are (a tensor, NaN, a tuple): status reads the checkpoint instead.
        target.unlink(missing_ok=True)
        return
    temporary = temporary_path(target)
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, target)


def some_ids(ids: list[Any], limit: int = 5) -> str:
    """The first ``limit`` of ``ids`` for a message, with `...` when there are more."""
    return f"{ids[:limit]}{' ...' if len(ids) > limit else ''}"


def entry_mapping(value: Any, entry: str, source: str) -> dict[str, Any]:
    """``value`` of the checkpoint ``entry`` as a dict (``None``: empty), or an error naming the entry."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"Expected the entry `{entry}` of {source} to be a dict, but got {type(value).__name__}.")
    return value


def check_recorded(annotator: dict[str, Any], source: str) -> None:
    """Check the annotator entry's scores, corrections, query file, names, budget and guesses before any use."""
    # The exports read these by id; a malformed entry would end in a traceback half-way through writing.
    entry = f"callbacks.{CALLBACK_KEY}.annotator"
    for item, score in entry_mapping(annotator.get("scores"), f"{entry}.scores", source).items():
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
    for item, guess in entry_mapping(annotator.get("predictions"), f"{entry}.predictions", source).items():
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


def utc_now() -> str:
    """The time of a change, for the history: UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def recorded_time(text: Any) -> datetime | None:
    """A recorded time as an aware datetime (Label Studio's ``...Z`` included; a time without zone is UTC)."""
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None  # an unreadable time is treated as unknown
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def login_name() -> str | None:
    """Who makes a change from the command line, for the history (``None`` where no login name exists)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None  # no login name in this environment (a container without a passwd entry)


class Imported(NamedTuple):
    """What an import did: dataset indices ``labelled``, ids ``corrected``, the count ``unchanged`` and ids ``kept``.

    ``kept`` answers differ from a label changed here later (``relabel``, ``unlabel``), which stays; ``requeued`` ids
    were labelled and went back to the pending query, their annotators' answers now undecided.
    """

    labelled: Tensor
    corrected: list[str]
    unchanged: int
    kept: list[str]
    requeued: tuple[str, ...] = ()
