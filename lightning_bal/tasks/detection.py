"""Object detection: an image's label is its boxes and classes, its output K sets of detections (docs/detection.md).

The format is torchvision's. A label is ``{"boxes": FloatTensor[n, 4], "labels": LongTensor[n]}``: xyxy boxes in
pixels, classes in ``1..C`` (0 is the background, never a box's class; a dataset of C classes has
``num_classes = C + 1``, as torchvision counts), ``n >= 0``. A model in eval mode returns a list with one dict per
image (``boxes``, ``labels``, ``scores`` and optionally ``class_probs`` ``[m, C + 1]``); in training mode
``model(images, targets)`` returns a dict of losses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_bal.functional.detection import check_detections
from lightning_bal.tasks import NAMED_TASKS, Task

__all__ = ["Detection", "detection_collate"]


def _size(value: Any, name: str) -> tuple[int, int]:
    if (
        not isinstance(value, (tuple, list, Tensor))
        or len(value) != 2
        or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in _as_list(value))
    ):
        raise ValueError(f"Expected `{name}` to be (height, width), two positive integers, but got {value!r}.")
    height, width = _as_list(value)
    return height, width


def _as_list(value: Any) -> list[Any]:
    return value.tolist() if isinstance(value, Tensor) else list(value)


class Detection(Task):
    """Images whose labels are boxes and classes, whose model returns a list of detections per image.

    Args:
        image_size: ``(height, width)`` of every image, if they share one: a labelled box must lie inside it. A
            label may also carry its own ``"image_size"`` (kept with it), which takes precedence.

    Examples:
        >>> label = Detection(image_size=(32, 32)).check_label({"boxes": [[1, 2, 10, 12]], "labels": [3]}, 4)
        >>> label["boxes"], label["labels"]
        (tensor([[ 1.,  2., 10., 12.]]), tensor([3]))
        >>> Detection().check_label({"boxes": torch.zeros(0, 4), "labels": []})["boxes"].shape
        torch.Size([0, 4])
    """

    name: ClassVar[str | None] = "detection"
    batched_samples: ClassVar[bool] = False

    def __init__(self, image_size: tuple[int, int] | None = None) -> None:
        self.image_size = None if image_size is None else _size(image_size, "image_size")

    def check_label(self, value: Any, num_classes: int | None = None) -> dict[str, Tensor]:
        """One image's boxes and classes, as float32 ``boxes [n, 4]`` and int64 ``labels [n]``, or an error.

        Boxes must be finite with ``x1 < x2`` and ``y1 < y2``, inside ``[0, width] x [0, height]`` when the image's
        size is known; classes in ``[1, num_classes)`` (``[1, inf)`` when the number of classes is not known).
        """
        if not isinstance(value, Mapping):
            raise TypeError(
                "Expected argument `labels` to hold one dict per image, {'boxes': [n, 4], 'labels': [n]}, but got"
                f" {type(value).__name__}."
            )
        unknown = sorted(set(value) - {"boxes", "labels", "image_size"})
        missing = [key for key in ("boxes", "labels") if key not in value]
        if missing or unknown:
            raise KeyError(
                f"Expected argument `labels` to hold dicts with 'boxes' and 'labels' (and optionally 'image_size'),"
                f" but got keys {sorted(value)}."
            )
        boxes = _tensor(value["boxes"], torch.float32, "boxes")
        classes = _tensor(value["labels"], torch.int64, "labels")
        if boxes.numel() == 0 and boxes.ndim < 2:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"Expected argument `labels`' 'boxes' to be [n, 4], but got shape {tuple(boxes.shape)}.")
        if classes.shape != (boxes.shape[0],):
            raise ValueError(
                f"Expected argument `labels`' 'labels' to hold one class per box ({boxes.shape[0]}), but got shape"
                f" {tuple(classes.shape)}."
            )
        if not bool(torch.isfinite(boxes).all()):
            raise ValueError(f"Expected argument `labels`' 'boxes' to be finite, but got {boxes.tolist()}.")
        inverted = (boxes[:, 0] >= boxes[:, 2]) | (boxes[:, 1] >= boxes[:, 3])
        if bool(inverted.any()):
            raise ValueError(
                f"Expected argument `labels`' 'boxes' to have x1 < x2 and y1 < y2, but got {boxes[inverted].tolist()}."
            )
        checked = {"boxes": boxes, "labels": classes}
        size = self.image_size
        if "image_size" in value:
            size = _size(value["image_size"], "labels' 'image_size'")
            checked["image_size"] = torch.tensor(size, dtype=torch.int64)
        if size is not None:
            height, width = size
            outside = (boxes[:, :2] < 0).any(1) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
            if bool(outside.any()):
                raise ValueError(
                    f"Expected argument `labels`' 'boxes' inside the image (width {width}, height {height}), but got"
                    f" {boxes[outside].tolist()}."
                )
        upper = num_classes if num_classes is not None else math.inf
        wrong = classes[(classes < 1) | (classes >= upper)]
        if wrong.numel():
            span = f"[1, {num_classes})" if num_classes is not None else "[1, inf)"
            raise ValueError(
                f"Expected argument `labels`' 'labels' to hold classes in {span} (0 is the background), but got"
                f" {wrong.tolist()}."
            )
        return checked

    def stack_samples(self, samples: list[Any]) -> list[list[dict[str, Tensor]]]:
        """K lists of B images' detections to B lists of K: each image keeps its K samples, of any sizes."""
        checked = [check_detections(sample, f"outputs of sample {k}") for k, sample in enumerate(samples)]
        sizes = {len(sample) for sample in checked}
        if len(sizes) > 1:
            raise ValueError(
                f"Expected every sample to hold the batch's images, but got lists of sizes {sorted(sizes)}."
            )
        return [list(images) for images in zip(*checked, strict=True)]

    def cat_items(self, parts: list[Any]) -> list[list[dict[str, Tensor]]]:
        """Runs of images joined into one list."""
        return [image for part in parts for image in part]

    def metric(self, num_classes: int | None = None) -> Metric:
        """The COCO mAP and mAP@0.5 of xyxy boxes: torchmetrics' ``MeanAveragePrecision`` (the ``detection`` extra)."""
        from torchmetrics.detection.mean_ap import MeanAveragePrecision

        try:
            return MeanAveragePrecision(box_format="xyxy", iou_type="bbox")
        except ModuleNotFoundError as err:
            raise ModuleNotFoundError(
                "Expected torchmetrics' `MeanAveragePrecision` for the detection metric, but it cannot be built here:"
                f" {err} It needs a torchvision built for your torch, and pycocotools or faster-coco-eval (`pip install"
                " lightning-bal[detection]`); see docs/detection.md."
            ) from err

    def __repr__(self) -> str:
        return f"Detection(image_size={self.image_size!r})"


