"""Reading and writing queries for a labelling team that works outside Python (JSON or CSV)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

__all__ = ["read_answers", "write_queries"]


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise ValueError(f"Expected argument `path` to end in `.json` or `.csv`, but got {str(path)!r}.")
    return suffix[1:]


def write_queries(path: str | Path, indices: list[int], step: int) -> Path:
    """Write one row per queried dataset index with an empty ``label`` for the annotator to fill in.

    JSON holds a list of ``{"index": i, "step": s, "label": null}``; CSV the columns ``index,step,label``.
    """
    path = Path(path)
    if _format(path) == "json":
        rows = [{"index": i, "step": step, "label": None} for i in indices]
        path.write_text(json.dumps(rows, indent=2) + "\n")
    else:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "step", "label"])
            writer.writerows([i, step, ""] for i in indices)
    return path


def _parse_label(value: Any) -> int | float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError as err:
            raise ValueError(f"Expected every `label` to be a number or empty, but got {value!r}.") from err


def read_answers(path: str | Path) -> tuple[list[int], list[int | float]]:
    """Read the answered rows of a file written by :func:`write_queries`; rows with an empty label are skipped."""
    path = Path(path)
    if _format(path) == "json":
        rows = json.loads(path.read_text())
        if not isinstance(rows, list):
            raise ValueError(
                f"Expected {str(path)!r} to hold a JSON list of query rows, but got {type(rows).__name__}."
            )
    else:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            # Without the header, the first answer would be read as column names and silently dropped.
            if reader.fieldnames is None or not {"index", "label"} <= set(reader.fieldnames):
                raise ValueError(
                    f"Expected {str(path)!r} to start with the header `index,step,label`, but got"
                    f" {reader.fieldnames!r}."
                )
            rows = list(reader)
    indices: list[int] = []
    labels: list[int | float] = []
    for row in rows:
        if not isinstance(row, dict) or "index" not in row:
            raise ValueError(f"Expected every row of {str(path)!r} to have an `index`, but got {row!r}.")
        label = _parse_label(row.get("label"))
        if label is not None:
            indices.append(_parse_index(row["index"]))
            labels.append(label)
    return indices, labels


def _parse_index(value: Any) -> int:
    # `int(0.7)` would label item 0 and `int(True)` item 1: only whole numbers name an item.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"Expected every `index` to be an integer dataset index, but got {value!r}.")
