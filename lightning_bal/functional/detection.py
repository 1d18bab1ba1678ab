"""Detection uncertainty as pure tensor functions of K sets of detections per image (docs/detection.md).

The format is torchvision's: one image's sample is a dict with ``boxes`` ``[m, 4]`` (xyxy, pixels), ``labels``
``[m]`` (classes in ``1..C``, 0 is the background), ``scores`` ``[m]`` and optionally ``class_probs`` ``[m, C + 1]``
(a softmax with the background at index 0). Without ``class_probs`` a box's class distribution puts its score on
its label and the rest on the background.

Every box of every sample is a reference: it is matched in each of the K samples to that sample's box of highest
IoU with it, if that IoU reaches ``iou_threshold`` (else the sample predicts background there). A box's K matched
predictions then give its classification entropy and BALD, its localisation variance, Kao et al.'s stability and
the probability that it exists; :func:`aggregate_boxes` makes one score per image of them. The matching is one IoU
matrix of all the image's boxes and one maximum per sample: no Python loop over boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from lightning_bal.functional._validation import Reduction, check_reduction, reduce_scores

__all__ = [
    "DetectionSamples",
    "aggregate_boxes",
    "box_bald",
    "box_entropy",
    "box_existence",
    "box_iou",
    "check_detections",
    "check_matched",
    "detection_scores",
    "localization_stability",
    "localization_variance",
    "match_samples",
    "matched_probs",
]

Detections = Mapping[str, Tensor]
_FIELDS = ("boxes", "labels", "scores")


def check_detections(detections: Any, name: str = "outputs") -> list[dict[str, Tensor]]:
    """One model output in torchvision's eval format (a list, one dict per image), checked; the dicts as a list.

    Examples:
        >>> check_detections({"boxes": torch.zeros(0, 4)})
        Traceback (most recent call last):
        ...
        TypeError: Expected argument `outputs` to be a list of dicts (one per image, torchvision's detection format)...
    """
    if not isinstance(detections, (list, tuple)):
        raise TypeError(
            f"Expected argument `{name}` to be a list of dicts (one per image, torchvision's detection format), but"
            f" got {type(detections).__name__}."
        )
    return [_check_image(image, f"{name}[{position}]") for position, image in enumerate(detections)]


def _check_image(image: Any, name: str) -> dict[str, Tensor]:
    if not isinstance(image, Mapping):
        raise TypeError(
            f"Expected `{name}` to be a dict with {list(_FIELDS)} (torchvision's detection format), but got"
            f" {type(image).__name__}."
        )
    missing = [field for field in _FIELDS if field not in image]
    if missing:
        raise KeyError(f"Expected `{name}` to hold {list(_FIELDS)}, but it lacks {missing} (it has {sorted(image)}).")
    boxes, labels, scores = (image[field] for field in _FIELDS)
    for field, value in (("boxes", boxes), ("labels", labels), ("scores", scores)):
        if not isinstance(value, Tensor):
            raise TypeError(f"Expected `{name}['{field}']` to be a tensor, but got {type(value).__name__}.")
    if boxes.ndim != 2 or boxes.shape[1] != 4 or not boxes.is_floating_point():
        raise ValueError(f"Expected `{name}['boxes']` to be a float tensor [m, 4], but got {_describe(boxes)}.")
    m = boxes.shape[0]
    if labels.shape != (m,) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"Expected `{name}['labels']` to be an integer tensor [{m}], but got {_describe(labels)}.")
    if scores.shape != (m,) or not scores.is_floating_point():
        raise ValueError(f"Expected `{name}['scores']` to be a float tensor [{m}], but got {_describe(scores)}.")
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"Expected `{name}['boxes']` to hold finite coordinates, but got NaN or inf.")
    if m and int(labels.min()) < 1:
        raise ValueError(
            f"Expected `{name}['labels']` to hold classes >= 1 (0 is the background), but got {int(labels.min())}."
        )
    if not bool(((scores >= 0) & (scores <= 1)).all()):
        raise ValueError(f"Expected `{name}['scores']` to lie in [0, 1], but got {scores.tolist()}.")
    checked = {"boxes": boxes, "labels": labels, "scores": scores}
    if "class_probs" in image:
        probs = image["class_probs"]
        if not isinstance(probs, Tensor) or probs.ndim != 2 or probs.shape[0] != m or probs.shape[1] < 2:
            raise ValueError(
                f"Expected `{name}['class_probs']` to be a tensor [{m}, C + 1] (background at 0), but got"
                f" {_describe(probs)}."
            )
        if m and int(labels.max()) >= probs.shape[1]:
            raise ValueError(
                f"Expected `{name}['labels']` to be classes of `class_probs` (< {probs.shape[1]}), but got"
                f" {int(labels.max())}."
            )
        if not bool(((probs >= 0) & (probs <= 1)).all()) or not torch.allclose(
            probs.double().sum(1), torch.ones(m, dtype=torch.float64), atol=1e-3
        ):
            raise ValueError(f"Expected `{name}['class_probs']` to hold probabilities summing to 1 per box.")
        checked["class_probs"] = probs
    return checked


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"shape {tuple(value.shape)}, dtype {value.dtype}"
    return type(value).__name__


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of every pair of xyxy boxes: ``[m, 4]`` and ``[n, 4]`` to ``[m, n]`` (0 for boxes of no area).

    Examples:
        >>> box_iou(torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 0.0, 3.0, 2.0], [5.0, 5, 6, 6]]))
        tensor([[0.3333, 0.0000]])
    """
    area1 = (boxes1[:, 2] - boxes1[:, 0]).clamp_min(0) * (boxes1[:, 3] - boxes1[:, 1]).clamp_min(0)
    area2 = (boxes2[:, 2] - boxes2[:, 0]).clamp_min(0) * (boxes2[:, 3] - boxes2[:, 1]).clamp_min(0)
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    intersection = (bottom_right - top_left).clamp_min(0).prod(2)
    union = area1[:, None] + area2[None, :] - intersection
    return torch.where(union > 0, intersection / union.clamp_min(torch.finfo(union.dtype).tiny), 0.0)


class DetectionSamples(NamedTuple):
    """The K samples of one image's detections, every box matched in every sample.

    Attributes:
        boxes: ``[M, 4]`` float64, the boxes of all K samples, sample after sample.
        probs: ``[M, C']`` float64 class distributions (background at 0); ``C'`` is the widest class of the image.
        sample: ``[M]`` int64, the sample each box comes from.
        iou: ``[M, K]`` the highest IoU of each box with a box of sample k (0 when sample k has none).
        match: ``[M, K]`` int64, the row of that box, or -1 when its IoU is below the threshold (background).
    """

    boxes: Tensor
    probs: Tensor
    sample: Tensor
    iou: Tensor
    match: Tensor

    @property
    def matched(self) -> Tensor:
        """``[M, K]`` bool: sample k predicts the box."""
        return self.match >= 0


def match_samples(samples: Sequence[Detections], iou_threshold: float = 0.5) -> DetectionSamples:
    """Match every box of the K ``samples`` of one image in each sample by IoU (see the module docstring).

    A box is matched in its own sample to itself. A sample with no box matches nothing.

    Examples:
        >>> a = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
        >>> b = {"boxes": torch.tensor([[1.0, 0, 10, 10]]), "labels": torch.tensor([2]), "scores": torch.tensor([0.8])}
        >>> matched = match_samples([a, b])
        >>> matched.match.tolist(), matched.probs.shape
        ([[0, 1], [0, 1]], torch.Size([2, 3]))
    """
    _check_threshold(iou_threshold)
    if not isinstance(samples, Sequence) or not samples:
        raise ValueError(f"Expected argument `samples` to be a non-empty list of K detections, but got {samples!r}.")
    counts = [int(sample["boxes"].shape[0]) for sample in samples]
    boxes = torch.cat([sample["boxes"].double() for sample in samples])
    width = max(
        [int(sample["class_probs"].shape[1]) for sample in samples if "class_probs" in sample]
        + [int(sample["labels"].max()) + 1 for sample, count in zip(samples, counts, strict=True) if count]
        + [2]
    )
    probs = torch.cat([_class_distribution(sample, width) for sample in samples])
    k = len(samples)
    sample_of = torch.repeat_interleave(torch.arange(k), torch.tensor(counts, dtype=torch.long))
    iou_all = box_iou(boxes, boxes)
    iou = boxes.new_zeros(boxes.shape[0], k)
    match = torch.full((boxes.shape[0], k), -1, dtype=torch.long)
    start = 0
    for column, count in enumerate(counts):
        if count:
            best, where = iou_all[:, start : start + count].max(1)
            iou[:, column] = best
            match[:, column] = torch.where(best >= iou_threshold, where + start, -1)
        start += count
    # A box is its own prediction in its own sample, even beside a duplicate of it.
    rows = torch.arange(boxes.shape[0])
    iou[rows, sample_of] = 1.0
    match[rows, sample_of] = rows
    return DetectionSamples(boxes, probs, sample_of, iou, match)


def _class_distribution(sample: Detections, width: int) -> Tensor:
    if "class_probs" in sample:
        probs = sample["class_probs"].double()
        return torch.nn.functional.pad(probs, (0, width - probs.shape[1]))
    scores = sample["scores"].double()
    probs = torch.zeros(scores.shape[0], width, dtype=torch.float64)
    probs[:, 0] = 1.0 - scores
    probs[torch.arange(scores.shape[0]), sample["labels"].long()] += scores
    return probs


def _check_threshold(iou_threshold: Any) -> None:
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)) or not 0 < iou_threshold <= 1:
        raise ValueError(f"Expected argument `iou_threshold` to be a number in (0, 1], but got {iou_threshold!r}.")


