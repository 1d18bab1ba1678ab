"""A small detector with dropout in its head, for digit canvases, and its training.

:class:`DigitDetector` follows torchvision's conventions (docs/detection.md), as
:class:`~lightning_bal.experiments.detection_data.DigitCanvases` does. In training mode
``model(images, targets)`` returns a dict of losses; in eval mode ``model(images)`` returns one dict per image with
``boxes [m, 4]``, ``labels [m]`` in ``1..C``, ``scores [m]`` and ``class_probs [m, C + 1]`` (a softmax with the
background at index 0), ``m`` varying from image to image. :func:`train_detector` trains any such detector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import Dataset

from lightning_bal.experiments.detection_data import Target, detection_collate
from lightning_bal.utilities.checks import check_argument, is_int

__all__ = ["DigitDetector", "train_detector"]


def _conv(inputs: int, outputs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class DigitDetector(nn.Module):
    """An anchor-free detector for small CPUs: a CNN backbone at stride 4, and a head with dropout per cell.

    Every cell of the stride-4 feature map predicts a softmax over ``num_classes`` (the background at 0) and the
    distances from its centre to the four sides of a box (FCOS-like). The cells near a box's centre learn its class
    and sides; the others learn the background. Decoding keeps the cells whose foreground probability
    ``1 - p(background)`` is a local maximum (3x3) above ``score_threshold``, at most ``max_detections`` per image,
    then drops a box that overlaps a better one of the same label by more than ``nms_threshold`` IoU (in one tensor
    operation, no loop over boxes). A box's label is its most likely class, its score that class's probability, and
    ``class_probs`` the cell's softmax: what detection heuristics read. ``embed`` gives the backbone's pooled
    features for diversity heuristics. The dropout sits in the head only, so MC-Dropout samples the head.

    Args:
        num_classes: ``C + 1``, the background included (torchvision's count).
        in_channels: the channels of an image.
        width: the channels of the backbone's first stage (the later ones have twice as many).
        dropout: the dropout probability in the head.
        max_detections: the most boxes per image.
        score_threshold: the least foreground probability of a box.
        nms_threshold: the IoU above which the lower-scored of two boxes with one label is dropped.

    Examples:
        >>> model = DigitDetector().eval()
        >>> detections = model([torch.zeros(1, 96, 96)])
        >>> sorted(detections[0]), detections[0]["class_probs"].shape[1]
        (['boxes', 'class_probs', 'labels', 'scores'], 11)
        >>> model.embed([torch.zeros(1, 96, 96)]).shape
        torch.Size([1, 32])
    """

    stride = 4
    #: The cells that learn a box: those whose centre lies within this share of the box's half-sides of its centre.
    center_share = 0.5

    def __init__(
        self,
        num_classes: int = 11,
        in_channels: int = 1,
        width: int = 16,
        dropout: float = 0.25,
        max_detections: int = 20,
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        check_argument("num_classes", num_classes, is_int(num_classes) and num_classes >= 2, "an integer >= 2")
        check_argument("in_channels", in_channels, is_int(in_channels) and in_channels >= 1, "a positive integer")
        check_argument("width", width, is_int(width) and width >= 1, "a positive integer")
        for name, value in (
            ("dropout", dropout),
            ("score_threshold", score_threshold),
            ("nms_threshold", nms_threshold),
        ):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            check_argument(name, value, number and 0 <= value <= 1, "a number in [0, 1]")
        check_argument("dropout", dropout, dropout < 1, "a number in [0, 1)")
        check_argument(
            "max_detections", max_detections, is_int(max_detections) and max_detections >= 1, "a positive integer"
        )
        self.num_classes, self.in_channels = num_classes, in_channels
        self.max_detections, self.score_threshold, self.nms_threshold = max_detections, score_threshold, nms_threshold
        # Dilated convolutions at stride 4 see 63 pixels: a 40-pixel digit and its surroundings.
        self.backbone = nn.Sequential(
            _conv(in_channels, width, stride=2),
            _conv(width, 2 * width, stride=2),
            _conv(2 * width, 2 * width),
            _conv(2 * width, 2 * width, dilation=2),
            _conv(2 * width, 2 * width, dilation=4),
        )
        self.head = nn.Sequential(
            nn.Dropout2d(dropout),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(2 * width, num_classes + 4, 1),
        )

    def _batch(self, images: Sequence[Tensor] | Tensor) -> Tensor:
        """Images (a list of ``[C, H, W]`` or a tensor ``[B, C, H, W]``) padded at the bottom right into one tensor."""
        if isinstance(images, Tensor):
            if images.ndim != 4 or images.shape[1] != self.in_channels:
                raise ValueError(
                    f"Expected argument `images` as a [B, {self.in_channels}, H, W] tensor or a list of"
                    f" [{self.in_channels}, H, W] tensors, but got shape {list(images.shape)}."
                )
            images = list(images)
        if not isinstance(images, (list, tuple)) or not all(
            isinstance(image, Tensor) and image.ndim == 3 and image.shape[0] == self.in_channels for image in images
        ):
            shapes = (
                [list(i.shape) if isinstance(i, Tensor) else type(i).__name__ for i in images]
                if isinstance(images, (list, tuple))
                else type(images).__name__
            )
            raise ValueError(
                f"Expected argument `images` as a list of [{self.in_channels}, H, W] tensors, but got {shapes}."
            )
        if not images:
            raise ValueError("Expected argument `images` to hold at least one image, but got none.")
        # Padded to a multiple of the stride, as torchvision pads to its size divisibility: cells cover whole pixels.
        height = math.ceil(max(image.shape[1] for image in images) / self.stride) * self.stride
        width = math.ceil(max(image.shape[2] for image in images) / self.stride) * self.stride
        return torch.stack([F.pad(image, (0, width - image.shape[2], 0, height - image.shape[1])) for image in images])

    def embed(self, images: Sequence[Tensor] | Tensor) -> Tensor:
        """The backbone's features averaged over the image, ``[B, 2 * width]``: what diversity heuristics embed."""
        return self.backbone(self._batch(images)).mean(dim=(2, 3))

    def forward(
        self, images: Sequence[Tensor] | Tensor, targets: Sequence[Target] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """In training mode the losses on ``targets``; in eval mode the detections of each image."""
        batch = self._batch(images)
        if self.training:
            # Checked before the backbone runs: a refused call leaves the batch-norm statistics as they were.
            _check_targets(targets, len(batch))
        features = self.backbone(batch)
        if targets is not None and self.training:
            output = self.head(features)
            return self._losses(output[:, : self.num_classes], output[:, self.num_classes :], list(targets))
        return self._detect(features, _sizes(images))

    def _detect(self, features: Tensor, sizes: Tensor) -> list[dict[str, Tensor]]:
        """The head on the backbone's ``features``, decoded into each image's detections (``sizes``: ``[B, 2]``)."""
        output = self.head(features)
        logits, sides = output[:, : self.num_classes], output[:, self.num_classes :]
        return [self._decode(lg, sd, (int(w), int(h))) for lg, sd, (w, h) in zip(logits, sides, sizes, strict=True)]

    def mc_split(self) -> tuple[nn.Module, nn.Module]:
        """``(features, head)`` for the MC engine: the backbone once per batch, the head with its dropout K times.

        ``head(*features(images))`` equals ``model(images)`` in eval mode (``features`` returns the backbone's map and
        the images' sizes); see :class:`lightning_bal.mc.split.SplitModule`.

        Examples:
            >>> model = DigitDetector().eval()
            >>> features, head = model.mc_split()
            >>> len(head(*features([torch.zeros(1, 96, 96)])))
            1
        """
        return _Features(self), _Head(self)

    def _centres(self, height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
        ys = (torch.arange(height, device=device) + 0.5) * self.stride
        xs = (torch.arange(width, device=device) + 0.5) * self.stride
        return ys[:, None].expand(height, width), xs[None, :].expand(height, width)

    def _assign(self, target: Target, height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Per cell: the class it learns (0 = background) and the box sides (l, t, r, b) it learns, in pixels."""
        boxes = target["boxes"].to(device, torch.float32)
        labels = target["labels"].to(device)
        cy, cx = self._centres(height, width, device)
        classes = torch.zeros(height, width, dtype=torch.long, device=device)
        sides = torch.ones(height, width, 4, device=device)
        if len(boxes) == 0:
            return classes, sides
        mid_x, mid_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        half_w = torch.clamp((boxes[:, 2] - boxes[:, 0]) * self.center_share / 2, min=self.stride / 2)
        half_h = torch.clamp((boxes[:, 3] - boxes[:, 1]) * self.center_share / 2, min=self.stride / 2)
        near = ((cx[None] - mid_x[:, None, None]).abs() <= half_w[:, None, None]) & (
            (cy[None] - mid_y[:, None, None]).abs() <= half_h[:, None, None]
        )
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        # Where boxes share a cell, the smaller one has it (its centre region is the more specific).
        cost = torch.where(near, area[:, None, None], torch.full_like(near, math.inf, dtype=torch.float32))
        best = cost.argmin(0)
        positive = near.any(0)
        classes = torch.where(positive, labels[best], classes)
        chosen = boxes[best]
        learned = torch.stack([cx - chosen[..., 0], cy - chosen[..., 1], chosen[..., 2] - cx, chosen[..., 3] - cy], -1)
        sides = torch.where(positive[..., None], learned.clamp(min=1.0), sides)
        return classes, sides

    def _losses(self, logits: Tensor, sides: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        height, width = logits.shape[-2:]
        assigned = [self._assign(target, height, width, logits.device) for target in targets]
        classes = torch.stack([c for c, _ in assigned])
        wanted = torch.stack([s for _, s in assigned])
        cross = F.cross_entropy(logits, classes, reduction="none")
        positive = classes > 0
        # The background fills most cells: each side of the split weighs the same.
        negatives = cross[~positive].mean() if bool((~positive).any()) else cross.sum() * 0
        positives = cross[positive].mean() if bool(positive.any()) else cross.sum() * 0
        predicted = sides.permute(0, 2, 3, 1)[positive]
        box_loss = (
            F.smooth_l1_loss(predicted, torch.log(wanted[positive] / self.stride))
            if bool(positive.any())
            else sides.sum() * 0
        )
        return {"loss_classifier": positives + negatives, "loss_box_reg": box_loss}

    def _decode(self, logits: Tensor, sides: Tensor, size: tuple[int, int]) -> dict[str, Tensor]:
        probs = logits.softmax(0)
        foreground = 1 - probs[0]
        peaks = (foreground == F.max_pool2d(foreground[None], 3, stride=1, padding=1)[0]) & (
            foreground > self.score_threshold
        )
        height, width = foreground.shape
        cy, cx = self._centres(height, width, logits.device)
        flat = torch.where(peaks, foreground, torch.full_like(foreground, -1.0)).reshape(-1)
        order = flat.argsort(descending=True)[: self.max_detections]
        order = order[flat[order] > self.score_threshold]
        class_probs = probs.reshape(len(probs), -1)[:, order].T
        distances = torch.exp(sides.reshape(4, -1)[:, order].T.clamp(max=8.0)) * self.stride
        x, y = cx.reshape(-1)[order], cy.reshape(-1)[order]
        boxes = torch.stack([x - distances[:, 0], y - distances[:, 1], x + distances[:, 2], y + distances[:, 3]], 1)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, size[0])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, size[1])
        scores, labels = class_probs[:, 1:].max(1)
        labels = labels + 1
        keep = _suppress(boxes, scores, labels, self.nms_threshold)
        ranked = scores[keep].argsort(descending=True)
        keep = keep.nonzero()[:, 0][ranked]
        return {"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep], "class_probs": class_probs[keep]}


def _sizes(images: Sequence[Tensor] | Tensor) -> Tensor:
    """``[B, 2]``: the width and height of each image."""
    return torch.tensor([[image.shape[-1], image.shape[-2]] for image in images], dtype=torch.long)


class _Features(nn.Module):
    """The deterministic prefix of a :class:`DigitDetector`: its backbone on the padded batch, and the images' sizes."""

    def __init__(self, detector: DigitDetector) -> None:
        super().__init__()
        self.backbone = detector.backbone
        self._batch = detector._batch  # a bound method: the detector is not registered as a submodule twice

    def forward(self, images: Sequence[Tensor] | Tensor) -> tuple[Tensor, Tensor]:
        return self.backbone(self._batch(images)), _sizes(images)


class _Head(nn.Module):
    """The stochastic rest of a :class:`DigitDetector`: its head (with the dropout) and the decoding."""

    def __init__(self, detector: DigitDetector) -> None:
        super().__init__()
        self.head = detector.head
        self._detect = detector._detect

    def forward(self, features: Tensor, sizes: Tensor) -> list[dict[str, Tensor]]:
        return self._detect(features, sizes)


def _check_targets(targets: Sequence[Target] | None, count: int) -> None:
    if targets is None:
        raise ValueError("Expected argument `targets` in training mode (the losses need them), but got None.")
    if not isinstance(targets, (list, tuple)) or len(targets) != count:
        given = len(targets) if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"Expected argument `targets` to hold one target per image ({count}), but got {given}.")
    for number, target in enumerate(targets):
        boxes = target.get("boxes") if isinstance(target, dict) else None
        labels = target.get("labels") if isinstance(target, dict) else None
        if not (isinstance(boxes, Tensor) and isinstance(labels, Tensor)) or (
            boxes.ndim != 2 or boxes.shape[-1] != 4 or labels.shape != (len(boxes),)
        ):
            shapes = [list(v.shape) if isinstance(v, Tensor) else v for v in (boxes, labels)]
            raise ValueError(
                f"Expected every target as boxes [n, 4] with labels [n] (tensors), but target {number} has {shapes}."
            )


def _box_iou(boxes: Tensor, other: Tensor) -> Tensor:
    """The IoU of every box of ``boxes`` [n, 4] with every box of ``other`` [m, 4] (xyxy): ``[n, m]``."""
    top_left = torch.maximum(boxes[:, None, :2], other[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], other[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
    area_other = (other[:, 2:] - other[:, :2]).prod(-1)
    return inter / (area[:, None] + area_other[None, :] - inter).clamp(min=1e-9)


def _suppress(boxes: Tensor, scores: Tensor, labels: Tensor, threshold: float) -> Tensor:
    """Keep-mask of a matrix NMS: a box goes when a better box of its label overlaps it by more than ``threshold``.

    Unlike greedy NMS, a box dropped still suppresses others (Bolya et al.'s Fast NMS): a little more suppression,
    no loop over boxes.
    """
    overlap = _box_iou(boxes, boxes) * (labels[:, None] == labels[None, :])
    better = (scores[:, None] > scores[None, :]) | (
        (scores[:, None] == scores[None, :])
        & (
            torch.arange(len(scores), device=scores.device)[:, None]
            < torch.arange(len(scores), device=scores.device)[None, :]
        )
    )
    return ~((overlap > threshold) & better).any(0)


def train_detector(
    model: nn.Module,
    data: Dataset[tuple[Tensor, Target]],
    steps: int = 1000,
    batch_size: int = 16,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` (a torchvision-style detector) with Adam on random batches of ``data``; the loss of each step.

    The batches are drawn with their own generator seeded by ``seed``; the model is left in eval mode.

    Examples:
        >>> from lightning_bal.experiments.detection_data import DigitCanvases
        >>> _ = torch.manual_seed(0)
        >>> losses = train_detector(DigitDetector(), DigitCanvases(size=8), steps=2, batch_size=4)
        >>> len(losses)
        2
    """
    check_argument("model", model, isinstance(model, nn.Module), "a torch.nn.Module", TypeError)
    check_argument("data", data, hasattr(data, "__len__") and len(data) > 0, "a non-empty map-style dataset")
    check_argument("steps", steps, is_int(steps) and steps >= 0, "a non-negative integer")
    check_argument("batch_size", batch_size, is_int(batch_size) and batch_size >= 1, "a positive integer")
    check_argument(
        "lr",
        lr,
        isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr < math.inf,
        "a finite positive number",
    )
    check_argument("seed", seed, is_int(seed), "an integer", TypeError)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    size = len(data)  # type: ignore[arg-type]
    model.train()
    losses = []
    for _ in range(steps):
        images, targets = detection_collate(
            [data[int(i)] for i in torch.randint(size, (batch_size,), generator=generator)]
        )
        parts = model(images, targets)
        loss = sum(parts.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
