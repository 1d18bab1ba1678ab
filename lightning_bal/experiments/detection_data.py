"""Object detection offline: digits pasted on canvases with their boxes, batched as torchvision's detectors take them.

Everything follows torchvision's conventions (docs/detection.md). An item is ``(image, target)``: ``image`` a float
tensor ``[1, H, W]`` in ``[0, 1]`` and ``target = {"boxes": FloatTensor[n, 4], "labels": LongTensor[n]}``, the boxes
``(x1, y1, x2, y2)`` in pixels (``x2`` is one past the last column of ink, so a box holds ``x2 - x1`` columns) and
the labels in ``1..C`` (digit ``d`` has label ``d + 1``; 0 is the background, so ``num_classes = C + 1 = 11``).
``n`` may be 0: a canvas with no digit has boxes ``[0, 4]`` and labels ``[0]``. :func:`detection_collate` batches
items as torchvision's detectors take them: a list of images and a list of targets.

:class:`~lightning_bal.experiments.detector.DigitDetector` is such a detector.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import Dataset

from lightning_bal.experiments.datasets import load_digits, load_mnist
from lightning_bal.utilities.checks import check_argument, check_one_of, is_int

__all__ = ["DigitCanvases", "detection_collate"]

Target = dict[str, Tensor]


class DigitCanvases(Dataset[tuple[Tensor, Target]]):
    """Canvases with 0 to ``max_digits`` handwritten digits each, pasted at random sizes and places, and their boxes.

    The digits are scikit-learn's 8x8 digits (upscaled), or MNIST's when ``root`` names the folder of its IDX files
    (``split`` picks the training or test digits, so training and test canvases never share a digit). A digit is
    resized to a square of ``min_size..max_size`` pixels and pasted with ``max`` where digits overlap; a placement
    whose box overlaps an earlier one by more than ``max_overlap`` (intersection over the smaller box) is drawn again,
    up to a few times, then the digit is left out. Each box is tight around the digit's ink (pixels above
    :attr:`INK`). Item ``i`` depends only on ``seed``, ``i`` and the settings: it is the same at every access.

    Args:
        size: the number of canvases.
        canvas: the side of the square canvas, in pixels.
        max_digits: the most digits on a canvas (the count is uniform in ``0..max_digits``).
        min_size: the smallest side of a pasted digit, in pixels.
        max_size: the largest side of a pasted digit, in pixels.
        max_overlap: the largest share of a box another may cover, in ``[0, 1]``.
        seed: the seed of every canvas.
        split: ``"train"`` or ``"test"``: which digits are pasted.
        root: the folder of MNIST's IDX files; ``None`` for scikit-learn's digits.

    Examples:
        >>> data = DigitCanvases(size=4, seed=0)
        >>> image, target = data[1]
        >>> tuple(image.shape), target["boxes"].shape[1], target["labels"].dtype
        ((1, 96, 96), 4, torch.int64)
        >>> torch.equal(data[1][1]["boxes"], target["boxes"])
        True
    """

    #: A pixel of a pasted digit counts as ink above this brightness; boxes hold all of a digit's ink.
    INK = 0.3
    #: C + 1: ten digits and the background.
    num_classes = 11
    _TRIES = 10

    def __init__(
        self,
        size: int = 1000,
        canvas: int = 96,
        max_digits: int = 5,
        min_size: int = 14,
        max_size: int = 40,
        max_overlap: float = 0.3,
        seed: int = 0,
        split: str = "train",
        root: str | Path | None = None,
    ) -> None:
        check_argument("size", size, is_int(size) and size >= 0, "a non-negative integer")
        check_argument("canvas", canvas, is_int(canvas) and canvas >= 8, "an integer >= 8")
        check_argument("max_digits", max_digits, is_int(max_digits) and max_digits >= 0, "a non-negative integer")
        check_argument(
            "min_size", min_size, is_int(min_size) and 4 <= min_size <= canvas, f"an integer in [4, {canvas}]"
        )
        check_argument(
            "max_size",
            max_size,
            is_int(max_size) and min_size <= max_size <= canvas,
            f"an integer in [{min_size}, {canvas}]",
        )
        valid_overlap = isinstance(max_overlap, (int, float)) and not isinstance(max_overlap, bool)
        check_argument("max_overlap", max_overlap, valid_overlap and 0 <= max_overlap <= 1, "a number in [0, 1]")
        check_argument("seed", seed, is_int(seed) and seed >= 0, "a non-negative integer")
        check_one_of("split", split, ("train", "test"))
        if root is None:
            train, test = load_digits(seed=0)
        else:
            train, test = load_mnist(root)
        digits = train if split == "train" else test
        self.digits: Tensor = digits.tensors[0]
        self.digit_labels: Tensor = digits.tensors[1]
        self.size, self.canvas, self.max_digits = size, canvas, max_digits
        self.min_size, self.max_size, self.max_overlap, self.seed = min_size, max_size, float(max_overlap), seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[Tensor, Target]:
        # numpy's integers too: samplers and index arrays hand them out.
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not -self.size <= index < self.size:
            raise IndexError(f"Expected an index in [0, {self.size}), but got {index!r}.")
        index = int(index) % self.size
        # Seeded by (seed, index) alone: item i never depends on which items were read before it.
        rng = np.random.default_rng([self.seed, index])
        image = torch.zeros(1, self.canvas, self.canvas)
        boxes: list[list[float]] = []
        labels: list[int] = []
        for _ in range(int(rng.integers(0, self.max_digits + 1))):
            source = int(rng.integers(len(self.digits)))
            side = int(rng.integers(self.min_size, self.max_size + 1))
            digit = F.interpolate(self.digits[source][None], size=(side, side), mode="bilinear", align_corners=False)[0]
            ink = (digit[0] > self.INK).nonzero()
            if len(ink) == 0:
                continue
            top, left = ink.min(0).values.tolist()
            bottom, right = (ink.max(0).values + 1).tolist()
            for _ in range(self._TRIES):
                y, x = (int(v) for v in rng.integers(0, self.canvas - side + 1, size=2))
                box = [x + left, y + top, x + right, y + bottom]
                if all(_cover(box, other) <= self.max_overlap for other in boxes):
                    break
            else:
                continue
            image[:, y : y + side, x : x + side] = torch.maximum(image[:, y : y + side, x : x + side], digit)
            boxes.append([float(v) for v in box])
            labels.append(int(self.digit_labels[source]) + 1)
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.long),
        }
        return image, target


def _cover(box: Sequence[float], other: Sequence[float]) -> float:
    """The intersection of two boxes over the area of the smaller one."""
    width = min(box[2], other[2]) - max(box[0], other[0])
    height = min(box[3], other[3]) - max(box[1], other[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((box[2] - box[0]) * (box[3] - box[1]), (other[2] - other[0]) * (other[3] - other[1]))
    return width * height / smaller


def detection_collate(batch: Sequence[tuple[Tensor, Target]]) -> tuple[list[Tensor], list[Target]]:
    """Batch ``(image, target)`` items as torchvision's detectors take them: a list of images, a list of targets.

    Examples:
        >>> images, targets = detection_collate(list(DigitCanvases(size=3)))
        >>> len(images), len(targets), sorted(targets[0])
        (3, 3, ['boxes', 'labels'])
    """
    items = list(batch)
    if not all(isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], Tensor) for item in items):
        raise TypeError(
            f"Expected argument `batch` to hold (image, target) pairs with a tensor image, but got {items[:1]!r}."
        )
    return [image for image, _ in items], [target for _, target in items]
