"""Test-only: make PyPI's Linux torchvision wheel importable on a CPU-only torch.

That wheel links CUDA torch, so its compiled ops do not load here and ``import torchvision`` fails in
``torchvision/_meta_registrations.py`` with "operator torchvision::nms does not exist": it registers fake kernels
for ``torchvision::nms`` and ``torchvision::qnms`` whatever the ops' library did. :func:`install` defines those two
schemas with ``torch.library`` and a pure-torch CPU ``nms``, and lets ``torchvision.ops.nms`` use it; ``roi_align``
falls back to torchvision's own Python implementation when its compiled ops are missing. Never used by the library.

torchmetrics imports torchvision when it is installed, so where such a wheel is installed this module must be loaded
first: ``pytest -p tests.detection.torchvision_cpu ...`` (importing it installs the shim).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch
from torch import Tensor

__all__ = ["install", "nms", "torchvision_or_reason"]

_LIBRARY: torch.library.Library | None = None


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of the boxes kept by greedy non-maximum suppression, by decreasing score (torchvision's contract)."""
    order = torch.argsort(scores, descending=True, stable=True)
    boxes = boxes[order]
    x1, y1, x2, y2 = boxes.unbind(1)
    area = (x2 - x1).clamp_min(0) * (y2 - y1).clamp_min(0)
    width = (torch.minimum(x2[:, None], x2[None]) - torch.maximum(x1[:, None], x1[None])).clamp_min(0)
    height = (torch.minimum(y2[:, None], y2[None]) - torch.maximum(y1[:, None], y1[None])).clamp_min(0)
    intersection = width * height
    iou = intersection / (area[:, None] + area[None] - intersection).clamp_min(torch.finfo(boxes.dtype).tiny)
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool)
    # Greedy by definition: a box suppresses others only while it is itself kept.
    for i in range(boxes.shape[0]):
        if not suppressed[i]:
            suppressed |= iou[i] > iou_threshold
            suppressed[i] = False
    return order[~suppressed]


def install() -> None:
    """Define ``torchvision::nms`` / ``torchvision::qnms`` (once) so that ``import torchvision`` succeeds on CPU."""
    global _LIBRARY
    if _LIBRARY is not None or hasattr(torch.ops.torchvision, "nms"):
        return
    _LIBRARY = torch.library.Library("torchvision", "DEF")
    _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.impl("nms", nms, "CPU")


def torchvision_or_reason() -> tuple[ModuleType | None, str]:
    """``(torchvision, "")`` with the shim installed, or ``(None, why it cannot be imported)``."""
    try:
        install()
        torchvision = importlib.import_module("torchvision")
        boxes = importlib.import_module("torchvision.ops.boxes")
    except (ImportError, RuntimeError, OSError) as err:
        return None, f"torchvision cannot be imported even with the CPU shim: {err}"
    # Its compiled ops did not load: `ops.nms` would refuse before calling the op defined above.
    boxes._assert_has_ops = lambda: None
    return torchvision, ""


# Loaded as a pytest plugin (`-p`), this runs before any test module imports torchmetrics, hence torchvision.
install()
