"""Stable item ids: the names a labelling team uses for items, and re-mapping label state onto a changed dataset."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_bal.utilities.checks import describe

__all__ = ["ItemId", "align_state", "check_ids", "id_lookup", "remap_state"]

ItemId = int | str

#: Keys of the datamodule's state that hold one value per dataset position.
_PER_ITEM = {"acquired_at": -1, "acquisition_order": -1, "acquisition_probability": float("nan")}
#: Keys that hold dataset positions.
_POSITIONS = ("annotation_indices", "pending_query", "pool_subset")


def check_ids(name: str, ids: Any, size: int) -> list[ItemId]:
    """``ids`` as a list of ``size`` distinct integers or strings (distinct as text too: files store them as text)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (Sequence, Tensor)) and not hasattr(ids, "tolist"):
        raise TypeError(
            f"Expected argument `{name}` to be a sequence of ints or strings, but got {type(ids).__name__}."
        )
    values = ids.tolist() if hasattr(ids, "tolist") else list(ids)
    if len(values) != size:
        raise ValueError(f"Expected argument `{name}` to hold one id per item ({size}), but got {len(values)}.")
    seen: set[str] = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (numbers.Integral, str)):
            raise TypeError(f"Expected argument `{name}` to hold ints or strings, but got {value!r}.")
        if str(value) in seen:
            raise ValueError(f"Expected argument `{name}` to hold distinct ids, but got {value!r} more than once.")
        seen.add(str(value))
    return [value if isinstance(value, str) else int(value) for value in values]


def id_lookup(ids: Sequence[ItemId]) -> dict[str, int]:
    """Position of every id, keyed by the id as text (how CSV, JSON and Label Studio files carry it)."""
    return {str(value): position for position, value in enumerate(ids)}


def remap_state(state: dict[str, Any], old_ids: Sequence[ItemId], new_ids: Sequence[ItemId]) -> dict[str, Any]:
    """Move a datamodule state saved for items ``old_ids`` onto items ``new_ids`` (re-ordered, grown or shrunk).

    New items join the pool; a dropped item must have been in the pool and not queried (its label would vanish).

    Examples:
        >>> state = {"acquired_at": torch.tensor([0, -1]), "step": 0, "pending_query": torch.tensor([1])}
        >>> moved = remap_state(state, ["a", "b"], ["c", "b", "a"])
        >>> moved["acquired_at"].tolist(), moved["pending_query"].tolist()
        ([-1, -1, 0], [1])
    """
    lookup = id_lookup(new_ids)
    mapping = torch.tensor([lookup.get(str(value), -1) for value in old_ids], dtype=torch.long)
    acquired_at = state["acquired_at"]
    if not isinstance(acquired_at, Tensor) or acquired_at.shape != (len(old_ids),):
        raise ValueError(
            f"Expected the state's `acquired_at` to hold one entry per id ({len(old_ids)}), but got"
            f" {tuple(acquired_at.shape) if isinstance(acquired_at, Tensor) else type(acquired_at).__name__}."
        )
    positions = {key: torch.as_tensor(state.get(key, []), dtype=torch.long).reshape(-1) for key in _POSITIONS}
    for key, held in positions.items():
        if bool(((held < 0) | (held >= len(old_ids))).any()):
            raise ValueError(
                f"Expected the state's `{key}` to hold positions in [0, {len(old_ids)}) (its `acquired_at` holds"
                f" {len(old_ids)} items), but it does not."
            )
    needed = (acquired_at != -1).clone()
    needed[positions["pending_query"]] = True
    lost = torch.nonzero(needed & (mapping < 0)).reshape(-1)
    if lost.numel():
        raise ValueError(
            "Expected every labelled or queried item of the saved state to be in the dataset, but the ids"
            f" {describe([old_ids[i] for i in lost.tolist()])} are missing from it."
        )
    kept = mapping >= 0
    moved = dict(state)
    for key, fill in _PER_ITEM.items():
        if key in state:
            old = state[key]
            if not isinstance(old, Tensor) or old.shape != (len(old_ids),):
                raise ValueError(f"Expected the state's `{key}` to hold one entry per id ({len(old_ids)}).")
            new = torch.full((len(new_ids),), fill, dtype=old.dtype)
            new[mapping[kept]] = old[kept]
            moved[key] = new
    for key in _POSITIONS:
        if key in state:
            new_positions = mapping[positions[key]]
            moved[key] = new_positions[new_positions >= 0]  # pool subset members that left the dataset drop out
    moved["ids"] = list(new_ids)
    return moved


def align_state(state: dict[str, Any], ids: list[ItemId] | None, size: int) -> dict[str, Any]:
    """A datamodule ``state`` re-mapped onto the items named ``ids`` (``None``: the default ids ``0 .. size-1``).

    A state saved for the same items, or a malformed one (for the ledger's checks to name), is returned as it is.
    """
    acquired_at = state.get("acquired_at")
    saved_ids = state.get("ids")
    if saved_ids is None and ids is None and isinstance(acquired_at, Tensor) and len(acquired_at) >= size:
        return state  # same default ids (a larger state fails the ledger's size check with a clear message)
    if not isinstance(acquired_at, Tensor) or acquired_at.dim() != 1:
        return state
    if isinstance(saved_ids, list) and saved_ids == ids:
        return state  # the usual resume: this module's own ids, already checked
    old_ids = list(range(len(acquired_at))) if saved_ids is None else check_ids("ids", saved_ids, len(acquired_at))
    new_ids = list(range(size)) if ids is None else ids
    if old_ids == new_ids:
        return state
    return remap_state(state, old_ids, new_ids)