def check_matched(matched: Any) -> DetectionSamples:
    """``matched`` if it is what :func:`match_samples` returns, else an error naming it."""
    if not isinstance(matched, DetectionSamples):
        raise TypeError(
            "Expected argument `matched` to be the `DetectionSamples` of `match_samples(samples)`, but got"
            f" {type(matched).__name__}."
        )
    return matched


def matched_probs(matched: DetectionSamples) -> Tensor:
    """``[M, K, C']``: each box's class distribution in each sample, the background where it is unmatched."""
    check_matched(matched)
    background = torch.zeros(matched.probs.shape[1], dtype=torch.float64)
    background[0] = 1.0
    return torch.where(matched.matched[..., None], matched.probs[matched.match.clamp_min(0)], background)


def _entropy(probs: Tensor) -> Tensor:
    # `0 - x`, not `-x`: a certain distribution's entropy is 0.0, not -0.0.
    return 0.0 - torch.special.xlogy(probs, probs).sum(-1)


def box_entropy(matched: DetectionSamples) -> Tensor:
    """``[M]``: the entropy of each box's mean class distribution over the K samples, ``H[mean_k p_k]``."""
    return _entropy(matched_probs(matched).mean(1)).clamp_min(0)


def box_bald(matched: DetectionSamples) -> Tensor:
    """``[M]``: each box's BALD over the K samples, ``H[mean_k p_k] - mean_k H[p_k]`` (unmatched: background)."""
    probs = matched_probs(matched)
    return (_entropy(probs.mean(1)) - _entropy(probs).mean(1)).clamp_min(0)


