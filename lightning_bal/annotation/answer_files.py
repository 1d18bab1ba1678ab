"""Answer files brought into a checkpoint's label state: CSV or JSON query rows, or a Label Studio export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from torch import Tensor

from lightning_bal.annotation.checkpoint import FORMATS, load_label_state
from lightning_bal.annotation.checkpoint_entries import Imported
from lightning_bal.annotation.label_studio import read_label_studio_export
from lightning_bal.data.queries import read_answers, read_text
from lightning_bal.utilities.checks import check_one_of

__all__ = ["answers_format", "bring_in_answers", "import_answers"]


def _holds_label_studio_tasks(path: Path) -> bool:
    try:
        rows = json.loads(read_text(path))
    except (ValueError, OSError):
        return False  # the reader of the chosen format names what is wrong with the file
    return isinstance(rows, list) and any(isinstance(row, dict) and isinstance(row.get("data"), dict) for row in rows)


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
    on_disagreement: Literal["first", "skip", "error"] = "first",
    by: str | None = None,
) -> Imported:
    """:func:`import_answers`, returning what it did: labelled, corrected, unchanged and kept answers.

    ``by`` names who gave the answers that do not say it themselves (CSV and JSON rows), for the history.
    """
    if output is not None and Path(output).resolve() == Path(answers).resolve():
        raise ValueError(
            f"Expected argument `output` to be another file than the answers, but got {str(output)!r} for both."
        )
    state = load_label_state(checkpoint)
    format = answers_format(answers, format, label_map)
    if format == "label_studio":
        if label_map is None:
            raise ValueError(
                f"Expected argument `label_map` (class names to indices) to read the Label Studio export"
                f" {str(Path(answers))!r}, but got None."
            )
        studio = read_label_studio_export(answers, label_map, on_disagreement=on_disagreement)
        ids, labels, steps, times = studio.ids, studio.labels, studio.steps, studio.times
        authors = [author or by for author in studio.authors]
    else:
        rows = read_answers(answers, format)
        ids, labels, steps, times = rows.ids, rows.labels, rows.steps, None
        authors = [by] * len(ids)
    imported = state.answer(ids, labels, steps, repr(str(answers)), authors, times)
    state.save(output or checkpoint)
    return imported


def import_answers(
    checkpoint: str | Path,
    answers: str | Path,
    output: str | Path | None = None,
    format: Literal["csv", "json", "label_studio"] | None = None,
    label_map: dict[str, int] | None = None,
    on_disagreement: Literal["first", "skip", "error"] = "first",
) -> Tensor:
    r"""Record the answers of ``answers`` in the checkpoint's label state and write it back (to ``output``).

    All or nothing, replacing the checkpoint atomically; returns the dataset indices labelled. Answers imported
    before are skipped and changed ones come in as corrections (docs/annotators.md#one-project-for-the-whole-run).

    Example:
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
    return bring_in_answers(checkpoint, answers, output, format, label_map, on_disagreement).labelled
