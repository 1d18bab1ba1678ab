"""Box answers for object detection in JSON or CSV files, read and written whole or not at all.

A label follows torchvision's conventions: ``{"boxes": FloatTensor[n, 4], "labels": LongTensor[n]}`` with the boxes
``(x1, y1, x2, y2)`` in pixels, ``0 <= x1 < x2 <= width`` and ``0 <= y1 < y2 <= height``, and the labels in ``1..C``
(0 is the background and never a box's label; a dataset of C classes has ``num_classes = C + 1``). ``n`` may be 0: an
image with nothing on it has ``boxes`` of shape ``[0, 4]`` and ``labels`` of shape ``[0]``.

The two files:

- JSON: a list with one object per image, ``{"id": "a.png", "boxes": [[x1, y1, x2, y2], ...], "labels": [3, ...]}``
  (an empty image has ``"boxes": []`` and ``"labels": []``).
- CSV: the header ``id,x1,y1,x2,y2,label`` and one row per box; an image with no boxes has one row with its id and
  the five other fields empty (``a.png,,,,,``), so that "answered: nothing there" differs from "not answered".

Writes go to a temporary file in the same folder that then replaces the target, so a crash leaves the old file whole.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from lightning_bal.data.queries import read_text
from lightning_bal.utilities.checks import check_one_of

__all__ = ["BOX_FIELDS", "BoxAnswers", "check_boxes", "read_boxes", "write_boxes"]

#: The CSV header: one row per box.
BOX_FIELDS = ("id", "x1", "y1", "x2", "y2", "label")
_COORDINATES = BOX_FIELDS[1:5]
# Plain decimal only: Python's float() also takes "1_0" and non-ASCII digits, which a spreadsheet never means.
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
Size = tuple[int, int]


class BoxAnswers(NamedTuple):
    """The images of a box file in file order (``ids``) and, for each, its label ``{"boxes", "labels"}``."""

    ids: list[str]
    labels: list[dict[str, Tensor]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_boxes(
    where: str,
    boxes: Any,
    labels: Any,
    num_classes: int | None = None,
    image_size: Size | None = None,
) -> dict[str, Tensor]:
    """The label ``{"boxes": float32 [n, 4], "labels": int64 [n]}`` made of ``boxes`` and ``labels`` once valid.

    ``boxes`` and ``labels`` are tensors or (nested) lists of numbers. Checked: the shapes, finite coordinates,
    ``x1 < x2`` and ``y1 < y2``, whole-number labels in ``1..num_classes - 1`` (``>= 1`` without ``num_classes``), and
    with ``image_size = (width, height)`` every box inside the image. ``where`` names the label in messages.

    Examples:
        >>> check_boxes("image 'a.png'", [[1, 2, 5, 8]], [3], num_classes=11, image_size=(96, 96))
        {'boxes': tensor([[1., 2., 5., 8.]]), 'labels': tensor([3])}
        >>> check_boxes("image 'b.png'", [], [])["boxes"].shape
        torch.Size([0, 4])
    """
    box_tensor = _as_boxes(where, boxes)
    label_tensor = _as_labels(where, labels)
    if len(box_tensor) != len(label_tensor):
        raise ValueError(
            f"Expected one label per box for {where}, but got {len(box_tensor)} boxes and {len(label_tensor)} labels."
        )
    if not bool(torch.isfinite(box_tensor).all()):
        raise ValueError(
            f"Expected finite box coordinates for {where}, but got {_first(box_tensor, ~_finite_rows(box_tensor))}."
        )
    inverted = (box_tensor[:, 0] >= box_tensor[:, 2]) | (box_tensor[:, 1] >= box_tensor[:, 3])
    if bool(inverted.any()):
        raise ValueError(
            f"Expected every box of {where} as (x1, y1, x2, y2) with x1 < x2 and y1 < y2, but got"
            f" {_first(box_tensor, inverted)}: inverted or empty."
        )
    if image_size is not None:
        width, height = image_size
        outside = (box_tensor[:, :2] < 0).any(1) | (box_tensor[:, 2] > width) | (box_tensor[:, 3] > height)
        if bool(outside.any()):
            raise ValueError(
                f"Expected every box of {where} inside the image (0 <= x <= {width}, 0 <= y <= {height}), but got"
                f" {_first(box_tensor, outside)}."
            )
    high = None if num_classes is None else num_classes - 1
    wrong = (label_tensor < 1) if high is None else (label_tensor < 1) | (label_tensor > high)
    if bool(wrong.any()):
        expected = "1 or more" if high is None else f"in 1..{high}"
        raise ValueError(
            f"Expected every box label of {where} {expected} (0 is the background), but got"
            f" {label_tensor[wrong].unique().tolist()}."
        )
    return {"boxes": box_tensor, "labels": label_tensor}


def _finite_rows(boxes: Tensor) -> Tensor:
    return torch.isfinite(boxes).all(1)


def _first(boxes: Tensor, mask: Tensor) -> str:
    row = int(mask.nonzero()[0, 0])
    return f"box {row} {[round(float(v), 4) for v in boxes[row]]}"


def _as_boxes(where: str, boxes: Any) -> Tensor:
    if isinstance(boxes, Tensor):
        if boxes.dtype == torch.bool or boxes.is_complex():
            raise TypeError(f"Expected the boxes of {where} to hold real numbers, but got dtype {boxes.dtype}.")
        tensor = boxes.detach().to("cpu", torch.float32)
    else:
        rows = list(boxes) if isinstance(boxes, (list, tuple)) else None
        if rows is None or not all(
            isinstance(row, (list, tuple)) and len(row) == 4 and all(_is_number(value) for value in row) for row in rows
        ):
            raise TypeError(
                f"Expected the boxes of {where} to be a list of [x1, y1, x2, y2] numbers, but got {boxes!r}."
            )
        tensor = torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float32).reshape(len(rows), 4)
    if tensor.ndim == 1 and tensor.numel() == 0:
        tensor = tensor.reshape(0, 4)
    if tensor.ndim != 2 or tensor.shape[1] != 4:
        raise ValueError(f"Expected the boxes of {where} to have shape [n, 4], but got {list(tensor.shape)}.")
    return tensor


def _as_labels(where: str, labels: Any) -> Tensor:
    if isinstance(labels, Tensor):
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"Expected the labels of {where} to be integers, but got dtype {labels.dtype}.")
        tensor = labels.detach().to("cpu", torch.long)
    else:
        values = list(labels) if isinstance(labels, (list, tuple)) else None
        if values is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise TypeError(f"Expected the labels of {where} to be a list of integers, but got {labels!r}.")
        tensor = torch.tensor(values, dtype=torch.long)
    if tensor.ndim != 1:
        raise ValueError(f"Expected the labels of {where} to have shape [n], but got {list(tensor.shape)}.")
    return tensor


def _size_of(image_sizes: Mapping[str, Size] | Size | None, item: str) -> Size | None:
    if image_sizes is None or isinstance(image_sizes, tuple):
        return image_sizes
    return image_sizes.get(item)


def _check_sizes(image_sizes: Any) -> None:
    def valid(size: Any) -> bool:
        return isinstance(size, tuple) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)

    if image_sizes is None or valid(image_sizes):
        return
    if not isinstance(image_sizes, Mapping) or not all(valid(size) for size in image_sizes.values()):
        raise TypeError(
            "Expected argument `image_sizes` to be a (width, height) tuple of positive integers, a mapping of ids to"
            f" such tuples, or None, but got {image_sizes!r}."
        )


def _format(path: Path, format: str | None) -> Literal["csv", "json"]:
    if format is not None:
        return check_one_of("format", format, ("csv", "json"))
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise ValueError(f"Expected argument `path` to end in `.json` or `.csv`, but got {str(path)!r}.")
    return "csv" if suffix == ".csv" else "json"


def _check_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"Expected the `id` of {where} to be an integer or a non-empty string, but got {value!r}.")
    return str(value)


def _json_answers(path: Path, text: str, checked: Any) -> BoxAnswers:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"Expected {str(path)!r} to hold JSON, but it does not parse (truncated?): {err}") from err
    if not isinstance(rows, list):
        raise ValueError(f"Expected {str(path)!r} to hold a JSON list of images, but got {type(rows).__name__}.")
    answers = BoxAnswers([], [])
    for number, row in enumerate(rows):
        where = f"object {number} of {str(path)!r}"
        if not isinstance(row, dict) or not {"id", "boxes", "labels"} <= set(row):
            raise ValueError(f"Expected {where} to have the fields `id`, `boxes` and `labels`, but got {row!r}.")
        item = _check_id(row["id"], where)
        answers.ids.append(item)
        answers.labels.append(checked(f"image {item!r} ({where})", item, row["boxes"], row["labels"]))
    return answers


def _parse(field: str, value: str, where: str, pattern: re.Pattern[str]) -> float:
    text = value.strip()
    if not pattern.fullmatch(text):
        kind = "an integer" if pattern is _INTEGER else "a plain decimal number"
        raise ValueError(f"Expected the `{field}` of {where} to be {kind}, but got {value!r}.")
    return float(text) if pattern is _NUMBER else int(text)


def _csv_answers(path: Path, text: str, checked: Any) -> BoxAnswers:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or tuple(name.strip() for name in reader.fieldnames) != BOX_FIELDS:
        raise ValueError(
            f"Expected {str(path)!r} to start with the header `{','.join(BOX_FIELDS)}`, but got {reader.fieldnames!r}."
        )
    found: dict[str, list[tuple[list[float], int]]] = {}
    empty_images: set[str] = set()
    for line, row in enumerate(reader, start=2):
        where = f"line {line} of {str(path)!r}"
        if None in row or None in row.values():
            raise ValueError(
                f"Expected every row of {str(path)!r} to have the {len(BOX_FIELDS)} columns, but line {line} does not."
            )
        item = _check_id(row["id"], where)
        box_fields = [row[field] for field in (*_COORDINATES, "label")]
        empty = [not value.strip() for value in box_fields]
        if all(empty) or item in empty_images:
            if item in empty_images or found.get(item):
                raise ValueError(f"Expected image {item!r} to have boxes or one empty row, not both ({where}).")
            empty_images.add(item)
            found[item] = []
            continue
        if any(empty):
            raise ValueError(
                f"Expected the box fields x1,y1,x2,y2,label of {where} to be all filled (a box) or all empty (an image"
                f" with no boxes), but got {box_fields!r}."
            )
        box = [_parse(field, row[field], where, _NUMBER) for field in _COORDINATES]
        label = int(_parse("label", row["label"], where, _INTEGER))
        found.setdefault(item, []).append((box, label))
    answers = BoxAnswers([], [])
    for item, rows in found.items():
        answers.ids.append(item)
        answers.labels.append(
            checked(f"image {item!r} of {str(path)!r}", item, [b for b, _ in rows], [c for _, c in rows])
        )
    return answers


def read_boxes(
    path: str | Path,
    format: Literal["csv", "json"] | None = None,
    num_classes: int | None = None,
    image_sizes: Mapping[str, Size] | Size | None = None,
) -> BoxAnswers:
    r"""Read a box file (JSON or CSV, by ``format`` or the suffix) and validate every label with :func:`check_boxes`.

    ``num_classes`` (``C + 1``) bounds the labels; ``image_sizes`` is one ``(width, height)`` for every image or a
    mapping from ids to sizes (ids it lacks are not checked against an image). An image named twice is refused.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "boxes.csv"
        >>> _ = path.write_text("id,x1,y1,x2,y2,label\na.png,1,2,5,8,3\nb.png,,,,,\n")
        >>> answers = read_boxes(path, num_classes=11)
        >>> answers.ids, answers.labels[0]["labels"].tolist(), answers.labels[1]["boxes"].shape
        (['a.png', 'b.png'], [3], torch.Size([0, 4]))
    """
    path = Path(path)
    kind = _format(path, format)
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
    ):
        raise ValueError(f"Expected argument `num_classes` to be an integer >= 2 (C + 1), but got {num_classes!r}.")
    _check_sizes(image_sizes)
    text = read_text(path)
    seen: set[str] = set()

    def checked(where: str, item: str, boxes: Any, labels: Any) -> dict[str, Tensor]:
        if item in seen:
            raise ValueError(f"Expected each image once in {str(path)!r}, but {item!r} appears twice.")
        seen.add(item)
        return check_boxes(where, boxes, labels, num_classes, _size_of(image_sizes, item))

    return _json_answers(path, text, checked) if kind == "json" else _csv_answers(path, text, checked)


def _number(value: float) -> int | float:
    # Whole pixel coordinates are written as integers; others as the shortest text that reads back to the same float.
    return int(value) if float(value).is_integer() else value


def _rows(
    ids: Sequence[Any], labels: Sequence[Mapping[str, Any]]
) -> Iterable[tuple[str, list[list[float]], list[int]]]:
    for item, label in zip(ids, labels, strict=True):
        yield str(item), label["boxes"].tolist(), label["labels"].tolist()


def write_boxes(
    path: str | Path,
    ids: Sequence[int | str],
    labels: Sequence[Mapping[str, Any]],
    format: Literal["csv", "json"] | None = None,
) -> Path:
    """Write one label per id (as :func:`check_boxes` takes them) to a JSON or CSV box file, atomically.

    Everything is validated before the file is touched.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "boxes.csv"
        >>> empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
        >>> _ = write_boxes(path, ["a.png", "b.png"], [{"boxes": [[1, 2, 5.5, 8]], "labels": [3]}, empty])
        >>> print(path.read_text().strip())
        id,x1,y1,x2,y2,label
        a.png,1,2,5.5,8,3
        b.png,,,,,
    """
    path = Path(path)
    kind = _format(path, format)
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise TypeError(f"Expected argument `ids` to be a sequence of ids, but got {ids!r}.")
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence) or len(labels) != len(ids):
        count = len(labels) if isinstance(labels, Sequence) else type(labels).__name__
        raise ValueError(f"Expected argument `labels` to hold one label per id ({len(ids)}), but got {count}.")
    names = [_check_id(item, f"argument `ids` (position {position})") for position, item in enumerate(ids)]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"Expected argument `ids` to name each image once, but got {twice} more than once.")
    valid = []
    for item, label in zip(names, labels, strict=True):
        if not isinstance(label, Mapping) or not {"boxes", "labels"} <= set(label):
            raise TypeError(
                f"Expected the label of image {item!r} to be a dict with `boxes` and `labels`, but got {label!r}."
            )
        valid.append(check_boxes(f"image {item!r}", label["boxes"], label["labels"]))
    if kind == "json":
        text = json.dumps(
            [
                {"id": item, "boxes": [[_number(v) for v in box] for box in boxes], "labels": classes}
                for item, boxes, classes in _rows(names, valid)
            ],
            indent=2,
        )
    else:
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(BOX_FIELDS)
        for item, boxes, classes in _rows(names, valid):
            writer.writerows([item, *(_number(v) for v in box), cls] for box, cls in zip(boxes, classes, strict=True))
            if not boxes:
                writer.writerow([item, "", "", "", "", ""])
        text = out.getvalue()
    _write_atomically(path, text.rstrip("\n") + "\n")
    return path


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
