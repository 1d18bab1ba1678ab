"""Checks that a :class:`~lightning_bal.posteriors.DeepEnsemble`'s members, run through member 0's modules, agree."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["check_same_architecture"]


def _signature(member: nn.Module) -> list[tuple[str, str, tuple[int, ...], torch.dtype]]:
    return [
        *((name, "parameter", tuple(p.shape), p.dtype) for name, p in member.named_parameters()),
        *((name, "buffer", tuple(b.shape), b.dtype) for name, b in member.named_buffers()),
    ]


def check_same_architecture(members: list[nn.Module]) -> None:
    """Raise unless every member is an ``nn.Module`` with member 0's weights, submodules and forward."""
    for m, member in enumerate(members):
        if not isinstance(member, nn.Module):
            raise TypeError(
                f"Expected every member of the ensemble to be an `nn.Module`, but member {m} is {member!r}."
            )
    reference = _signature(members[0])
    for m, member in enumerate(members[1:], start=1):
        prefix = f"Expected every member of the ensemble to have member 0's architecture, but member {m}"
        if type(member) is not type(members[0]):
            raise ValueError(f"{prefix} is a {type(member).__name__} (member 0: {type(members[0]).__name__}).")
        signature = _signature(member)
        names = {entry[0]: entry for entry in reference}
        for name, kind, shape, dtype in signature:
            if name not in names:
                raise ValueError(f"{prefix} has a {kind} `{name}` that member 0 lacks.")
            _, _, ref_shape, ref_dtype = names[name]
            if (shape, dtype) != (ref_shape, ref_dtype):
                what = f"of shape {shape} (member 0: {ref_shape})" if shape != ref_shape else f"of dtype {dtype}"
                raise ValueError(f"{prefix} has `{name}` {what}.")
        if len(signature) != len(reference):
            raise ValueError(f"{prefix} lacks {sorted(set(names) - {entry[0] for entry in signature})}.")
        _check_same_structure(members[0], member, m)


# Plain settings of a module (`p` of a Dropout, `negative_slope`, a custom layer's `scale`): they change its forward.
_SETTINGS = (bool, int, float, str, tuple, type(None))


def _structure(member: nn.Module) -> list[tuple[str, type, str, dict[str, str], Any]]:
    """What decides a member's forward besides its weights: each submodule's class, settings, mode, own ``forward``."""
    rows = []
    for name, module in member.named_modules():
        settings = {
            key: repr(value)
            for key, value in vars(module).items()
            if not key.startswith("_") and isinstance(value, _SETTINGS)
        }
        forward = vars(module).get("forward")
        rows.append((name, type(module), module.extra_repr(), settings, getattr(forward, "__code__", forward)))
    return rows


def _check_same_structure(first: nn.Module, member: nn.Module, m: int) -> None:
    prefix = f"Expected every member of the ensemble to compute member 0's forward, but member {m}"
    reference, structure = _structure(first), _structure(member)
    if [row[0] for row in structure] != [row[0] for row in reference]:
        raise ValueError(
            f"{prefix} has the submodules {[row[0] for row in structure]} (member 0: {[row[0] for row in reference]})."
        )
    for (name, kind, extra, settings, forward), (_, ref_kind, ref_extra, ref_settings, ref_forward) in zip(
        structure, reference, strict=True
    ):
        where = f"`{name}`" if name else "top module"
        if kind is not ref_kind:
            raise ValueError(f"{prefix}'s {where} is a {kind.__name__} (member 0: {ref_kind.__name__}).")
        if extra != ref_extra or settings != ref_settings:
            differ = sorted(key for key in {*settings, *ref_settings} if settings.get(key) != ref_settings.get(key))
            got = ", ".join(f"{key}={settings.get(key)}" for key in differ) or extra
            had = ", ".join(f"{key}={ref_settings.get(key)}" for key in differ) or ref_extra
            raise ValueError(f"{prefix}'s {where} has {got} (member 0: {had}).")
        if forward is not ref_forward:
            raise ValueError(f"{prefix}'s {where} has its own `forward`, unlike member 0's.")
