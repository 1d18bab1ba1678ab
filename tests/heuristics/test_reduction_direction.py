"""Reductions over pixels keep the most uncertain region, whatever the direction of the heuristic's score."""

import pytest
import torch

from lightning_bal.functional import TopQ
from lightning_bal.heuristics import BALD, Entropy, LeastConfidence, Margin, MeanSTD, VariationRatios

UNCERTAINTY = [BALD, Entropy, LeastConfidence, Margin, MeanSTD, VariationRatios]


def two_images(num_pixels: int = 8, num_samples: int = 4) -> torch.Tensor:
    """[2, K, 2, P] log-probabilities. Image 0: confident pixels and one ambiguous pixel, on which the MC samples
    disagree (half say class 0, half class 1). Image 1: every pixel mildly uncertain (0.7 / 0.3), samples agreeing.
    """
    probs = torch.empty(2, num_samples, 2, num_pixels)
    probs[0, :, 0] = 0.99
    probs[0, : num_samples // 2, 0, 3] = 0.999
    probs[0, num_samples // 2 :, 0, 3] = 0.001
    probs[1, :, 0] = 0.7
    probs[:, :, 1] = 1.0 - probs[:, :, 0]
    return probs.log()


@pytest.mark.parametrize("heuristic_cls", UNCERTAINTY, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("reduction", ["max", TopQ(0.125), "topq"], ids=["max", "top-1-of-8", "topq"])
def test_the_image_with_an_ambiguous_pixel_ranks_first(heuristic_cls, reduction):
    heuristic = heuristic_cls(reduction=reduction)
    assert heuristic.select(two_images(), 1).indices.tolist() == [0]


@pytest.mark.parametrize("heuristic_cls", UNCERTAINTY, ids=lambda cls: cls.__name__)
def test_mean_still_prefers_the_image_of_mildly_uncertain_pixels_where_the_score_says_so(heuristic_cls):
    """Averaged over pixels, image 1 is the more uncertain, except for the scores of MC disagreement (none in it)."""
    first = heuristic_cls(reduction="mean").select(two_images(), 1).indices.tolist()
    assert first == ([0] if heuristic_cls in (BALD, MeanSTD, VariationRatios) else [1])


def test_margin_max_is_the_smallest_margin_of_an_item():
    log_probs = two_images()
    smallest = Margin(reduction=lambda margins: margins.amin(1)).score(log_probs)  # a callable gets raw margins
    torch.testing.assert_close(Margin(reduction="max").score(log_probs), smallest)
    assert Margin(reduction="max").score(log_probs).tolist() == pytest.approx([0.0, 0.4], abs=1e-5)
