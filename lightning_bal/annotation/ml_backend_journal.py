"""The ML backend's answers: the checkpoint and its answer journal kept in step, each answer settling its item's label.

An answer is appended to the journal before it is folded into the checkpoint; :class:`AnswerJournal` folds the
journal's answers the checkpoint lacks back in, and settles each item's label from all its annotators' answers
(``--on-disagreement``). Training and Label Studio's requests are
:class:`~lightning_bal.annotation.ml_backend.MLBackend`'s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning_bal.annotation.answers import AnswerFormat
from lightning_bal.annotation.checkpoint import LabelState, load_label_state
from lightning_bal.annotation.checkpoint_entries import (
    SERVE_KEY,
    journal_path,
    read_journal,
    serve_summary_path,
    temporary_path,
)
from lightning_bal.annotation.label_studio import (
    RECONCILIATIONS,
    AnnotatorAnswer,
    LabelStudioAnswers,
    check_data_key,
    reconcile,
)
from lightning_bal.annotation.label_studio_api import LabelStudioClient, check_label_config
from lightning_bal.annotation.ml_backend_checks import check_threshold
from lightning_bal.data.ids import id_lookup
from lightning_bal.utilities.checks import check_bool, check_one_of

__all__ = ["AnswerJournal"]

#: The one task whose runs serve takes: a single choice per item, read and guessed as a class index.
SERVED_TASK = "classification"


def _write_json(path: Path, value: Any) -> None:
    temporary = temporary_path(path)
    temporary.write_text(json.dumps(value), encoding="utf-8")
    os.replace(temporary, path)


class AnswerJournal:
    """The checkpoint and its answer journal behind ``lightning-bal serve``, with the backend's settings.

    It takes the arguments of :class:`~lightning_bal.annotation.ml_backend.MLBackend`, which adds training and Label
    Studio's requests to it.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        label_names: list[str],
        train: list[str],
        threshold: int = 1,
        client: LabelStudioClient | None = None,
        project: int | str | None = None,
        data_key: str = "image",
        data_prefix: str = "",
        from_name: str = "label",
        token_env: str | None = None,
        command: str | None = None,
        log: Callable[[str], None] | None = None,
        on_disagreement: str = "first",
        requeue_disagreements: bool = False,
    ) -> None:
        self.checkpoint = Path(checkpoint)
        self.on_disagreement = check_one_of("--on-disagreement", on_disagreement, RECONCILIATIONS)
        self.requeue_disagreements = check_bool("--requeue-disagreements", requeue_disagreements)
        self.threshold = check_threshold(threshold)
        self.train = list(train)
        self.data_key = check_data_key("--data-key", data_key)
        self.data_prefix = data_prefix
        self.from_name = from_name
        self.token_env = token_env
        self.command = command
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.journal = journal_path(self.checkpoint)
        self._lock = threading.RLock()
        self._pushing = threading.Lock()  # one push at a time, so that none sees the other's tasks missing
        self.state = load_label_state(self.checkpoint)
        task = self.state.ledger.task
        if task != SERVED_TASK:
            # Its answers and guesses are one class per item: any other run would take a class index as its label.
            raise ValueError(
                f"Expected `lightning-bal serve` to be given a checkpoint of a classification run (one class per"
                f" item), but {self.checkpoint} is of a {task} run: bring its answers in with `lightning-bal sync`"
                " or `lightning-bal import`, which read every answer type."
            )
        self.names = self.state.check_class_names(list(label_names))
        self.label_map = {name: index for index, name in enumerate(self.names)}
        self._reading = AnswerFormat("choice", self.label_map, from_name)
        self.client = client
        self.project_id: int | None = None
        if client is not None:
            if project is None:
                raise ValueError("Expected `--project` with `--url` (the project the new queries go to), but got None.")
            found = client.project(project)
            check_label_config(found["label_config"], self.names, self.data_key, from_name, SERVED_TASK)
            self.project_id = int(found["id"])
        self.training: subprocess.Popen[bytes] | None = None
        self.last_training: str | None = None
        # After a failed training, the journal's length then: the next one waits for a new answer (no retry loop).
        self.failed_at: int | None = None
        self.push_due = client is not None
        self._stopped = threading.Event()
        self._recover()

    # -- the journal and the checkpoint -------------------------------------------------------------------------

    @property
    def marker(self) -> dict[str, int]:
        """How far the checkpoint has folded the journal, the journal length at the last training, trainings done."""
        found = self.state.checkpoint.get(SERVE_KEY)
        found = found if isinstance(found, dict) else {}
        return {key: int(found.get(key, 0)) for key in ("journal", "trained", "trainings")}

    @property
    def model_version(self) -> str:
        """Changes with each training (and each new query step): Label Studio asks again for new predictions."""
        return f"lightning_bal-step{self.state.ledger.step}-{self.marker['trainings']}"

    def waiting(self) -> int:
        """Answers recorded since the last training started."""
        return len(read_journal(self.journal)) - self.marker["trained"]

    def _fold(self, state: LabelState, entries: list[dict[str, Any]]) -> list[str]:
        """Record journal ``entries`` in ``state`` one by one, in order; returns the refusals (kept in the journal)."""
        refused = []
        for entry in entries:
            try:
                answer = AnnotatorAnswer(
                    str(entry["id"]),
                    entry["step"],
                    entry.get("by"),
                    entry["label"],
                    entry.get("time"),
                    entry.get("annotation"),
                )
                self._settle(state, answer, entry.get("source") or "Label Studio")
            except (ValueError, TypeError, KeyError) as err:
                # The run moved on (e.g. a training returned the item to the pool): the answer stays in the journal.
                refused.append(f"{entry.get('id')!r}: {err}")
        return refused

    def _reload(self) -> LabelState:
        """The checkpoint as on disk, with the journal's answers it lacks (their write failed) folded in memory."""
        state = load_label_state(self.checkpoint)
        found = state.checkpoint.get(SERVE_KEY)
        folded = int(found.get("journal", 0)) if isinstance(found, dict) else 0
        self._fold(state, read_journal(self.journal)[folded:])
        return state

    def _save(self, marker: dict[str, int]) -> None:
        self.state.checkpoint[SERVE_KEY] = dict(marker)
        self.state.save(self.checkpoint)
        self.write_summary()

    def write_summary(self) -> None:
        """Write what ``lightning-bal status`` shows of the backend (journal, training, push), atomically."""
        marker = self.marker
        _write_json(
            serve_summary_path(self.checkpoint),
            {
                "journal": str(self.journal),
                "answers": len(read_journal(self.journal)),
                "folded": marker["journal"],
                "trained": marker["trained"],
                "trainings": marker["trainings"],
                "threshold": self.threshold,
                "model_version": self.model_version,
                "training": self.training is not None,
                "last_training": self.last_training,
                "push_due": self.push_due,
                "command": self.command,
            },
        )

    def _recover(self) -> None:
        """Fold the journal's answers the checkpoint lacks (a crash between the two writes), drop stale copies.

        Nothing else is written before the server listens: a refused start leaves the folder as it was.
        """
        for stale in self.checkpoint.parent.glob(f".{self.checkpoint.name}.lbal-train-*"):
            stale.unlink(missing_ok=True)
        entries = read_journal(self.journal)
        marker = self.marker
        if len(entries) > marker["journal"]:
            refused = self._fold(self.state, entries[marker["journal"] :])
            for line in refused:
                self.log(f"serve: a journal answer no longer fits the checkpoint and stays in the journal only: {line}")
            self._save({**marker, "journal": len(entries)})

    def _current_answers(self, state: LabelState, answer: AnnotatorAnswer) -> list[AnnotatorAnswer]:
        """Every annotator's answer now standing, oldest first, ``answer`` included.

        Those of its item, or of every item for Dawid-Skene (which estimates each annotator over all of them).
        """
        standing: dict[tuple[Any, ...], AnnotatorAnswer] = {}
        rows = [*state.answers, {**answer._asdict(), "source": None}]
        for number, row in enumerate(rows):
            item = str(row["id"])
            if self.on_disagreement != "dawid_skene" and item != answer.id:
                continue
            # An annotation updated in Label Studio replaces its earlier answer, in its place (``first`` stays first).
            if row.get("annotation") is not None:
                key: tuple[Any, ...] = (item, "annotation", row["annotation"])
            else:
                key = (item, "by", row["by"]) if row.get("by") is not None else (item, "row", number)
            standing[key] = AnnotatorAnswer(
                item, row.get("step"), row.get("by"), row["label"], row.get("time"), row.get("annotation")
            )
        return list(standing.values())

    def _settle(self, state: LabelState, answer: AnnotatorAnswer, source: str) -> str:
        """Record ``answer`` in ``state`` and settle its item's label from all its answers; returns what it did.

        Validated before anything changes: an unknown item, a label the task does not take, answers that disagree
        with ``--on-disagreement error``, or an answer :meth:`LabelState.answer` refuses leave ``state`` as it was.
        """
        state.check_answers([answer], source)
        if answer.step is not None and answer.step > state.ledger.step:
            raise ValueError(
                f"Expected answers to the queries up to the checkpoint's step {state.ledger.step}, but {source} answers"
                f" step(s) {[answer.step]}: it belongs to another run, or to a later checkpoint of this one."
            )
        item = answer.id
        standing = self._current_answers(state, answer)
        mine = [given for given in standing if given.id == item]
        labels = [int(given.label) for given in mine]
        if self.on_disagreement == "error" and len(set(labels)) > 1:
            raise ValueError(
                f"Expected the answers to {item!r} to agree (`--on-disagreement error`), but got"
                f" {[self.names[label] for label in labels]}."
            )
        reconciled = LabelStudioAnswers([], [], set(), [], [], [], [], standing, [])
        reconcile(reconciled, self.on_disagreement, len(self.names))
        decided = dict(zip(reconciled.ids, reconciled.labels, strict=True))
        index = id_lookup(state.ids)[item]
        pending = index in state.ledger.pending_query
        recorded = state.ledger.annotations.get(index)
        what = f"recorded; {item!r} stays pending (its answers {labels} leave it undecided)"
        steps = set() if answer.step is None else {answer.step}
        if item in decided and (pending or recorded is None or int(recorded) != int(decided[item])):
            done = state.answer([item], [int(decided[item])], steps, source, [answer.by], [answer.time])
            what = "kept (changed here later)" if done.kept else "corrected" if done.corrected else "labelled"
        elif item in decided:
            what = f"recorded; the label stays {self.names[int(decided[item])]!r} ({self.on_disagreement})"
        elif recorded is not None and not pending:
            back = state.requeue([item], {item: answer.time}, source) if self.requeue_disagreements else []
            what = "requeued (its answers disagree)" if back else "recorded; its answers disagree, the label stays"
        state.record_answers([answer], source)
        return what
