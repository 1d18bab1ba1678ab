"""lightning_bal: Bayesian active learning for PyTorch Lightning."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lightning_bal.__about__ import __version__

if TYPE_CHECKING:
    from lightning_bal.callbacks import ActiveLearningCallback
    from lightning_bal.data import ActiveDataModule

__all__ = ["ActiveDataModule", "ActiveLearningCallback", "__version__"]

# Imported on first use, so that `lightning-bal` starts without loading Lightning (see `annotation/cli.py`).
_HOMES = {"ActiveDataModule": "lightning_bal.data", "ActiveLearningCallback": "lightning_bal.callbacks"}
_SUBPACKAGES = (
    "annotation",
    "callbacks",
    "data",
    "experiments",
    "functional",
    "heuristics",
    "mc",
    "posteriors",
    "utilities",
)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
