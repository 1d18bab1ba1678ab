"""Detection heuristics: per-box uncertainty of K matched samples, aggregated per image (docs/detection.md).

Each is a thin class over :mod:`lightning_bal.functional.detection`: it consumes the model's outputs as the
:class:`~lightning_bal.tasks.detection.Detection` task keeps them (per image, its K lists of detections), scores
every box, and reduces the boxes of an image to its score with ``reduction`` (``"max"`` by default, Haussmann et
al.'s best; ``"mean"``, ``"sum"``, ``"topq"``/``TopQ(q)``). An image without a box in any sample gets
``empty_score``. The diversity heuristics take a detection model's backbone features, pooled over their positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from lightning_bal.functional._validation import Reduction
from lightning_bal.functional.detection import (
    DetectionSamples,
    box_bald,
    box_entropy,
    box_existence,
    check_detections,
    detection_scores,
    localization_stability,
    localization_variance,
    match_samples,
    matched_probs,
)
from lightning_bal.heuristics.base import Heuristic
from lightning_bal.heuristics.diversity import BADGE, CoreSet
from lightning_bal.heuristics.registry import register_heuristic

__all__ = [
    "BoxExistence",
    "DetectionBADGE",
    "DetectionBALD",
    "DetectionCoreSet",
    "DetectionEntropy",
    "DetectionHeuristic",
    "LocalizationStability",
    "LocalizationVariance",
    "pool_features",
]


def _check_images(outputs: Any) -> list[Sequence[Mapping[str, Tensor]]]:
    if not isinstance(outputs, (list, tuple)) or not all(
        isinstance(image, (list, tuple)) and all(isinstance(sample, Mapping) for sample in image) for image in outputs
    ):
        raise TypeError(
            "Expected the outputs of a detection model as `Detection()` keeps them (per image, a list of its K dicts"
            f" of boxes, labels and scores), but got {type(outputs).__name__}: declare"
            " `ActiveDataModule(task='detection')` and return torchvision's detection format from `forward`."
        )
    return list(outputs)


class DetectionHeuristic(Heuristic):
    """Base class: a per-box score of an image's K matched samples, reduced to one score per image.

    Args:
        reduction: how the boxes' scores make the image's (``"max"``, ``"mean"``, ``"sum"``, ``"topq"``, a ``TopQ``).
        iou_threshold: the IoU at which a box of another sample is the same box.
        empty_score: the score of an image with no box in any sample: 0 (default) ranks it below every image with a
            box; ``float("inf")`` picks such images first.
    """

    consumes: ClassVar[Literal["log_probs", "outputs"]] = "outputs"
    needs_mc_samples: ClassVar[bool] = True
    _repr_attributes: ClassVar[tuple[str, ...]] = ("reduction", "iou_threshold", "empty_score")

    def __init__(self, reduction: Reduction = "max", iou_threshold: float = 0.5, empty_score: float = 0.0) -> None:
        super().__init__(reduction=reduction)
        # Checked here, through the function that uses them, so that a bad value fails at construction.
        detection_scores([], self.box_score, reduction, iou_threshold, empty_score)
        self.iou_threshold = iou_threshold
        self.empty_score = empty_score

    def box_score(self, matched: DetectionSamples) -> Tensor:
        """``[M]``: the score of each box of one image's matched samples."""
        raise NotImplementedError(f"{type(self).__name__} must implement `box_score`.")

    def transform(self, outputs: Any) -> Any:
        """The task's per-image lists of K detections, as they are."""
        return _check_images(outputs)

    def score(self, log_probs: Any) -> Tensor:
        """``[N]`` image scores of N images' K samples each."""
        images = _check_images(log_probs)
        if self.validate_args:
            images = [check_detections(samples, f"outputs of image {i}") for i, samples in enumerate(images)]
        return detection_scores(images, self.box_score, self.reduction, self.iou_threshold, self.empty_score).float()