NAMED_TASKS["detection"] = Detection


def _tensor(value: Any, dtype: torch.dtype, field: str) -> Tensor:
    if isinstance(value, Tensor):
        if dtype == torch.int64 and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
            raise TypeError(f"Expected argument `labels`' '{field}' to hold integer classes, but got {value.dtype}.")
        return value.detach().to("cpu", dtype).clone()
    try:
        tensor = torch.tensor(value if not isinstance(value, (str, bytes)) else None, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"Expected argument `labels`' '{field}' to hold numbers, but got {value!r}.") from err
    if dtype == torch.int64 and (bool((tensor != tensor.round()).any()) or not bool(torch.isfinite(tensor).all())):
        raise TypeError(f"Expected argument `labels`' '{field}' to hold integer classes, but got {value!r}.")
    return tensor.to(dtype)


def detection_collate(items: Sequence[Any]) -> tuple[Any, ...]:
    """Batch detection items ``(image, target, ...)`` (or the pool's ``(image, dataset_index)``).

    Images of one size are stacked into ``[B, C, H, W]`` (torchvision's detectors take that as they take a list),
    of several sizes kept as a list; targets stay a list of dicts (torchvision's training format), dataset indices
    and weights become tensors.

    Examples:
        >>> target = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
        >>> images, targets = detection_collate([(torch.zeros(3, 8, 8), target), (torch.ones(3, 8, 8), target)])
        >>> images.shape, len(targets)
        (torch.Size([2, 3, 8, 8]), 2)
    """
    if not items:
        raise ValueError("Expected argument `items` to hold at least one dataset item, but got none.")
    columns = list(zip(*items, strict=True))
    images = list(columns[0])
    same = all(isinstance(image, Tensor) and image.shape == images[0].shape for image in images)
    batched: list[Any] = [torch.stack(images) if same else images]
    for column in columns[1:]:
        if all(isinstance(value, Mapping) for value in column):
            batched.append(list(column))
        else:
            batched.append(torch.as_tensor([torch.as_tensor(value).item() for value in column]))
    return tuple(batched)
