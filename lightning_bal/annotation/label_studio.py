"""Label Studio: a query as Label Studio tasks, and its JSON export read back as answers (docs/annotators.md)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

from lightning_bal.annotation.answers import AnswerFormat, AnswerKind, Label, read_answer, same_label, show_label
from lightning_bal.annotation.consensus import dawid_skene, majority_vote
from lightning_bal.data.queries import read_text
from lightning_bal.utilities.checks import check_non_empty_str, check_one_of

__all__ = [
    "RECONCILIATIONS",
    "TASK_FIELDS",
    "AnnotatorAnswer",
    "LabelStudioAnswers",
    "Reconciliation",
    "check_data_key",
    "check_task_step",
    "read_label_studio_export",
    "read_label_studio_tasks",
    "to_label_studio_tasks",
    "write_label_studio_tasks",
]

#: The fields of a task's ``data`` that lightning_bal writes and reads back; a data key may not take their place.
TASK_FIELDS = ("lbal_id", "lbal_step", "lbal_score")
#: How the answers of several annotators to one item become its label (docs/annotators.md#several-annotators-per-item).
RECONCILIATIONS = ("first", "skip", "error", "majority", "dawid_skene")
Reconciliation = Literal["first", "skip", "error", "majority", "dawid_skene"]


def check_data_key(name: str, data_key: Any) -> str:
    """``data_key`` if it can name the task field of the data reference (a non-empty string, not a library field)."""
    check_non_empty_str(name, data_key)
    if data_key in TASK_FIELDS:
        raise ValueError(
            f"Expected argument `{name}` to be a task field other than lightning_bal's own {TASK_FIELDS}, but got"
            f" {data_key!r}: the data reference would replace the item's {data_key.removeprefix('lbal_')}."
        )
    return data_key


def to_label_studio_tasks(
    ids: Sequence[int | str],
    step: int,
    data_key: str = "image",
    data_prefix: str = "",
    scores: Sequence[float | None] | None = None,
    predictions: Sequence[tuple[float, float]] | None = None,
    label_names: Sequence[str] | None = None,
    from_name: str = "label",
    kind: Literal["choice", "number"] = "choice",
) -> list[dict[str, Any]]:
    """Label Studio tasks for the queried items ``ids``, in query order (docs/annotators.md#label-studio).

    ``data_prefix`` is prepended to each id to make the data reference (a URL or ``/data/local-files/?d=``); the
    model's guesses ``predictions`` (``(class, probability)``, shown as pre-annotations) need ``label_names``. With
    ``kind="number"`` the guesses are ``(number, score)`` for a ``<Number>`` control (docs/annotators.md#answer-types).

    Examples:
        >>> tasks = to_label_studio_tasks(["cat1.png"], step=2, data_prefix="/data/", scores=[0.5],
        ...                               predictions=[(1, 0.75)], label_names=["cat", "dog"])
        >>> tasks[0]["data"]
        {'image': '/data/cat1.png', 'lbal_id': 'cat1.png', 'lbal_step': 2, 'lbal_score': 0.5}
        >>> tasks[0]["predictions"][0]["result"][0]["value"]
        {'choices': ['dog']}
        >>> to_label_studio_tasks(["a"], step=1, predictions=[(2.5, 0.9)], kind="number")[0]["predictions"][0]["result"]
        [{'from_name': 'label', 'to_name': 'image', 'type': 'number', 'value': {'number': 2.5}}]
    """
    check_data_key("data_key", data_key)
    check_one_of("kind", kind, ("choice", "number"))
    ids = list(ids)
    scores = [None] * len(ids) if scores is None else list(scores)
    if len(scores) != len(ids):
        raise ValueError(f"Expected argument `scores` to hold one score per id ({len(ids)}), but got {len(scores)}.")
    if predictions is not None and label_names is None and kind == "choice":
        raise ValueError("Expected argument `label_names` with `predictions` (Label Studio shows class names).")
    if predictions is not None and len(predictions) != len(ids):
        raise ValueError(
            f"Expected argument `predictions` to hold one guess per id ({len(ids)}), but got {len(predictions)}."
        )
    if predictions is not None and kind == "number":
        bad = [
            g for g, _ in predictions if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g)
        ]
        if bad:
            raise ValueError(f"Expected argument `predictions` to guess finite numbers, but got {bad[:5]}.")
    elif predictions is not None and label_names is not None:
        classes = [int(cls) for cls, _ in predictions]
        if classes and not 0 <= min(classes) <= max(classes) < len(label_names):
            raise ValueError(
                f"Expected argument `label_names` to name every class the model guesses, but it has"
                f" {len(label_names)} names and the guesses hold classes {sorted(set(classes))}."
            )
    tasks = []
    for position, (item, score) in enumerate(zip(ids, scores, strict=True)):
        data = {data_key: f"{data_prefix}{item}", "lbal_id": item, "lbal_step": step}
        task: dict[str, Any] = {"data": {**data, "lbal_score": None if score is None else float(score)}}
        if predictions is not None and (label_names is not None or kind == "number"):
            guess, probability = predictions[position]
            names = list(label_names or [])
            value = {"number": float(guess)} if kind == "number" else {"choices": [names[int(guess)]]}
            region_type = "number" if kind == "number" else "choices"
            result = {"from_name": from_name, "to_name": data_key, "type": region_type, "value": value}
            task["predictions"] = [{"model_version": "lightning_bal", "score": float(probability), "result": [result]}]
        tasks.append(task)
    return tasks


def write_label_studio_tasks(path: str | Path, ids: Sequence[int | str], step: int, **kwargs: Any) -> Path:
    """Write :func:`to_label_studio_tasks` to ``path`` as a JSON list (Label Studio's task import format).

    Examples:
        >>> import tempfile
        >>> path = write_label_studio_tasks(Path(tempfile.mkdtemp()) / "tasks.json", ["a.png"], step=1)
        >>> json.loads(path.read_text())[0]["data"]["lbal_id"]
        'a.png'
    """
    path = Path(path)
    path.write_text(json.dumps(to_label_studio_tasks(ids, step, **kwargs), indent=2) + "\n", encoding="utf-8")
    return path


class AnnotatorAnswer(NamedTuple):
    """One annotator's answer to an item.

    The task's ``step``, who gave it (``by``), the class, when, and the annotation's id in Label Studio.
    """

    id: str
    step: int | None
    by: str | None
    label: Label
    time: str | None
    annotation: int | str | None


class LabelStudioAnswers(NamedTuple):
    """Answers read from a Label Studio export: ``ids`` with their labels, annotators and change times.

    ``steps`` are the query steps the tasks name; ``unanswered`` items stay pending, and so do ``undecided`` ones
    (their answers disagree and the reconciliation settles nothing: ``"skip"``, or a tie). ``answers`` holds every
    annotator's answer, reconciled or not.
    """

    ids: list[str]
    labels: list[Label]
    steps: set[int]
    disagreements: list[str]
    unanswered: list[str]
    authors: list[str | None]
    times: list[str | None]
    answers: list[AnnotatorAnswer]
    undecided: list[str]


def annotation_author(annotation: dict[str, Any], where: str) -> str | None:
    """Who gave a Label Studio annotation (its `completed_by`), or an error naming ``where``."""
    # Label Studio exports `completed_by` as a user id, or as the user's record when asked for details; several
    # annotators are told apart by it, so a value that names nobody is refused rather than read as "unknown".
    who = annotation.get("completed_by")
    if who is None:
        return None
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    if isinstance(who, int) and not isinstance(who, bool):
        return str(who)
    if isinstance(who, str) and who.strip():
        return who
    raise ValueError(
        f"Expected the `completed_by` of every annotation of {where} to be a user id, an email or a user record with"
        f" one, but got {annotation.get('completed_by')!r}."
    )


def _time(annotation: dict[str, Any]) -> str | None:
    when = annotation.get("updated_at") or annotation.get("created_at")
    return when if isinstance(when, str) else None


def check_task_step(value: Any, where: str) -> int:
    """A task's ``data.lbal_step``: an ``int``, as ``int(1.7)`` or ``int(True)`` would let another query's answer in."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"Expected the `data.lbal_step` of {where} to be an integer step, but got {value!r}.")


def _answer_format(
    answer: AnswerKind | AnswerFormat, label_map: Mapping[str, int] | None, from_name: str | None
) -> AnswerFormat:
    """``answer`` as it is, or the kind ``answer`` reading ``label_map``'s classes from the control ``from_name``."""
    if isinstance(answer, AnswerFormat):
        if label_map is not None and dict(label_map) != dict(answer.label_map or {}):
            raise ValueError(
                f"Expected argument `label_map` to be None or the label map of argument `answer`, but got"
                f" {dict(label_map)!r} and {dict(answer.label_map or {})!r}."
            )
        return answer
    return AnswerFormat(answer, label_map, from_name)


def read_label_studio_export(
    path: str | Path,
    label_map: Mapping[str, int] | None,
    from_name: str | None = None,
    on_disagreement: Reconciliation = "first",
    answer: AnswerKind | AnswerFormat = "choice",
) -> LabelStudioAnswers:
    """Read Label Studio's JSON export of tasks made by :func:`to_label_studio_tasks` (docs/annotators.md#label-studio).

    ``label_map`` gives each choice's class index (``{"cat": 0, "dog": 1}``); ``from_name`` reads only that
    control; ``on_disagreement``, when annotations of an item disagree: ``"first"`` (the first completed annotation
    wins), ``"skip"`` (leave the item pending), ``"error"``, ``"majority"`` (each annotator's latest answer is a vote;
    a tie leaves the item pending) or ``"dawid_skene"`` (the Dawid-Skene estimate over every item of the export,
    :mod:`lightning_bal.annotation.consensus`); the last two need class answers (``choice``). Every answer is kept in
    ``answers``. ``answer``: the answer type (docs/annotators.md#answer-types), one of
    :data:`~lightning_bal.annotation.answers.ANSWER_KINDS` or an
    :class:`~lightning_bal.annotation.answers.AnswerFormat`.

    Examples:
        >>> import tempfile
        >>> export = [{"id": 7, "data": {"image": "a.png", "lbal_id": "a.png", "lbal_step": 1},
        ...            "annotations": [{"id": 1, "created_at": "2024-01-01T10:00:00Z", "was_cancelled": False,
        ...                             "result": [{"type": "choices", "from_name": "label",
        ...                                         "value": {"choices": ["dog"]}}]}]}]
        >>> path = Path(tempfile.mkdtemp()) / "export.json"
        >>> _ = path.write_text(json.dumps(export))
        >>> answers = read_label_studio_export(path, {"cat": 0, "dog": 1})
        >>> answers.ids, answers.labels, answers.steps, answers.times
        (['a.png'], [1], {1}, ['2024-01-01T10:00:00Z'])
    """
    check_one_of("on_disagreement", on_disagreement, RECONCILIATIONS)
    path = Path(path)
    return read_label_studio_tasks(
        read_export_file(path), label_map, from_name, on_disagreement, repr(str(path)), answer
    )


def read_export_file(path: Path) -> list[Any]:
    """The tasks of a Label Studio JSON export, or an error naming the file (truncated, not a list)."""
    try:
        tasks = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"Expected {str(path)!r} to hold JSON, but it does not parse (truncated?): {err}") from err
    if not isinstance(tasks, list):
        raise ValueError(
            f"Expected {str(path)!r} to hold a JSON list of Label Studio tasks, but got {type(tasks).__name__}."
        )
    return tasks


def answered_tasks(
    tasks: Sequence[Any], source: str
) -> Iterator[tuple[str, int | None, str, dict[str, Any], list[dict[str, Any]]]]:
    """Each task of an export made by lightning_bal as ``(item, step, where, data, annotations not cancelled)``.

    ``where`` names the task in messages; a task without ``data.lbal_id``, a bad step or annotations that are not a
    list of objects is an error naming it.
    """
    for number, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or "lbal_id" not in data:
            raise ValueError(
                f"Expected every task of {source} to carry `data.lbal_id` (tasks exported by lightning_bal),"
                f" but task {number} has none: an export of another project?"
            )
        item = str(data["lbal_id"])
        where = f"task {item!r} (task {number} of {source})"
        step = None if data.get("lbal_step") is None else check_task_step(data["lbal_step"], where)
        annotations = [] if task.get("annotations") is None else task["annotations"]
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            raise ValueError(f"Expected the `annotations` of {where} to be a list of objects, but got {annotations!r}.")
        yield item, step, where, data, [a for a in annotations if not a.get("was_cancelled", False)]


def read_label_studio_tasks(
    tasks: list[Any],
    label_map: Mapping[str, int] | None,
    from_name: str | None,
    on_disagreement: Reconciliation,
    source: str,
    answer: AnswerKind | AnswerFormat = "choice",
) -> LabelStudioAnswers:
    """:func:`read_label_studio_export` of tasks already read (from ``source``, named in messages)."""
    check_one_of("on_disagreement", on_disagreement, RECONCILIATIONS)
    reading = _answer_format(answer, label_map, from_name)
    if on_disagreement in ("majority", "dawid_skene") and reading.kind != "choice":
        raise ValueError(
            f"Expected argument `on_disagreement` to be 'first', 'skip' or 'error' for {reading.kind!r} answers, but"
            f" got {on_disagreement!r}: votes and Dawid-Skene count classes (single-choice answers)."
        )
    answers = LabelStudioAnswers([], [], set(), [], [], [], [], [], [])
    found: dict[str, list[tuple[dict[str, Any], Label, int | None, str]]] = {}
    for item, step, where, data, done in answered_tasks(tasks, source):
        if step is not None:
            answers.steps.add(step)
        # An item asked in several rounds has a task per round: its annotations are read together.
        found.setdefault(item, []).extend(
            (a, c, step, where)
            for a, c in ((a, read_answer(a.get("result"), reading, where, item, data)) for a in done)
            if c is not None
        )
    for item, chosen in found.items():
        chosen.sort(key=lambda entry: (str(entry[0].get("created_at", "")), entry[0].get("id") or 0))
        choices = [c for _, c, _, _ in chosen]
        if not choices:
            answers.unanswered.append(item)
            continue
        for annotation, label, step, where in chosen:
            key = annotation.get("id")
            answers.answers.append(
                AnnotatorAnswer(
                    item,
                    step,
                    annotation_author(annotation, where),
                    label,
                    _time(annotation),
                    key if isinstance(key, (int, str)) and not isinstance(key, bool) else None,
                )
            )
        if any(not same_label(choices[0], c) for c in choices[1:]):
            answers.disagreements.append(item)
            if on_disagreement == "error":
                shown = [show_label(c, reading) for c in choices]
                raise ValueError(f"Expected the annotations of task {item!r} to agree, but got {shown}.")
    classes = 1 + max((int(v) for v in (reading.label_map or {}).values()), default=0)
    reconcile(answers, on_disagreement, classes)
    return answers


def reconcile(answers: LabelStudioAnswers, on_disagreement: str, num_classes: int) -> None:
    """Settle the label of every answered item from ``answers.answers`` (oldest first), by ``on_disagreement``."""
    given: dict[str, list[AnnotatorAnswer]] = {}
    for answer in answers.answers:
        given.setdefault(answer.id, []).append(answer)
    items = list(given)
    decided: list[Label | None]
    if on_disagreement in ("majority", "dawid_skene"):
        # One column per annotator, holding their latest answer; an annotation that names nobody is its own column.
        columns: dict[tuple[str, ...], int] = {}
        cells: list[dict[int, int]] = []
        for item in items:
            row: dict[int, int] = {}
            for number, answer in enumerate(given[item]):
                who = ("by", answer.by) if answer.by is not None else ("nobody", item, str(number))
                row[columns.setdefault(who, len(columns))] = int(answer.label)
            cells.append(row)
        table = [[row.get(column) for column in range(len(columns))] for row in cells]
        decided = list(
            majority_vote(table, num_classes)
            if on_disagreement == "majority"
            else dawid_skene(table, num_classes).labels
        )
    else:
        agreed = [all(same_label(given[item][0].label, a.label) for a in given[item]) for item in items]
        decided = [
            given[item][0].label if ok or on_disagreement == "first" else None
            for item, ok in zip(items, agreed, strict=True)
        ]
    for item, label in zip(items, decided, strict=True):
        if label is None:
            answers.undecided.append(item)
            continue
        # The first answer that gave the label names who gave it; the time is when the decision last changed.
        source = next((a for a in given[item] if same_label(a.label, label)), None)
        times = [a.time for a in given[item] if a.time is not None]
        answers.ids.append(item)
        answers.labels.append(label)
        answers.authors.append(None if source is None else source.by)
        answers.times.append(given[item][0].time if on_disagreement == "first" else max(times, default=None))
