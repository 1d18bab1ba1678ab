"""Reading and writing queries for a labelling team that works outside Python (JSON or CSV)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

__all__ = ["Answers", "parse_label", "read_answers", "read_text", "write_queries"]

# Python's int() and float() also accept "1_0" (as 10) and non-ASCII digits: an answer is plain decimal only.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE)


class Answers(NamedTuple):
    """The answered rows of a query file: ids as text (``index`` in older files), labels, and the steps rows name."""

    ids: list[str]
    labels: list[int | float]
    steps: set[int]


def read_text(path: str | Path) -> str:
    """The text of an answers file, as UTF-8 with or without the byte-order mark spreadsheet programs write."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"Expected {str(path)!r} to be UTF-8 text, but byte {err.start} ({data[err.start : err.start + 1]!r}) is"
            ' not UTF-8: save it as UTF-8 ("CSV UTF-8" in spreadsheet programs).'
        ) from err


def _format(path: Path) -> Literal["csv", "json"]:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise ValueError(f"Expected argument `path` to end in `.json` or `.csv`, but got {str(path)!r}.")
    return "csv" if suffix == ".csv" else "json"


def write_queries(
    path: str | Path,
    indices: Sequence[int],
    step: int,
    ids: Sequence[int | str] | None = None,
    scores: Sequence[float | None] | None = None,
) -> Path:
    """Write one row per queried item with an empty ``label`` for the annotator to fill in.

    The columns are in docs/annotators.md#query-files; ``ids`` default to the indices.
    """
    path = Path(path)
    ids = list(indices) if ids is None else list(ids)
    scores = [None] * len(ids) if scores is None else list(scores)
    rows = [
        {"id": item, "index": int(index), "step": step, "score": score, "label": None}
        for item, index, score in zip(ids, indices, scores, strict=True)
    ]
    if _format(path) == "json":
        path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    else:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["id", "index", "step", "score", "label"])
            writer.writeheader()
            writer.writerows({**row, "score": "" if row["score"] is None else row["score"]} for row in rows)
    return path


def parse_label(value: Any) -> int | float | None:
    """An answer's label as a number (``None`` when empty); plain decimal only."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if isinstance(value, str) and _INTEGER.fullmatch(text):
        return int(text)
    if isinstance(value, str) and _NUMBER.fullmatch(text):
        return float(text)
    raise ValueError(f"Expected every `label` to be a number or empty, but got {value!r}.")


def _load_rows(path: Path, format: Literal["csv", "json"]) -> list[Any]:
    text = read_text(path)
    if format == "json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"Expected {str(path)!r} to hold JSON, but it does not parse (truncated?): {err}") from err
        if not isinstance(rows, list):
            raise ValueError(
                f"Expected {str(path)!r} to hold a JSON list of query rows, but got {type(rows).__name__}."
            )
        if rows and all(isinstance(row, dict) and isinstance(row.get("data"), dict) for row in rows):
            raise ValueError(
                f"Expected {str(path)!r} to hold query rows (`id`, `step`, `label`), but it holds Label Studio tasks:"
                " read it as a Label Studio export (format 'label_studio', with the class names)."
            )
        return rows
    reader = csv.DictReader(io.StringIO(text, newline=""))
    # Without the header, the first answer would be read as column names and silently dropped.
    if reader.fieldnames is None or "label" not in reader.fieldnames or not {"id", "index"} & set(reader.fieldnames):
        looks_json = text.lstrip()[:1] in ("[", "{")
        raise ValueError(
            f"Expected {str(path)!r} to start with the header `id,index,step,score,label`, but got"
            f" {reader.fieldnames!r}{': it looks like JSON, not CSV' if looks_json else ''}."
        )
    rows = list(reader)
    for number, row in enumerate(rows, start=2):
        # csv fills the missing cells of a cut-off last line with None.
        if None in row.values() or None in row:
            raise ValueError(f"Expected every row of {str(path)!r} to have all columns, but line {number} does not.")
    return rows


def read_answers(path: str | Path, format: Literal["csv", "json"] | None = None) -> Answers:
    """Read the answered rows of a file written by :func:`write_queries` (as ``format``, default by its suffix).

    Examples:
        >>> import tempfile
        >>> path = write_queries(Path(tempfile.mkdtemp()) / "q.json", [4, 2], step=3, ids=["d.png", "b.png"])
        >>> path.write_text(path.read_text().replace('"label": null', '"label": 1', 1)) > 0
        True
        >>> read_answers(path)
        Answers(ids=['d.png'], labels=[1], steps={3})
    """
    path = Path(path)
    if format is not None and format not in ("csv", "json"):
        raise ValueError(f"Expected argument `format` to be 'csv', 'json' or None, but got {format!r}.")
    ids: list[str] = []
    labels: list[int | float] = []
    steps: set[int] = set()
    for row in _load_rows(path, format or _format(path)):
        if not isinstance(row, dict) or not {"id", "index"} & set(row):
            raise ValueError(f"Expected every row of {str(path)!r} to have an `id`, but got {row!r}.")
        if row.get("step") not in (None, ""):
            steps.add(_parse_int("step", row["step"]))
        label = parse_label(row.get("label"))
        if label is None:
            continue
        if isinstance(label, float) and not math.isfinite(label):
            raise ValueError(f"Expected every `label` to be a finite number, but got {label!r}.")
        ids.append(_parse_id(row["id"]) if "id" in row else str(_parse_int("index", row["index"])))
        labels.append(label)
    return Answers(ids, labels, steps)


def _parse_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"Expected every `id` to be an integer or a non-empty string, but got {value!r}.")
    return value if isinstance(value, str) else str(value)


def _parse_int(name: str, value: Any) -> int:
    # `int(0.7)` would label item 0 and `int(True)` item 1: only whole numbers name an item.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    raise ValueError(f"Expected every `{name}` to be an integer, but got {value!r}.")
