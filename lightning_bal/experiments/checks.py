"""The argument checks of an experiment: its rows, factories and settings, and its result's metric, columns and paths.

Each refuses before any run starts what would otherwise fail inside the first run (or silently do something else),
naming the argument and what it got.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping
from numbers import Real
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from lightning_bal.callbacks import ActiveLearningCallback
from lightning_bal.experiments.curves import check_threshold
from lightning_bal.heuristics import HEURISTICS, available_heuristics

__all__ = [
    "check_built",
    "check_callback",
    "check_columns",
    "check_factory",
    "check_heuristic",
    "check_metric",
    "check_path",
    "check_thresholds",
    "check_trainer",
    "is_number",
]


def is_number(value: Any) -> bool:
    """A real number: a Python or NumPy number, or a one-element tensor (a callback's history may hold either)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, Real):
        return True
    return hasattr(value, "numel") and value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool


def check_heuristic(argument: str, name: Any) -> None:
    """Refuse a row name that is not a registered heuristic (``get_heuristic`` would only fail inside the first run)."""
    if not isinstance(name, str) or name.strip().lower().replace("-", "_") not in HEURISTICS:
        raise ValueError(
            f"Expected argument `{argument}` to name registered heuristics (or rows of `rows`), but got {name!r}."
            f" Available: {', '.join(available_heuristics())}."
        )


def check_factory(argument: str, factory: Any, builds: str) -> None:
    """Refuse a model or datamodule given where a function building one is expected (it would fail at run time)."""
    if isinstance(factory, (nn.Module, pl.LightningDataModule)) or not callable(factory):
        raise TypeError(
            f"Expected argument `{argument}` to be a callable that builds {builds}, but got"
            f" {type(factory).__name__} instance {factory!r:.80}."
        )


def check_built(argument: str, built: Any, kind: type, seed: int) -> Any:
    """``built`` if it is a ``kind``: what a factory returned for ``seed`` (named by ``argument`` otherwise)."""
    if not isinstance(built, kind):
        raise TypeError(
            f"Expected argument `{argument}` to build a {kind.__name__} for seed {seed}, but it returned"
            f" {type(built).__name__}."
        )
    return built


def check_callback(argument: str, settings: Any) -> None:
    """Refuse callback settings that ``ActiveLearningCallback`` does not take, before any run starts."""
    if settings is None:
        return
    if not isinstance(settings, Mapping) or not all(isinstance(key, str) for key in settings):
        raise TypeError(f"Expected argument `{argument}` to be a mapping of keyword arguments, but got {settings!r}.")
    parameters = _named_parameters(ActiveLearningCallback)
    unknown = sorted(key for key in settings if key not in parameters)
    if unknown:
        raise ValueError(
            f"Expected argument `{argument}` to hold arguments of ActiveLearningCallback, but {unknown} are not"
            f" among {sorted(parameters)}."
        )


def _named_parameters(cls: type) -> list[str]:
    """The keyword arguments ``cls`` names (a ``**kwargs`` of the callback only refuses moved names)."""
    variadic = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    return [name for name, p in inspect.signature(cls).parameters.items() if p.kind not in variadic]


def check_trainer(settings: Any) -> None:
    """Refuse trainer settings that ``Trainer`` does not take, before any run starts."""
    if settings is None:
        return
    if not isinstance(settings, Mapping) or not all(isinstance(key, str) for key in settings):
        raise TypeError(f"Expected argument `trainer` to be a mapping of keyword arguments, but got {settings!r}.")
    parameters = _named_parameters(pl.Trainer)
    unknown = sorted(key for key in settings if key not in parameters)
    if unknown:
        raise ValueError(f"Expected argument `trainer` to hold arguments of Trainer, but {unknown} are not among them.")


def check_metric(argument: str, metric: Any) -> str:
    """``metric`` if it is a non-empty history key."""
    if not isinstance(metric, str) or not metric:
        raise TypeError(f"Expected argument `{argument}` to be a non-empty history key string, but got {metric!r}.")
    return metric


def check_thresholds(thresholds: Any) -> list[float]:
    """``thresholds`` as a list of finite numbers (a single number or a string is refused)."""
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, Iterable):
        raise TypeError(f"Expected argument `thresholds` to be a sequence of numbers, but got {thresholds!r}.")
    values = list(thresholds)
    for value in values:
        check_threshold("thresholds", value)
    return [float(value) for value in values]


def check_columns(columns: Any) -> None:
    """Refuse ``columns`` that are not ``{column name: history key}`` or that take a reserved column's name."""
    if not isinstance(columns, Mapping) or not all(
        isinstance(name, str) and name and isinstance(key, str) and key for name, key in columns.items()
    ):
        raise TypeError(f"Expected argument `columns` to map column names to history keys, but got {columns!r}.")
    reserved = sorted({"heuristic", "seed", "labelled"} & set(columns))
    if reserved:
        raise ValueError(f"Expected argument `columns` without the reserved columns {reserved}.")


def check_path(path: Any) -> Path:
    """``path`` as a ``Path`` (a non-path or an empty one is refused)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"Expected argument `path` to be a file path, but got {path!r}.")
    return Path(path)