@register_heuristic
class DetectionEntropy(DetectionHeuristic):
    r"""The entropy of each box's class distribution averaged over the K samples, ``H[\bar p_b]``.

    Examples:
        >>> box = {"boxes": torch.tensor([[0.0, 0, 8, 8]]), "labels": torch.tensor([1]), "scores": torch.tensor([0.5])}
        >>> DetectionEntropy().score([[box, box]])
        tensor([0.6931])
    """

    name: ClassVar[str] = "detection_entropy"
    cost: ClassVar[str] = "O(N·(M² + M·K·C)) after the MC pass, M boxes of an image over its K samples"

    def box_score(self, matched: DetectionSamples) -> Tensor:
        """Per-box predictive entropy."""
        return box_entropy(matched)


@register_heuristic
class DetectionBALD(DetectionHeuristic):
    r"""BALD of each box over its K matched samples, ``H[\bar p_b] - \frac1K \sum_k H[p_{b,k}]``.

    A sample without the box predicts the background there.

    Examples:
        >>> box = {"boxes": torch.tensor([[0.0, 0, 8, 8]]), "labels": torch.tensor([1]), "scores": torch.tensor([0.5])}
        >>> DetectionBALD().score([[box, box]])
        tensor([0.])
    """

    name: ClassVar[str] = "detection_bald"
    cost: ClassVar[str] = "O(N·(M² + M·K·C)) after the MC pass, M boxes of an image over its K samples"

    def box_score(self, matched: DetectionSamples) -> Tensor:
        """Per-box mutual information between its class and the model."""
        return box_bald(matched)


@register_heuristic
class LocalizationVariance(DetectionHeuristic):
    r"""The variance of each box's coordinates over the samples that predict it, mean over x1 y1 x2 y2 (pixels²)."""

    name: ClassVar[str] = "localization_variance"
    cost: ClassVar[str] = "O(N·M²) after the MC pass, M boxes of an image over its K samples"

    def box_score(self, matched: DetectionSamples) -> Tensor:
        """Per-box coordinate variance."""
        return localization_variance(matched)


@register_heuristic
class LocalizationStability(DetectionHeuristic):
    r"""Kao et al.'s localisation instability: ``1 - S_b``, ``S_b`` the mean best IoU of box b in the other samples."""

    name: ClassVar[str] = "localization_stability"
    cost: ClassVar[str] = "O(N·M²) after the MC pass, M boxes of an image over its K samples"

    def box_score(self, matched: DetectionSamples) -> Tensor:
        """Per-box instability (higher: less stable)."""
        return 1.0 - localization_stability(matched)


@register_heuristic
class BoxExistence(DetectionHeuristic):
    r"""The binary entropy of each box's existence, ``p_b`` the fraction of the K samples that predict it."""

    name: ClassVar[str] = "box_existence"
    cost: ClassVar[str] = "O(N·M²) after the MC pass, M boxes of an image over its K samples"

    def box_score(self, matched: DetectionSamples) -> Tensor:
        """Per-box entropy of existence (highest when half the samples predict the box)."""
        p = box_existence(matched)
        return 0.0 - (torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))


def pool_features(features: Tensor) -> Tensor:
    """``[B, D]`` from a backbone's ``[B, D, ...]`` feature maps: the mean over their positions.

    Examples:
        >>> pool_features(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 3])
    """
    if not isinstance(features, Tensor) or features.ndim < 2:
        got = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"Expected argument `features` to be a tensor [B, D, ...], but got {got}.")
    return features.float().flatten(2).mean(2) if features.ndim > 2 else features.float()


