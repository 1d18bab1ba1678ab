"""Skip what needs torchmetrics' ``MeanAveragePrecision`` where it cannot be built (no torchvision, no COCO backend)."""

from __future__ import annotations

import pytest

from lightning_bal.tasks.detection import Detection

__all__ = ["needs_map"]


def _map_or_reason() -> str:
    try:
        Detection().metric()
    except ModuleNotFoundError as err:
        return f"torchmetrics' MeanAveragePrecision cannot be built here (the `detection` extra): {err}"
    return ""


_REASON = _map_or_reason()
needs_map = pytest.mark.skipif(bool(_REASON), reason=_REASON)
