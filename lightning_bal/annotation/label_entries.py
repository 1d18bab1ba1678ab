"""Where a checkpoint keeps its label state: the datamodule's entry and the callback's, found and validated."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from lightning_bal.annotation.checkpoint_entries import CALLBACK_KEY, check_recorded, entry_mapping
from lightning_bal.data.ids import ItemId, check_ids
from lightning_bal.data.ledger import LabelLedger
from lightning_bal.tasks import resolve_task

__all__ = ["find_label_entries"]


def find_label_entries(
    checkpoint: dict[str, Any], source: str
) -> tuple[str, LabelLedger, list[ItemId], dict[str, Any]]:
    """The datamodule's key, its ledger and ids, and the callback's state in a loaded ``checkpoint``, validated.

    ``source`` names where the checkpoint came from, for messages.
    """
    keys = [
        key
        for key, value in checkpoint.items()
        if isinstance(value, dict) and {"acquired_at", "step", "pending_query"} <= set(value)
    ]
    if len(keys) != 1:
        raise ValueError(
            f"Expected {source} to hold the state of one `ActiveDataModule`, but found {len(keys)}"
            f" (top-level keys: {sorted(checkpoint)})."
        )
    key = keys[0]
    state = checkpoint[key]
    acquired_at = state["acquired_at"]
    if not isinstance(acquired_at, Tensor) or acquired_at.dim() != 1:
        raise ValueError(
            f"Expected the entry `{key}.acquired_at` of {source} to be a 1-D tensor, but got"
            f" {tuple(acquired_at.shape) if isinstance(acquired_at, Tensor) else type(acquired_at).__name__}."
        )
    size = int(acquired_at.numel())
    try:
        task = resolve_task(state.get("task"), state.get("task_options"))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"Expected the entries `{key}.task` and `{key}.task_options` of {source} to name a task, but they do"
            f" not: {err}"
        ) from err
    ledger = LabelLedger(size, task, state.get("num_classes"))
    ledger.load_state_dict(state)
    saved = state.get("ids")
    ids: list[ItemId] = list(range(size)) if saved is None else check_ids(f"{key}.ids", saved, size)
    callbacks = entry_mapping(checkpoint.get("callbacks"), "callbacks", source)
    callback_state = entry_mapping(callbacks.get(CALLBACK_KEY), f"callbacks.{CALLBACK_KEY}", source)
    annotator = entry_mapping(callback_state.get("annotator"), f"callbacks.{CALLBACK_KEY}.annotator", source)
    check_recorded(annotator, source)
    _check_answer_rows(annotator, source)
    history = callback_state.get("history") or []
    if not isinstance(history, list) or not all(isinstance(entry, dict) for entry in history):
        raise ValueError(
            f"Expected the entry `callbacks.{CALLBACK_KEY}.history` of {source} to be a list of dicts, but got"
            f" {history!r}."
        )
    return key, ledger, ids, callback_state


def _check_answer_rows(annotator: dict[str, Any], source: str) -> None:
    entry = f"callbacks.{CALLBACK_KEY}.annotator"
    for key, needs in (("answers", ("id", "step", "by", "label")), ("agreement", ("step", "kappa"))):
        rows = annotator.get(key) or []
        if not isinstance(rows, list) or not all(isinstance(row, dict) and set(needs) <= set(row) for row in rows):
            raise ValueError(
                f"Expected the entry `{entry}.{key}` of {source} to be a list of dicts with {list(needs)}, but got"
                f" {rows!r:.200}."
            )
