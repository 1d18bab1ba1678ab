"""Detection uncertainty: closed forms, a loop reference for the matching, and properties under hypothesis."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional import TopQ
from lightning_bal.functional.detection import (
    aggregate_boxes,
    box_bald,
    box_entropy,
    box_existence,
    box_iou,
    check_detections,
    detection_scores,
    localization_stability,
    localization_variance,
    match_samples,
)

BOX_SCORES = [box_entropy, box_bald, localization_variance, box_existence]


def detections(boxes: list[list[float]], labels: list[int], scores: list[float]) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
        "scores": torch.tensor(scores, dtype=torch.float32),
    }


NONE = detections([], [], [])


def random_sample(generator: torch.Generator, count: int, classes: int = 3, probs: bool = True) -> dict:
    corner = torch.rand(count, 2, generator=generator) * 20
    size = 2 + torch.rand(count, 2, generator=generator) * 10
    logits = torch.randn(count, classes + 1, generator=generator)
    p = logits.softmax(1)
    score, label = p[:, 1:].max(1)
    sample = {"boxes": torch.cat([corner, corner + size], 1), "labels": label + 1, "scores": score}
    if probs:
        sample["class_probs"] = p
    return sample


def jitter(sample: dict, generator: torch.Generator, scale: float) -> dict:
    moved = dict(sample)
    moved["boxes"] = sample["boxes"] + scale * torch.randn(sample["boxes"].shape, generator=generator)
    return moved


def reference_match(samples: list[dict], threshold: float) -> torch.Tensor:
    """The matching, box by box in Python: the row of each box's best-IoU box in each sample, or -1."""
    boxes = [box for sample in samples for box in sample["boxes"].double()]
    owner = [k for k, sample in enumerate(samples) for _ in range(sample["boxes"].shape[0])]
    match = torch.full((len(boxes), len(samples)), -1, dtype=torch.long)
    for row, box in enumerate(boxes):
        for k in range(len(samples)):
            if k == owner[row]:
                match[row, k] = row
                continue
            rows = [r for r in range(len(boxes)) if owner[r] == k]
            ious = [float(box_iou(box[None], boxes[r][None])) for r in rows]
            if ious and max(ious) >= threshold:
                match[row, k] = rows[ious.index(max(ious))]
    return match


@given(seed=st.integers(0, 2**31), counts=st.lists(st.integers(0, 5), min_size=1, max_size=5))
@settings(max_examples=40, deadline=None)
def test_the_vectorised_matching_equals_a_loop_over_boxes(seed, counts):
    generator = torch.Generator().manual_seed(seed)
    base = random_sample(generator, max(counts))
    samples = [jitter({k: v[:count] for k, v in base.items()}, generator, 1.5) for count in counts]
    assert torch.equal(match_samples(samples, 0.5).match, reference_match(samples, 0.5))


