"""``lightning-bal serve``'s state: a stopped run's checkpoint, its answer journal and the training subprocess.

Label Studio calls ``/health``, ``/setup`` and ``/predict``, and posts its events to ``/webhook``
(docs/label_studio_sync.md#the-ml-backend-lightning-bal-serve). Predictions come from the guesses and scores the run
recorded with its query, so they never wait on training. Each answer is validated as ``import`` validates it,
appended to the journal next to the checkpoint (fsynced) and folded into the checkpoint, in that order: kept as an
annotator's answer (agreement per step as for ``sync``), the item's label being the reconciliation of all its answers
(``--on-disagreement``, the one of :func:`~lightning_bal.annotation.label_studio.read_label_studio_tasks`); when
``threshold`` answers have arrived since the last training, the user's training command runs in the background on a
copy of the checkpoint, and its new checkpoint, with the journal's later answers folded in again, replaces it.
The HTTP side is :mod:`lightning_bal.annotation.serve`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

from lightning_bal.annotation.agreement import answer_key
from lightning_bal.annotation.answers import read_answer
from lightning_bal.annotation.checkpoint import load_label_state
from lightning_bal.annotation.checkpoint_entries import read_journal, utc_now
from lightning_bal.annotation.label_studio import AnnotatorAnswer, annotation_author, check_task_step
from lightning_bal.annotation.label_studio_api import LabelStudioClient, check_label_config
from lightning_bal.annotation.ml_backend_journal import SERVED_TASK, AnswerJournal
from lightning_bal.annotation.sync import query_tasks
from lightning_bal.data.ids import ItemId

__all__ = ["ANSWER_EVENTS", "BadRequest", "MLBackend"]

#: The events that carry an answer; Label Studio sends its other events to the same URL (they are acknowledged).
ANSWER_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


class BadRequest(ValueError):
    """A request the backend refuses with HTTP 400 and this message; nothing was recorded."""


def _fsync_append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class MLBackend(AnswerJournal):
    """The state behind ``lightning-bal serve``: the checkpoint, its answer journal, the training subprocess.

    Args:
        checkpoint: the run's checkpoint, kept current in place (answers folded in, replaced after each training).
        label_names: the class names in class order (``--labels``).
        train: the training command's words, with ``{checkpoint}`` and ``{output}``
            (:func:`~lightning_bal.annotation.ml_backend_checks.check_train_command`).
        threshold: new answers since the last training that start the next one.
        client: Label Studio's API, to push each new query; ``project`` names the project.
        data_key, data_prefix, from_name: the tasks' data field, its prefix and the choices' control, as for ``sync``.
        token_env: the variable holding the token, left out of the training command's environment.
        on_disagreement: how the answers of several annotators to an item become its label, one of
            :data:`~lightning_bal.annotation.label_studio.RECONCILIATIONS` (``--on-disagreement``).
        requeue_disagreements: send a labelled item whose answers the reconciliation leaves undecided back to the
            pending query (``--requeue-disagreements``).
        command: the ``serve`` command line, shown by ``lightning-bal status`` as the one to run again.
        log: where progress lines go (never a token).
    """

    def record(
        self,
        item: str,
        label: int,
        step: int,
        by: str | None,
        when: str | None,
        event: str,
        annotation: int | str | None = None,
    ) -> str:
        """Validate one annotator's answer and record it: journal (fsynced), then checkpoint. Returns what it did.

        Every new answer is kept (:attr:`LabelState.answers`); the item's label is the reconciliation of all its
        answers by ``on_disagreement``, and a change of it is a correction. An answer already recorded (Label Studio
        sending the event again) changes nothing.
        """
        with self._lock:
            source = f"Label Studio project {self.project_id}" if self.project_id is not None else "Label Studio"
            answer = AnnotatorAnswer(item, step, by, label, when, annotation)
            key = answer_key(answer._asdict())
            same = [row for row in self.state.answers if str(row["id"]) == item]
            if annotation is not None:
                # An update of an annotation that leaves its answer as it was (a retry, another field edited).
                same = [row for row in same if row.get("annotation") == annotation][-1:]
                if same and same[0]["label"] == label:
                    return "unchanged"
            if any(answer_key(row) == key for row in same):
                return "unchanged"
            previous = len(self.state.ledger.pending_query)
            try:
                what = self._settle(self.state, answer, source)  # validates, all or nothing
            except BaseException:
                self.state = self._reload()  # memory back to what the files hold
                raise
            entry = {"id": item, "label": label, "step": step, "by": by, "time": when, "source": source}
            try:
                line = {**entry, "annotation": annotation, "event": event, "recorded_at": utc_now()}
                _fsync_append(self.journal, json.dumps(line))
            except BaseException:
                self.state = self._reload()
                raise
            entries = len(read_journal(self.journal))
            try:
                self._save({**self.marker, "journal": entries})
            except OSError as err:
                # The journal holds the answer; the next fold (restart or training) brings it into the checkpoint.
                self.log(f"serve: the checkpoint could not be written ({err}); the answer is kept in the journal.")
            if len(self.state.ledger.pending_query) > previous:
                self.push_due = self.client is not None  # a requeued item goes to the project again
        if what.startswith("recorded;") or what.startswith("requeued"):
            self.log(f"serve: {item!r} answered {self.names[label]!r} by {by}: {what}")
        self.maybe_train()
        return what

    # -- training -----------------------------------------------------------------------------------------------

    def maybe_train(self, force: bool = False) -> bool:
        """Start the training command if none runs and enough answers arrived (or ``force``); whether it started."""
        with self._lock:
            if self.training is not None or self._stopped.is_set():
                return False
            answers = len(read_journal(self.journal))
            if not force and (
                answers - self.marker["trained"] < self.threshold
                or (self.failed_at is not None and answers <= self.failed_at)
            ):
                return False
            token = uuid.uuid4().hex[:12]
            snapshot = self.checkpoint.with_name(f".{self.checkpoint.name}.lbal-train-{token}-in.ckpt")
            output = self.checkpoint.with_name(f".{self.checkpoint.name}.lbal-train-{token}-out.ckpt")
            shutil.copyfile(self.checkpoint, snapshot)
            start = self.marker["journal"]
            words = [
                word.replace("{checkpoint}", str(snapshot)).replace("{output}", str(output)) for word in self.train
            ]
            env = {key: value for key, value in os.environ.items() if key != self.token_env}
            log = self.checkpoint.with_name(f"{self.checkpoint.name}.train.log").open("ab")
            try:
                self.training = subprocess.Popen(words, stdout=log, stderr=subprocess.STDOUT, env=env)
            except OSError as err:
                snapshot.unlink(missing_ok=True)
                self.last_training = f"could not start: {err}"
                self.failed_at = answers
                self.log(f"serve: the training command could not start: {err}")
                return False
            finally:
                log.close()
            self.log(f"serve: training started on {start} answers (pid {self.training.pid}), log {log.name}")
            self.write_summary()
        threading.Thread(target=self._await, args=(self.training, snapshot, output, start), daemon=True).start()
        return True

    def _await(self, process: subprocess.Popen[bytes], snapshot: Path, output: Path, start: int) -> None:
        code = process.wait()
        with self._lock:
            self.training = None
            try:
                if code != 0 or not output.is_file():
                    problem = f"exit status {code}" if code != 0 else f"no checkpoint at {{output}} ({output})"
                    raise ValueError(f"the training command failed ({problem})")
                self._adopt(output, start)
            except (ValueError, OSError) as err:
                self.last_training = f"failed: {err}"
                self.failed_at = len(read_journal(self.journal))
                self.log(f"serve: {err}; every answer stays in {self.checkpoint} and the journal.")
                self.write_summary()
            finally:
                snapshot.unlink(missing_ok=True)
                output.unlink(missing_ok=True)
        if self._stopped.is_set():
            return
        self.push()
        self.maybe_train()

    def _adopt(self, output: Path, start: int) -> None:
        """Make the training's checkpoint the current one, with the journal's answers after ``start`` folded in."""
        trained = load_label_state(output)
        if trained.ids != self.state.ids:
            raise ValueError(f"the new checkpoint {output} holds other items than {self.checkpoint}")
        entries = read_journal(self.journal)
        refused = self._fold(trained, entries[start:])
        for line in refused:
            self.log(f"serve: an answer given during training no longer fits the new query (journal only): {line}")
        trainings = self.marker["trainings"] + 1
        self.state = trained
        self.last_training = f"done ({utc_now()})"
        self.failed_at = None
        self._save({"journal": len(entries), "trained": start, "trainings": trainings})
        self.log(f"serve: training {trainings} done; step {trained.ledger.step}, model version {self.model_version}")
        self.push_due = self.client is not None

    # -- Label Studio -------------------------------------------------------------------------------------------

    def push(self) -> list[ItemId]:
        """Push the pending items that have no task of the current step in the project yet; returns their ids.

        An unreachable server leaves ``push_due`` set and pushes nothing; the next push (at the next event, or from
        :meth:`retry_pushes`) resumes, and a task is recognised by ``lbal_id`` and ``lbal_step``: none is pushed twice.
        """
        if self.client is None or self.project_id is None:
            return []
        with self._pushing:
            return self._push(self.client, self.project_id)

    def _push(self, client: LabelStudioClient, project_id: int) -> list[ItemId]:
        with self._lock:
            state, step = self.state, self.state.ledger.step
            pending = state.pending_ids()
            names, key, prefix = self.names, self.data_key, self.data_prefix
            tasks = query_tasks(state, pending, names, key, prefix, self.from_name, "choice") if pending else []
        try:
            on_server = set()
            for task in client.tasks(project_id):
                data = task.get("data") if isinstance(task, dict) else None
                if isinstance(data, dict) and data.get("lbal_step") == step:
                    on_server.add(str(data.get("lbal_id")))
            tasks = [task for task in tasks if str(task["data"]["lbal_id"]) not in on_server]
            push = [task["data"]["lbal_id"] for task in tasks]
            if tasks:
                client.import_tasks(project_id, tasks)
        except (ConnectionError, ValueError) as err:
            with self._lock:
                self.push_due = True
                self.write_summary()
            self.log(f"serve: push to Label Studio failed, retried later (nothing is lost): {err}")
            return []
        with self._lock:
            self.push_due = state is not self.state  # a training finished meanwhile: its query goes next
            self.write_summary()
        if push:
            self.log(f"serve: pushed {len(push)} tasks of step {step} to project {project_id}")
        return push

    def retry_pushes(self, every: float = 30.0) -> None:
        """Until :meth:`close`, push again every ``every`` seconds while a push is due (run it in a thread)."""
        # Annotators cannot answer a query that never reached the project, so no event would ever retry it.
        while not self._stopped.wait(every):
            if self.push_due:
                self.push()

    def predictions(self, tasks: list[Any]) -> list[dict[str, Any]]:
        """One prediction per task: the recorded guess and acquisition score of pending items, else an empty one."""
        with self._lock:
            recorded = self.state.annotator_state
            pending = {str(item) for item in self.state.pending_ids()}
            version = self.model_version
        guesses, scores = recorded.get("predictions") or {}, recorded.get("scores") or {}
        results = []
        for task in tasks:
            data = task.get("data") if isinstance(task, dict) else None
            item = str(data.get("lbal_id")) if isinstance(data, dict) and "lbal_id" in data else None
            result: list[dict[str, Any]] = []
            if item in pending and item in guesses:
                choice = {"choices": [self.names[int(guesses[item][0])]]}
                result = [{"from_name": self.from_name, "to_name": self.data_key, "type": "choices", "value": choice}]
            score = scores.get(item) if item in pending else None
            results.append({"result": result, "score": float(score or 0.0), "model_version": version})
        return results

    def setup(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Label Studio connecting the backend to a project: its labelling config must fit the run."""
        schema = payload.get("schema")
        if schema is not None:
            try:
                check_label_config(schema, self.names, self.data_key, self.from_name, SERVED_TASK)
            except ValueError as err:
                raise BadRequest(str(err)) from None
        if self.push_due:
            threading.Thread(target=self.push, daemon=True).start()
        return {"model_version": self.model_version}

    def webhook(self, payload: dict[str, Any]) -> dict[str, Any]:
        """An event of Label Studio: answers are recorded; ``START_TRAINING`` starts a training; others are ignored."""
        action = payload.get("action")
        if not isinstance(action, str):
            raise BadRequest(f"Expected the webhook's `action` to be an event name, but got {action!r}.")
        if action == "START_TRAINING":
            return {"status": "training started" if self.maybe_train(force=True) else "training already running"}
        if action not in ANSWER_EVENTS:
            return {"status": f"ignored {action}"}
        answer = self._answer_of(action, payload)
        if answer is None:
            return {"status": "no answer (cancelled or no choice)"}
        try:
            item, label, step, by, when, key = answer
            done = self.record(item, label, step, by, when, action, key)
        except ValueError as err:
            raise BadRequest(f"{err} Nothing was recorded.") from None
        if self.push_due:
            threading.Thread(target=self.push, daemon=True).start()
        return {"status": done, "model_version": self.model_version}

    @staticmethod
    def _object(payload: dict[str, Any], name: str, action: str) -> dict[str, Any]:
        value = payload.get(name)
        if not isinstance(value, dict):
            raise BadRequest(f"Expected the {action} event's `{name}` to be an object, but got {value!r:.80}.")
        return value

    def _answer_of(
        self, action: str, payload: dict[str, Any]
    ) -> tuple[str, int, int, str | None, str | None, int | str | None] | None:
        annotation, task = self._object(payload, "annotation", action), self._object(payload, "task", action)
        project = payload.get("project")
        project_id = project.get("id") if isinstance(project, dict) else task.get("project")
        if self.project_id is not None and project_id is not None and project_id != self.project_id:
            raise BadRequest(
                f"Expected events of project {self.project_id} (`--project`), but this {action} is of project"
                f" {project_id!r}: connect the backend to one project only."
            )
        data = task.get("data")
        if not isinstance(data, dict) or "lbal_id" not in data:
            raise BadRequest(
                f"Expected the {action} event's `task.data.lbal_id` (a task pushed by lightning_bal), but task"
                f" {task.get('id')!r} has none."
            )
        item = str(data["lbal_id"])
        where = f"task {item!r} (task {task.get('id')!r} of the {action} event)"
        try:
            step = check_task_step(data.get("lbal_step"), where)
            if annotation.get("was_cancelled"):
                return None
            label = read_answer(annotation.get("result"), self._reading, where, item, data)
            author = annotation_author(annotation, where)
        except ValueError as err:
            raise BadRequest(str(err)) from None
        if label is None:
            return None
        when = annotation.get("updated_at") or annotation.get("created_at")
        key = annotation.get("id")
        key = key if isinstance(key, (int, str)) and not isinstance(key, bool) else None
        return item, int(label), step, author, when if isinstance(when, str) else None, key

    def close(self) -> None:
        """Stop: a running training is ended (its result would be dropped); the journal keeps every answer."""
        self._stopped.set()
        process = self.training
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
