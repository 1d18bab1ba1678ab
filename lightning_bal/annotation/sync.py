"""Answers into a checkpoint's label state: from answer files (``import``) or a Label Studio server (``sync``).

``lightning-bal sync`` pushes the pending query to a project and pulls its answers (docs/label_studio_sync.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from torch import Tensor

from lightning_bal.annotation.answers import AnswerFormat, AnswerKind, same_label, show_label
from lightning_bal.annotation.checkpoint import FORMATS, LabelState, load_label_state
from lightning_bal.annotation.checkpoint_entries import Imported, check_output, recorded_guesses
from lightning_bal.annotation.label_studio import (
    AnnotatorAnswer,
    Reconciliation,
    check_data_key,
    check_task_step,
    read_label_studio_export,
    read_label_studio_tasks,
    to_label_studio_tasks,
)
from lightning_bal.annotation.label_studio_api import LabelStudioClient, check_label_config, check_url, token_from_env
from lightning_bal.data.ids import ItemId, id_lookup
from lightning_bal.data.queries import read_answers, read_text
from lightning_bal.utilities.checks import check_bool, check_one_of

__all__ = ["SyncResult", "answers_format", "bring_in_answers", "import_answers", "sync_command", "sync_label_studio"]


def _holds_label_studio_tasks(path: Path) -> bool:
    try:
        rows = json.loads(read_text(path))
    except (ValueError, OSError):
        return False  # the reader of the chosen format names what is wrong with the file
    return isinstance(rows, list) and any(isinstance(row, dict) and isinstance(row.get("data"), dict) for row in rows)


#: The answer kinds a run of each task reads (docs/annotators.md#answer-types), its default first.
TASK_ANSWER_KINDS: dict[str | None, tuple[AnswerKind, ...]] = {
    "classification": ("choice",),
    "multilabel": ("multichoice",),
    "per_position": ("brush", "polygon", "spans"),
    "regression": ("number",),
}
#: The answer kind a Label Studio export is read as by default, by the run's task (else ``"choice"``).
TASK_ANSWERS: dict[str | None, AnswerKind] = {task: kinds[0] for task, kinds in TASK_ANSWER_KINDS.items()}


def check_answer_kind(task: str | None, kind: AnswerKind | AnswerFormat) -> None:
    """Refuse an answer kind whose labels a run of ``task`` cannot take (a class index as a regression target).

    Examples:
        >>> check_answer_kind("per_position", "polygon")
        >>> check_answer_kind("regression", "choice")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected `--answer` to be an answer type of a regression run (number), but got 'choice': ...
    """
    named = kind.kind if isinstance(kind, AnswerFormat) else kind
    kinds = TASK_ANSWER_KINDS.get(task)
    if kinds is not None and named not in kinds:
        raise ValueError(
            f"Expected `--answer` to be an answer type of a {task} run ({', '.join(kinds)}), but got {named!r}: its"
            f" answers would not be {task} labels. Nothing was changed."
        )


def answers_format(
    path: str | Path, format: str | None = None, label_map: dict[str, int] | None = None
) -> Literal["csv", "json", "label_studio"]:
    """``format``, else guessed: CSV for ``.csv``, Label Studio for its tasks (or with ``label_map``), else JSON."""
    if format is not None:
        return check_one_of("format", format, FORMATS)
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return "csv"
    return "label_studio" if label_map is not None or _holds_label_studio_tasks(path) else "json"


def bring_in_answers(
    checkpoint: str | Path,
    answers: str | Path,
    output: str | Path | None = None,
    format: Literal["csv", "json", "label_studio"] | None = None,
    label_map: dict[str, int] | None = None,
    on_disagreement: Reconciliation = "first",
    by: str | None = None,
    requeue_disagreements: bool = False,
    answer: AnswerKind | AnswerFormat | None = None,
) -> Imported:
    """:func:`import_answers`, returning what it did: labelled, corrected, unchanged, kept and requeued answers.

    ``by`` names who gave the answers that do not say it themselves (CSV and JSON rows), for the history. With
    ``requeue_disagreements``, labelled items whose answers the reconciliation now leaves undecided go back to the
    pending query (docs/annotators.md#several-annotators-per-item). ``answer`` is the Label Studio answer type
    (docs/annotators.md#answer-types); by default the checkpoint's task decides: a choice per item, several for a
    multi-label run, a brush mask for a per-position run, a number for regression.
    """
    check_bool("requeue_disagreements", requeue_disagreements)
    if output is not None and Path(output).resolve() == Path(answers).resolve():
        raise ValueError(
            f"Expected argument `output` to be another file than the answers, but got {str(output)!r} for both."
        )
    state = load_label_state(checkpoint)
    format = answers_format(answers, format, label_map)
    undecided: list[str] = []
    labels: list[Any]
    if format == "label_studio":
        kind = TASK_ANSWERS.get(state.ledger.task_type.name, "choice") if answer is None else answer
        check_answer_kind(state.ledger.task_type.name, kind)
        if label_map is None and kind != "number" and not isinstance(kind, AnswerFormat):
            raise ValueError(
                f"Expected argument `label_map` (class names to indices) to read the Label Studio export"
                f" {str(Path(answers))!r}, but got None."
            )
        if kind == "multichoice":
            # A multi-hot label is as long as the run has classes, whichever of them the project names.
            kind = AnswerFormat(kind, label_map, num_classes=state.ledger.num_classes)
            label_map = None
        studio = read_label_studio_export(answers, label_map, on_disagreement=on_disagreement, answer=kind)
        ids, steps, times = studio.ids, studio.steps, studio.times
        labels = list(studio.labels)
        authors = [author or by for author in studio.authors]
        given = [answer._replace(by=answer.by or by) for answer in studio.answers]
        undecided = studio.undecided
    else:
        rows = read_answers(answers, format)
        ids, steps, times = rows.ids, rows.steps, None
        labels = list(rows.labels)
        authors = [by] * len(ids)
        given = [AnnotatorAnswer(item, None, by, label, None, None) for item, label in zip(ids, labels, strict=True)]
    source = repr(str(answers))
    state.check_answers(given, source)
    imported = state.answer(ids, labels, steps, source, authors, times)
    requeued: list[str] = []
    if requeue_disagreements and undecided:
        requeued = state.requeue(undecided, _latest_times(given), source)
    state.record_answers(given, source)
    state.save(output or checkpoint)
    return imported._replace(requeued=tuple(requeued))


def _latest_times(answers: Sequence[AnnotatorAnswer]) -> dict[str, str | None]:
    latest: dict[str, str | None] = {}
    for answer in answers:
        if answer.time is not None and (latest.get(answer.id) is None or answer.time > str(latest[answer.id])):
            latest[answer.id] = answer.time
    return latest


def import_answers(
    checkpoint: str | Path,
    answers: str | Path,
    output: str | Path | None = None,
    format: Literal["csv", "json", "label_studio"] | None = None,
    label_map: dict[str, int] | None = None,
    on_disagreement: Reconciliation = "first",
    requeue_disagreements: bool = False,
) -> Tensor:
    r"""Record the answers of ``answers`` in the checkpoint's label state and write it back (to ``output``).

    All or nothing, replacing the checkpoint atomically; returns the dataset indices labelled. Answers imported
    before are skipped and changed ones come in as corrections (docs/annotators.md#one-project-for-the-whole-run).

    Examples:
        >>> import tempfile
        >>> import torch
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
    return bring_in_answers(
        checkpoint, answers, output, format, label_map, on_disagreement, requeue_disagreements=requeue_disagreements
    ).labelled


class SyncResult(NamedTuple):
    """What one sync did: the project's id, the ids pushed as new tasks, pulled, still pending, and disagreed on.

    ``requeued`` ids were labelled and went back to the pending query (``requeue_disagreements``).
    """

    project: int
    pushed: list[ItemId]
    pulled: list[ItemId]
    pending: list[ItemId]
    disagreements: list[str]
    requeued: list[str]


def _check_names(state: LabelState, label_names: Sequence[str]) -> list[str]:
    names = list(label_names)
    if not names or not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
        raise ValueError(f"Expected `--labels` to name each class once, in class order, but got {names!r}.")
    state.check_class_names(names)
    return names


def _task_step(task: Any, number: int) -> int:
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict) or "lbal_id" not in data:
        raise ValueError(
            f"Expected every task of the project to carry `data.lbal_id` (tasks pushed by lightning_bal), but task"
            f" {number} (id {task.get('id') if isinstance(task, dict) else None}) has none: a project of another"
            " workflow?"
        )
    return check_task_step(data.get("lbal_step"), f"task {number}")


def sync_label_studio(
    checkpoint: str | Path,
    client: LabelStudioClient,
    project: int | str,
    label_names: Sequence[str],
    data_key: str = "image",
    data_prefix: str = "",
    from_name: str = "label",
    on_disagreement: Reconciliation = "first",
    output: str | Path | None = None,
    requeue_disagreements: bool = False,
) -> SyncResult:
    """Push the pending query of ``checkpoint`` to a Label Studio project and pull its answers, all or nothing.

    ``label_names`` are the class names in class order, which the project's ``<Choices name=from_name>`` must offer
    exactly; the other arguments are those of ``lightning-bal sync`` (docs/label_studio_sync.md#flags). A
    ``ValueError`` (input that does not fit) or ``ConnectionError`` (the server) leaves the checkpoint unwritten.
    With ``"majority"`` or ``"dawid_skene"``, a label the reconciliation changes as more answers arrive comes in as a
    correction (docs/annotators.md#several-annotators-per-item).
    """
    check_data_key("--data-key", data_key)
    check_output(output)
    check_bool("requeue_disagreements", requeue_disagreements)
    state = load_label_state(checkpoint)
    # A number needs no class names: a regression run's project offers none.
    names = list(label_names) if state.ledger.task_type.name == "regression" else _check_names(state, label_names)
    found = client.project(project)
    project_id = int(found["id"])
    kind = check_label_config(found["label_config"], names, data_key, from_name, state.ledger.task_type.name)
    step = state.ledger.step
    current: list[dict[str, Any]] = []
    for number, task in enumerate(client.tasks(project_id)):
        task_step = _task_step(task, number)
        if task_step > step:
            raise ValueError(
                f"Expected the project's tasks to be of step {step} or earlier, but task {number} is of step"
                f" {task_step}: the project belongs to another (later) run or checkpoint."
            )
        if task_step == step:
            current.append(task)
    label_map = {name: index for index, name in enumerate(names)}
    classes = state.ledger.num_classes if kind == "multichoice" else None
    reading = AnswerFormat(kind, label_map, from_name, classes, text_key=data_key)
    answers = read_label_studio_tasks(current, None, None, on_disagreement, f"project {project_id}", reading)
    ids, labels, disagreements = answers.ids, answers.labels, answers.disagreements
    lookup = id_lookup(state.ids)
    unknown = sorted({item for item in [*ids, *(answer.id for answer in answers.answers)] if item not in lookup})
    if unknown:
        raise ValueError(
            f"Expected the project's answers to name items of the checkpoint, but it answers unknown ids {unknown[:5]}"
            " (a project of another dataset?); nothing was changed."
        )
    source = f"Label Studio project {project_id}"
    state.check_answers(answers.answers, source)
    # Several annotators: the reconciled label may change as answers arrive, which is a correction, not a conflict.
    settles = on_disagreement in ("majority", "dawid_skene")
    pending = set(state.ledger.pending_query)
    new_ids: list[str] = []
    new_labels: list[Any] = []
    new_authors: list[str | None] = []
    new_times: list[str | None] = []
    for item, label, author, time in zip(ids, labels, answers.authors, answers.times, strict=True):
        index = lookup[item]
        recorded = state.ledger.annotations.get(index)
        if index in pending or recorded is None or (settles and not same_label(recorded, label)):
            new_ids.append(item)
            new_labels.append(label)
            new_authors.append(author)
            new_times.append(time)
        elif not same_label(recorded, label):
            raise ValueError(
                f"Expected the project's answer for {item!r} to agree with the label pulled before"
                f" ({show_label(recorded, reading)!r}), but it is now {show_label(label, reading)!r}: changed after"
                " the last sync? Correct the checkpoint or the project first; nothing was changed."
            )
    changed = bool(new_ids)
    if new_ids:
        state.answer(new_ids, new_labels, {step}, source, new_authors, new_times)
    requeued: list[str] = []
    if requeue_disagreements and answers.undecided:
        requeued = state.requeue(answers.undecided, _latest_times(answers.answers), source)
    changed = bool(state.record_answers(answers.answers, source)) or changed or bool(requeued)
    on_server = {str(task["data"]["lbal_id"]) for task in current}
    push = [item for item in state.pending_ids() if str(item) not in on_server]
    if push:
        client.import_tasks(project_id, query_tasks(state, push, names, data_key, data_prefix, from_name, kind))
    if changed:
        state.save(output or checkpoint)
    pulled = [state.ids[lookup[item]] for item in new_ids if lookup[item] in pending]
    return SyncResult(project_id, push, pulled, state.pending_ids(), disagreements, requeued)


def sync_command(args: Any) -> str:
    """Run ``lightning-bal sync`` with parsed ``args``; returns the summary line."""
    names = args.labels.split(",")
    client = LabelStudioClient(check_url("--url", args.url), token_from_env(args.token_env))
    done = sync_label_studio(
        args.checkpoint,
        client,
        args.project,
        names,
        data_key=args.data_key,
        data_prefix=args.data_prefix,
        on_disagreement=args.on_disagreement,
        output=args.output,
        requeue_disagreements=args.requeue_disagreements,
    )
    return (
        f"Synced {args.checkpoint} with project {done.project} at {client.url}: pushed {len(done.pushed)} tasks,"
        f" pulled {len(done.pulled)} answers; {len(done.pending)} items still pending."
        + (f" {len(done.requeued)} items went back to the queue (answers disagree)." if done.requeued else "")
    )


def query_tasks(
    state: LabelState,
    ids: list[ItemId],
    names: list[str],
    data_key: str,
    data_prefix: str,
    from_name: str,
    kind: AnswerKind,
) -> list[dict[str, Any]]:
    """The Label Studio tasks of the pending items ``ids``, with the model's recorded guesses and scores."""
    scores, predictions = recorded_guesses(state.annotator_state, ids)
    if kind != "choice":
        predictions = None  # the recorded guesses are classes, which only a single-choice control shows
    tasks = to_label_studio_tasks(
        ids,
        state.ledger.step,
        data_key=data_key,
        data_prefix=data_prefix,
        scores=scores,
        predictions=predictions,
        label_names=names,
        from_name=from_name,
    )
    for task, score in zip(tasks, scores, strict=True):
        if score is not None and "predictions" in task:
            # Label Studio ranks tasks by their prediction's score: the acquisition score puts the most
            # informative item on top (the guess's own probability is the pre-annotation's business, not the order's).
            task["predictions"][0]["score"] = float(score)
    # Imported in this order, the tasks' ids make Label Studio's sequential sampling serve the highest score first.
    order = sorted(range(len(tasks)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i))
    return [tasks[i] for i in order]