@given(seed=st.integers(0, 2**31), k=st.integers(2, 5), count=st.integers(1, 6), probs=st.booleans())
@settings(max_examples=40, deadline=None)
def test_image_scores_do_not_depend_on_the_order_of_samples_or_boxes(seed, k, count, probs):
    generator = torch.Generator().manual_seed(seed)
    base = random_sample(generator, count, probs=probs)
    samples = [jitter(base, generator, 2.0) for _ in range(k)]
    samples[0] = {key: value[: count // 2] for key, value in samples[0].items()}  # a sample that misses boxes
    order = torch.randperm(k, generator=generator).tolist()
    shuffled = []
    for position in order:
        boxes = torch.randperm(samples[position]["boxes"].shape[0], generator=generator)
        shuffled.append({key: value[boxes] for key, value in samples[position].items()})
    for box_score in [*BOX_SCORES, localization_stability]:
        for reduction in ("max", "mean", "sum", TopQ(0.3)):
            expected = detection_scores([samples], box_score, reduction)
            torch.testing.assert_close(detection_scores([shuffled], box_score, reduction), expected)


@given(seed=st.integers(0, 2**31), k=st.integers(1, 6), count=st.integers(0, 6), probs=st.booleans())
@settings(max_examples=40, deadline=None)
def test_identical_samples_carry_no_model_uncertainty(seed, k, count, probs):
    generator = torch.Generator().manual_seed(seed)
    sample = random_sample(generator, count, probs=probs)
    matched = match_samples([sample] * k)
    m = k * count
    zeros = torch.zeros(m, dtype=torch.float64)
    # Zero up to the rounding of a mean of K equal distributions.
    torch.testing.assert_close(box_bald(matched), zeros, atol=1e-12, rtol=0)
    torch.testing.assert_close(localization_variance(matched), zeros, atol=1e-12, rtol=0)
    torch.testing.assert_close(localization_stability(matched), torch.ones(m, dtype=torch.float64))
    assert torch.equal(box_existence(matched), torch.ones(m, dtype=torch.float64))


@given(seed=st.integers(0, 2**31), k=st.integers(1, 6), count=st.integers(1, 6))
@settings(max_examples=30, deadline=None)
def test_bald_lies_between_zero_and_the_entropy(seed, k, count):
    generator = torch.Generator().manual_seed(seed)
    samples = [jitter(random_sample(generator, count), generator, 3.0) for _ in range(k)]
    matched = match_samples(samples)
    bald, entropy = box_bald(matched), box_entropy(matched)
    assert bool((bald >= 0).all())
    assert bool((bald <= entropy + 1e-12).all())
    assert bool((box_existence(matched) > 0).all())
    assert bool((box_existence(matched) <= 1).all())
    stability = localization_stability(matched)
    assert bool((stability >= 0).all())
    assert bool((stability <= 1 + 1e-12).all())


def test_closed_forms_of_one_box_seen_by_half_the_samples():
    """One sure box in 2 of 4 samples: existence 1/2, BALD ln 2, entropy ln 2, stability 1/3 from the box's side."""
    box = detections([[0, 0, 10, 10]], [2], [1.0])
    matched = match_samples([box, NONE, box, NONE])
    assert matched.match.tolist() == [[0, -1, 1, -1], [0, -1, 1, -1]]
    torch.testing.assert_close(box_existence(matched), torch.full((2,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(box_bald(matched), torch.full((2,), math.log(2), dtype=torch.float64))
    torch.testing.assert_close(box_entropy(matched), torch.full((2,), math.log(2), dtype=torch.float64))
    torch.testing.assert_close(localization_stability(matched), torch.full((2,), 1 / 3, dtype=torch.float64))


def test_the_variance_of_a_box_moved_by_two_pixels():
    left, right = detections([[0, 0, 10, 10]], [1], [0.9]), detections([[2, 0, 12, 10]], [1], [0.9])
    matched = match_samples([left, right])
    # x1 and x2 each vary by 1 pixel around their mean (variance 1), y1 and y2 not at all: mean 0.5.
    torch.testing.assert_close(localization_variance(matched), torch.full((2,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(localization_stability(matched), torch.full((2,), 8 / 12, dtype=torch.float64))


def test_a_box_below_the_iou_threshold_is_the_background_of_that_sample():
    left, right = detections([[0, 0, 10, 10]], [1], [1.0]), detections([[6, 0, 16, 10]], [1], [1.0])
    assert match_samples([left, right], iou_threshold=0.5).match.tolist() == [[0, -1], [-1, 1]]
    assert match_samples([left, right], iou_threshold=0.2).match.tolist() == [[0, 1], [0, 1]]


def test_scores_without_class_probs_put_the_rest_on_the_background():
    matched = match_samples([detections([[0, 0, 4, 4]], [3], [0.75])])
    assert matched.probs.tolist() == [[0.25, 0.0, 0.0, 0.75]]


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [("max", [0.9, 0.0]), ("mean", [0.5, 0.0]), ("sum", [1.5, 0.0]), (TopQ(0.5), [0.7, 0.0])],
)
def test_aggregation_of_box_scores_and_the_empty_policy(reduction, expected):
    scores = [torch.tensor([0.1, 0.5, 0.9]), torch.empty(0)]
    aggregated = aggregate_boxes(scores, reduction)
    torch.testing.assert_close(aggregated, torch.tensor(expected, dtype=torch.float64))
    assert aggregate_boxes(scores, reduction, empty_score=math.inf)[1] == math.inf


def test_an_image_with_no_detection_in_any_sample_gets_the_empty_score():
    box = detections([[0, 0, 10, 10]], [1], [0.6])
    scores = detection_scores([[NONE, NONE], [box, NONE]], box_bald, empty_score=-1.0)
    assert scores[0] == -1.0
    assert scores[1] > 0


@pytest.mark.parametrize(
    ("outputs", "error", "match"),
    [
        ({"boxes": torch.zeros(0, 4)}, TypeError, "list of dicts"),
        ([[]], TypeError, r"`outputs\[0\]` to be a dict"),
        ([{"boxes": torch.zeros(1, 4), "labels": torch.ones(1, dtype=torch.long)}], KeyError, "lacks \\['scores'\\]"),
        ([detections([[0, 0, float("nan"), 1]], [1], [0.5])], ValueError, "finite"),
        ([detections([[0, 0, 1, 1]], [0], [0.5])], ValueError, "classes >= 1"),
        ([detections([[0, 0, 1, 1]], [1], [1.5])], ValueError, r"'scores'.*\[0, 1\]"),
        ([{**detections([[0, 0, 1, 1]], [1], [0.5]), "class_probs": torch.ones(1, 3)}], ValueError, "summing to 1"),
        ([{**detections([[0, 0, 1, 1]], [4], [0.5]), "class_probs": torch.ones(1, 3) / 3}], ValueError, "< 3"),
    ],
)
def test_outputs_of_another_format_are_refused(outputs, error, match):
    with pytest.raises(error, match=match):
        check_detections(outputs)


@pytest.mark.parametrize("threshold", [0, 1.5, True, "0.5"])
def test_the_iou_threshold_is_checked(threshold):
    with pytest.raises(ValueError, match="`iou_threshold`"):
        match_samples([NONE], threshold)
