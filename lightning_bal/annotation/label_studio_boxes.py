"""Boxes drawn in Label Studio read back: an export's rectangles, in percent of the image, as labels in pixels.

The tasks are those of :mod:`lightning_bal.annotation.label_studio_detection`, whose conventions this follows: a box
of label ``k`` is drawn under the name ``label_names[k - 1]`` and read back through ``label_map``. A submitted
annotation with no rectangle answers "nothing in this image": an empty label, not a pending task. Rotated rectangles
are refused: an axis-aligned box cannot hold them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from lightning_bal.annotation.label_studio import annotation_author, answered_tasks, read_export_file
from lightning_bal.annotation.label_studio_detection import _TYPE
from lightning_bal.data.box_files import check_boxes
from lightning_bal.utilities.checks import check_non_empty_str, check_one_of

__all__ = ["TOLERANCE", "LabelStudioBoxes", "read_label_studio_boxes"]

#: Percent coordinates may exceed the image by this many pixels (rounding in Label Studio); they are clipped.
TOLERANCE = 1e-3


class LabelStudioBoxes(NamedTuple):
    """Boxes read from a Label Studio export: the answered ``ids`` with their ``labels`` (the contract's dicts).

    ``steps`` are the query steps the tasks name; ``unanswered`` ids have no submitted annotation; ``disagreements``
    ids have several submitted annotations whose boxes differ; ``authors`` and ``times`` describe the annotation read.
    """

    ids: list[str]
    labels: list[dict[str, Tensor]]
    steps: set[int]
    disagreements: list[str]
    unanswered: list[str]
    authors: list[str | None]
    times: list[str | None]


def _number(where: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Expected the `{field}` of {where} to be a finite number, but got {value!r}.")
    return float(value)


def _region_box(
    region: dict[str, Any], label_map: Mapping[str, int], where: str
) -> tuple[list[float], int, tuple[int, int]]:
    value = region.get("value")
    if not isinstance(value, dict):
        raise ValueError(f"Expected the `value` of {where} to be an object, but got {value!r}.")
    rotation = value.get("rotation", 0)
    if rotation is None:
        rotation = 0
    if _number(where, "value.rotation", rotation) % 360 != 0:
        raise ValueError(
            f"Expected the rectangles of {where} to be unrotated (`value.rotation` 0), but got a rotation of"
            f" {rotation} degrees: an (x1, y1, x2, y2) box cannot hold it; redraw it without rotation."
        )
    names = value.get(_TYPE)
    if not isinstance(names, list) or len(names) != 1 or not isinstance(names[0], str):
        raise ValueError(f"Expected the `value.{_TYPE}` of {where} to name one label, but got {names!r}.")
    if names[0] not in label_map:
        raise ValueError(
            f"Expected every rectangle label to be in the label map {sorted(label_map)}, but {where} has {names[0]!r}."
        )
    given = region.get("original_width"), region.get("original_height")
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in given):
        raise ValueError(
            f"Expected the `original_width` and `original_height` of {where} to be positive integers (pixels), but got"
            f" {given[0]!r} and {given[1]!r}."
        )
    width, height = int(given[0]), int(given[1])  # type: ignore[arg-type]
    x, y, w, h = (_number(where, f"value.{field}", value.get(field)) for field in ("x", "y", "width", "height"))
    box = [x * width / 100, y * height / 100, (x + w) * width / 100, (y + h) * height / 100]
    # Label Studio's percent can overshoot the border by a rounding error: within TOLERANCE pixels, clip it.
    limits = (width, height, width, height)
    box = [
        min(max(v, 0.0), limit) if -TOLERANCE <= v <= limit + TOLERANCE else v
        for v, limit in zip(box, limits, strict=True)
    ]
    return box, int(label_map[names[0]]), (width, height)


def _annotation_boxes(
    annotation: dict[str, Any], label_map: Mapping[str, int], from_name: str | None, num_classes: int, where: str
) -> dict[str, Tensor]:
    result = annotation.get("result")
    result = [] if result is None else result
    if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
        raise ValueError(
            f"Expected the `result` of every annotation of {where} to be a list of objects, but got {result!r}."
        )
    boxes, labels, sizes = [], [], set()
    for number, region in enumerate(result):
        if region.get("type") != _TYPE or (from_name is not None and region.get("from_name") != from_name):
            continue
        box, label, size = _region_box(region, label_map, f"region {number} of {where}")
        boxes.append(box)
        labels.append(label)
        sizes.add(size)
    if len(sizes) > 1:
        raise ValueError(f"Expected one image size per annotation of {where}, but its regions give {sorted(sizes)}.")
    return check_boxes(where, boxes, labels, num_classes, next(iter(sizes), None))


def _order(annotation: dict[str, Any]) -> tuple[str, float, str]:
    """Annotations in the order they were made: by time, then by id (Label Studio's ids are numbers, 9 before 10)."""
    number = annotation.get("id")
    numeric = isinstance(number, (int, float)) and not isinstance(number, bool)
    return str(annotation.get("created_at", "")), float(number) if numeric else math.inf, str(number)  # type: ignore[arg-type]


def _same(first: dict[str, Tensor], other: dict[str, Tensor]) -> bool:
    return torch.equal(first["boxes"], other["boxes"]) and torch.equal(first["labels"], other["labels"])


def read_label_studio_boxes(
    export: str | Path | Sequence[Any],
    label_map: Mapping[str, int],
    from_name: str | None = None,
    on_disagreement: Literal["first", "skip", "error"] = "first",
) -> LabelStudioBoxes:
    """The boxes of Label Studio tasks made by ``to_label_studio_box_tasks``: an export's path or its tasks.

    ``label_map`` gives each rectangle label's class in ``1..C`` (``{"cat": 1, "dog": 2}``); ``from_name`` reads only
    that ``<RectangleLabels>`` control. Percent coordinates become pixels through each region's ``original_width``
    and ``original_height``. An image asked in several rounds has a task per round, read together; when its
    submitted annotations draw different boxes, ``on_disagreement`` picks: ``"first"`` (the first annotation made
    wins), ``"skip"`` (the image stays pending) or ``"error"``. All is validated before anything is returned.

    Examples:
        >>> region = {"type": "rectanglelabels", "from_name": "label", "original_width": 200, "original_height": 100,
        ...           "value": {"x": 10, "y": 20, "width": 25, "height": 50, "rotation": 0,
        ...                     "rectanglelabels": ["dog"]}}
        >>> tasks = [{"data": {"lbal_id": "a.png", "lbal_step": 1}, "annotations": [{"id": 1, "result": [region]}]},
        ...          {"data": {"lbal_id": "b.png", "lbal_step": 1}, "annotations": [{"id": 2, "result": []}]}]
        >>> boxes = read_label_studio_boxes(tasks, {"cat": 1, "dog": 2})
        >>> boxes.ids, boxes.labels[0]["boxes"].tolist(), boxes.labels[0]["labels"].tolist()
        (['a.png', 'b.png'], [[20.0, 20.0, 70.0, 70.0]], [2])
        >>> boxes.labels[1]["boxes"].shape
        torch.Size([0, 4])
    """
    check_one_of("on_disagreement", on_disagreement, ("first", "skip", "error"))
    if (
        not isinstance(label_map, Mapping)
        or not label_map
        or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 1
            for k, v in label_map.items()
        )
    ):
        raise ValueError(
            "Expected argument `label_map` to map each rectangle label to its class in 1..C (0 is the background),"
            f" but got {label_map!r}."
        )
    if from_name is not None:
        check_non_empty_str("from_name", from_name)
    tasks, source = _tasks(export)
    num_classes = max(label_map.values()) + 1
    answers = LabelStudioBoxes([], [], set(), [], [], [], [])
    found: dict[str, list[tuple[dict[str, Any], dict[str, Tensor]]]] = {}
    for item, step, where, _, done in answered_tasks(tasks, source):
        if step is not None:
            answers.steps.add(step)
        found.setdefault(item, []).extend(
            (a, _annotation_boxes(a, label_map, from_name, num_classes, where)) for a in done
        )
    for item, drawn in found.items():
        if not drawn:
            answers.unanswered.append(item)
            continue
        drawn.sort(key=lambda pair: _order(pair[0]))
        if not all(_same(drawn[0][1], other) for _, other in drawn[1:]):
            answers.disagreements.append(item)
            if on_disagreement == "error":
                raise ValueError(
                    f"Expected the {len(drawn)} annotations of task {item!r} to draw the same boxes, but they differ."
                )
            if on_disagreement == "skip":
                continue
        first = drawn[0][0]
        answers.ids.append(item)
        answers.labels.append(drawn[0][1])
        answers.authors.append(annotation_author(first, f"task {item!r} of {source}"))
        when = first.get("updated_at") or first.get("created_at")
        answers.times.append(when if isinstance(when, str) else None)
    return answers


def _tasks(export: Any) -> tuple[Sequence[Any], str]:
    """The tasks of an export (a path to its JSON, or the list read) and how messages name it."""
    if isinstance(export, (str, os.PathLike)):
        path = Path(export)
        return read_export_file(path), repr(str(path))
    if isinstance(export, bytes) or not isinstance(export, Sequence):
        raise TypeError(
            "Expected argument `export` to be the path of a Label Studio export or its list of tasks, but got"
            f" {type(export).__name__}."
        )
    return export, "the export"