def localization_variance(matched: DetectionSamples) -> Tensor:
    """``[M]``: the variance of each box's coordinates over the samples that predict it, averaged over x1 y1 x2 y2.

    In square pixels; 0 for a box that one sample alone predicts.
    """
    check_matched(matched)
    present = matched.matched.double()
    coordinates = matched.boxes[matched.match.clamp_min(0)] * present[..., None]
    count = present.sum(1, keepdim=True)
    mean = coordinates.sum(1) / count
    squared = ((coordinates - mean[:, None]) ** 2 * present[..., None]).sum(1) / count
    return squared.mean(1)


def localization_stability(matched: DetectionSamples) -> Tensor:
    """``[M]``: Kao et al.'s stability of each box, the mean over the other samples of its best IoU there.

    1 when every sample draws the box alike, 0 when no other sample draws anything overlapping it; 1 with K = 1.
    """
    check_matched(matched)
    k = matched.iou.shape[1]
    if k == 1:
        return torch.ones(matched.iou.shape[0], dtype=torch.float64)
    # Its own sample's IoU is 1 by construction; the mean is over the K - 1 others.
    return (matched.iou.sum(1) - 1.0) / (k - 1)


def box_existence(matched: DetectionSamples) -> Tensor:
    """``[M]``: the probability that each box exists, the fraction of the K samples that predict it."""
    check_matched(matched)
    return matched.matched.double().mean(1)