@register_heuristic
class DetectionCoreSet(CoreSet):
    """Core-Set on a detection model's pooled backbone features (``layer``: a submodule returning ``[B, D, H, W]``).

    Examples:
        >>> DetectionCoreSet(layer="backbone").embed(torch.ones(2, 3, 4, 4), None).shape
        torch.Size([2, 3])
    """

    name = "detection_coreset"
    cost = "O(N·D) per pick for q greedy k-center picks on pooled backbone features, D_L as the first centres"

    def transform(self, outputs: Any) -> Any:
        """The detections are not needed, only the features."""
        return outputs

    def embed(self, features: Tensor, outputs: Any) -> Tensor:
        """``[B, D]``: the features pooled over their positions."""
        return pool_features(features)


@register_heuristic
class DetectionBADGE(BADGE):
    r"""BADGE for detection: ``g_i = (\bar p_{b^*} - e_{\hat y}) \otimes h_i``, ``b^*`` the image's most uncertain box.

    ``\bar p_{b^*}`` is the mean class distribution (over the K matched samples) of the box of highest entropy, the
    background when the image has none; ``h_i`` its pooled backbone features (``layer``). See docs/detection.md.

    Args:
        num_classes: C + 1, the classes with the background, so that every image's distribution has one width.
            ``None``: the width of the ``class_probs`` of the first detections embedded; a model without
            ``class_probs`` must give it (an error says so).
        layer: the submodule whose ``[B, D, ...]`` output are the backbone features.
        iou_threshold: the IoU at which a box of another sample is the same box.
    """

    name = "detection_badge"
    cost = "O(N·(C + D)) per pick for q k-means++ picks; matching each image's K detections first"

    def __init__(self, num_classes: int | None = None, layer: str | None = None, iou_threshold: float = 0.5) -> None:
        super().__init__(layer=layer)
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise ValueError(
                f"Expected argument `num_classes` to be an integer >= 2 (C + 1) or None, but got {num_classes!r}."
            )
        detection_scores([], box_entropy, "max", iou_threshold)
        self.detection_classes = num_classes
        self.iou_threshold = iou_threshold

    def feature_tap(self) -> Any:
        """The output of ``layer`` (BADGE's default, the last ``nn.Linear``, means nothing for a detector)."""
        return super(BADGE, self).feature_tap()

    def transform(self, outputs: Any) -> Any:
        """The task's per-image lists of K detections, as they are."""
        return _check_images(outputs)

    def embed(self, features: Tensor, outputs: Any) -> Tensor:
        """Factored gradient embeddings ``[B, C + 1 + D]`` of the images' most uncertain boxes."""
        images = _check_images(outputs)
        if self.detection_classes is None:
            # Only `class_probs` gives the model's class count: labels show the classes one batch happens to hold.
            widths = [
                int(sample["class_probs"].shape[1])
                for samples in images
                for sample in samples
                if "class_probs" in sample
            ]
            if not widths:
                raise ValueError(
                    "Expected argument `num_classes` (C + 1) of `DetectionBADGE` for detections without"
                    " `class_probs`: the classes one batch shows need not be all of them, and another batch or rank"
                    " would see another count."
                )
            self.detection_classes = max(2, *widths)
        matched = [match_samples(samples, self.iou_threshold) for samples in images]
        rows = [self._most_uncertain(m, self.detection_classes) for m in matched]
        probs = torch.stack(rows) if rows else torch.zeros(0, self.detection_classes, dtype=torch.float64)
        return super().embed(pool_features(features), probs.clamp_min(1e-12).log().float())

    @staticmethod
    def _most_uncertain(matched: DetectionSamples, num_classes: int) -> Tensor:
        distribution = torch.zeros(num_classes, dtype=torch.float64)
        if matched.boxes.shape[0] == 0:
            distribution[0] = 1.0
            return distribution
        mean = matched_probs(matched).mean(1)
        width = mean.shape[1]
        if width > num_classes:
            raise ValueError(f"Expected detections of at most {num_classes} classes (`num_classes`), but got {width}.")
        distribution[:width] = mean[int(box_entropy(matched).argmax())]
        return distribution

    def __repr__(self) -> str:
        return f"DetectionBADGE(num_classes={self.detection_classes}, layer={self.layer!r})"
