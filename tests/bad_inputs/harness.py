"""The bad-input harness: call, expect a clear error, and prove the state bit-identical before and after.

Every refusal goes through :func:`refuses`, which records its outcome in :data:`RECORDS` (entry point, outcome) so
that ``python -m tests.bad_inputs.count`` can report how many bad inputs were tried and how many got a clear error
with nothing changed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lightning_bal import ActiveDataModule
from lightning_bal.data.ledger import LabelLedger

__all__ = ["RECORDS", "accepts", "refuses", "snapshot"]

# (entry point, outcome): "clear", or what went wrong ("no error", "wrong type", "unclear message", "state changed").
RECORDS: list[tuple[str, str]] = []


def _tensor(value: Tensor) -> tuple:
    # Bit-identical and NaN-aware: compare the raw bytes, with dtype and shape.
    flat = value.detach().cpu().contiguous().reshape(-1)
    raw = flat.view(torch.uint8) if flat.numel() and flat.dtype != torch.bool else flat.to(torch.uint8)
    return ("tensor", str(value.dtype), tuple(value.shape), raw.numpy().tobytes())


def snapshot(obj: Any, _seen: dict[int, Any] | None = None) -> Any:
    """A comparable, deep, bit-exact picture of ``obj``'s state (tensors by their bytes, generators by their state).

    Datamodules by their ``state_dict`` and generator, ledgers by their ``state_dict``, modules by their
    ``state_dict`` and the ``training`` flag of every submodule, any other object by its attributes.
    """
    # Objects seen, kept alive until the end: the id of a freed temporary (a fresh `state_dict()`) can be reused.
    seen: dict[int, Any] = {} if _seen is None else _seen
    if isinstance(obj, Tensor):
        return _tensor(obj)
    if isinstance(obj, np.ndarray):
        return ("ndarray", str(obj.dtype), obj.shape, np.ascontiguousarray(obj).tobytes())
    if isinstance(obj, torch.Generator):
        return _tensor(obj.get_state())
    if isinstance(obj, float):
        return ("float", repr(obj)) if math.isnan(obj) else obj
    if obj is None or isinstance(obj, (bool, int, str, bytes, torch.dtype, torch.device)):
        return obj
    if id(obj) in seen:
        return ("seen", type(obj).__name__)
    seen[id(obj)] = obj
    if isinstance(obj, ActiveDataModule):
        return (
            "datamodule",
            snapshot(obj.state_dict(), seen),
            snapshot(obj.generator, seen),
            snapshot(obj.annotations, seen),
            snapshot({k: v for k, v in vars(obj).items() if k.startswith("_pool") or k == "seed"}, seen),
        )
    if isinstance(obj, LabelLedger):
        return ("ledger", snapshot(obj.state_dict(), seen), obj.task, obj.num_classes)
    if isinstance(obj, nn.Module):
        return ("module", snapshot(obj.state_dict(), seen), [m.training for m in obj.modules()])
    if isinstance(obj, dict):
        return ("dict", [(repr(k), snapshot(v, seen)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [snapshot(v, seen) for v in obj])
    if isinstance(obj, (set, frozenset)):
        return ("set", sorted(repr(v) for v in obj))
    if callable(obj) and not hasattr(obj, "__dict__"):
        return ("callable", repr(obj))
    if hasattr(obj, "__dict__"):
        return (type(obj).__name__, snapshot(vars(obj), seen))
    return ("repr", repr(obj))


def refuses(
    entry: str,
    call: Callable[[], Any],
    error: type[BaseException] | tuple[type[BaseException], ...],
    match: str,
    *states: Any,
) -> None:
    """Assert that ``call()`` raises ``error`` with a message matching ``match``, and leaves ``states`` unchanged.

    ``match`` is a regex searched in the message: each case's pattern names the argument and the problem.
    """
    before = [snapshot(state) for state in states]
    outcome = "clear"
    try:
        call()
    except BaseException as err:  # noqa: BLE001 - the outcome is classified, then asserted below
        if not isinstance(err, error):
            outcome = f"wrong type {type(err).__name__}: {err}"
        elif not re.search(match, str(err)):
            outcome = f"unclear message: {err}"
        elif [snapshot(state) for state in states] != before:
            outcome = "state changed"
    else:
        outcome = "no error" if [snapshot(state) for state in states] == before else "no error, state changed"
    RECORDS.append((entry, "clear" if outcome == "clear" else outcome.split(":")[0]))
    assert outcome == "clear", f"{entry}: expected {error} matching {match!r}, got {outcome}"


def accepts(call: Callable[[], Any]) -> Any:
    """Run a valid counterpart: it must not raise (its result is returned for further checks)."""
    return call()