def aggregate_boxes(box_scores: Sequence[Tensor], reduction: Reduction = "max", empty_score: float = 0.0) -> Tensor:
    """One score per image from its boxes' scores (``[M_i]`` each) by ``reduction`` (max, mean, sum, top-q, ...).

    An image with no box in any sample gets ``empty_score``.

    Examples:
        >>> aggregate_boxes([torch.tensor([0.1, 0.7]), torch.empty(0)], "max")
        tensor([0.7000, 0.0000], dtype=torch.float64)
    """
    check_reduction(reduction)
    counts = torch.tensor([scores.numel() for scores in box_scores], dtype=torch.long)
    width = int(counts.max()) if counts.numel() else 0
    padded = torch.zeros(len(box_scores), max(width, 1), dtype=torch.float64)
    mask = torch.arange(padded.shape[1])[None, :] < counts[:, None]
    if width:
        padded[mask] = torch.cat([scores.double().reshape(-1) for scores in box_scores])
    return reduce_scores(padded, reduction, mask, empty=float(empty_score))


BoxScore = Callable[[DetectionSamples], Tensor]


def detection_scores(
    images: Sequence[Sequence[Detections]],
    box_score: BoxScore,
    reduction: Reduction = "max",
    iou_threshold: float = 0.5,
    empty_score: float = 0.0,
) -> Tensor:
    """``[N]`` image scores: each image's K samples matched, scored box by box with ``box_score``, aggregated.

    Args:
        images: per image, its K samples (dicts in torchvision's format, see the module docstring).
        box_score: per-box score of the matched samples, e.g. :func:`box_bald`.
        reduction: how box scores make the image's: ``"max"`` (default), ``"mean"``, ``"sum"``, ``"topq"``, ...
        iou_threshold: the IoU at which a box of another sample is the same box.
        empty_score: the score of an image with no box in any sample (0: never preferred over one with boxes).

    Examples:
        >>> sure = {"boxes": torch.tensor([[0.0, 0, 9, 9]]), "labels": torch.tensor([1]), "scores": torch.tensor([1.0])}
        >>> none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "scores": torch.zeros(0)}
        >>> detection_scores([[sure, sure], [sure, none], [none, none]], box_bald)
        tensor([0.0000, 0.6931, 0.0000], dtype=torch.float64)
    """
    _check_threshold(iou_threshold)
    if isinstance(empty_score, bool) or not isinstance(empty_score, (int, float)) or empty_score != empty_score:
        raise ValueError(f"Expected argument `empty_score` to be a number, but got {empty_score!r}.")
    per_box = [box_score(match_samples(samples, iou_threshold)) for samples in images]
    return aggregate_boxes(per_box, reduction, empty_score)
