"""The mask contract: per-position scores reduced per item, ignored positions left out, in functions and classes."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional import (
    TopQ,
    bald,
    entropy,
    gaussian_mutual_information,
    least_confidence,
    margin,
    variance,
    variation_ratios,
)
from lightning_bal.functional._validation import reduce_scores
from lightning_bal.functional.outputs import Masked
from lightning_bal.heuristics import BALD, Entropy, GaussianMI, Margin, PowerBALD, Variance


def reference(scores, mask, reduction, empty=0.0, higher_is_better=True):
    """Item by item, over the list of valid positions, most uncertain first."""
    out = []
    for row, valid in zip(scores.flatten(1).tolist(), mask.flatten(1).tolist(), strict=True):
        kept = sorted((s for s, v in zip(row, valid, strict=True) if v), reverse=higher_is_better)
        if not kept:
            out.append(empty)
        elif reduction == "mean":
            out.append(sum(kept) / len(kept))
        elif reduction == "sum":
            out.append(sum(kept))
        elif reduction == "max":
            out.append(kept[0])
        else:
            taken = max(1, math.ceil(len(kept) * reduction.q))
            out.append(sum(kept[:taken]) / taken)
    return torch.tensor(out, dtype=torch.float64)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 4),
    positions=st.integers(1, 7),
    reduction=st.sampled_from(["mean", "sum", "max", TopQ(0.1), TopQ(0.5), TopQ(1.0)]),
    seed=st.integers(0, 2**16),
    higher_is_better=st.booleans(),
    masked=st.booleans(),
)
def test_masked_reductions_match_a_reference_over_valid_positions(
    n, positions, reduction, seed, higher_is_better, masked
):
    """For a lower-is-better score, "max" and "topq" keep the smallest scores: the most uncertain positions."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, positions, generator=generator, dtype=torch.float64)
    mask = torch.rand(n, positions, generator=generator) < 0.6
    if not masked:
        mask.fill_(True)
    got = reduce_scores(scores, reduction, mask if masked else None, -7.0, higher_is_better)
    torch.testing.assert_close(got, reference(scores, mask, reduction, -7.0, higher_is_better))


def test_topq_string_is_the_top_tenth():
    scores = torch.arange(20.0).reshape(1, 20)
    assert reduce_scores(scores, "topq").tolist() == [18.5]  # ceil(0.1 * 20) = 2 best: 19 and 18
    assert reduce_scores(scores, TopQ(0.05)).tolist() == [19.0]


@pytest.mark.parametrize("fn", [bald, entropy, least_confidence, variation_ratios, margin])
@pytest.mark.parametrize("reduction", ["mean", "sum", "max", "topq"])
def test_ignored_positions_do_not_change_the_score(fn, reduction):
    """Scoring [N, K, C, T] with a mask equals scoring only the valid tokens, whatever the ignored ones hold."""
    generator = torch.Generator().manual_seed(0)
    log_probs = torch.randn(3, 5, 4, 6, generator=generator).log_softmax(2)
    lengths = [6, 2, 4]
    mask = torch.arange(6)[None, :] < torch.tensor(lengths)[:, None]
    noise = torch.randn(3, 5, 4, 6, generator=generator).log_softmax(2)
    garbage = torch.where(mask[:, None, None, :], log_probs, noise)
    assert not torch.equal(garbage, log_probs)
    masked = fn(garbage, reduction=reduction, mask=mask)
    expected = torch.stack(
        [fn(log_probs[i : i + 1, ..., :length], reduction=reduction)[0] for i, length in enumerate(lengths)]
    )
    torch.testing.assert_close(masked, expected)


def test_an_item_with_no_valid_position_gets_the_least_informative_score():
    log_probs = torch.randn(2, 3, 4, 5).log_softmax(2)
    mask = torch.tensor([[True] * 5, [False] * 5])
    assert bald(log_probs, mask=mask)[1] == 0.0
    assert margin(log_probs, mask=mask)[1] == 1.0  # lower is better for margin: an empty item is never preferred


@pytest.mark.parametrize(
    ("mask", "error", "match"),
    [
        (torch.ones(2, 4, dtype=torch.bool), ValueError, r"shape \(2, 5\)"),
        (torch.ones(2, 5), TypeError, "bool tensor"),
        (torch.ones(2, 5, 1, dtype=torch.bool), ValueError, r"shape \(2, 5\)"),
    ],
)
def test_a_bad_mask_is_a_clear_error(mask, error, match):
    with pytest.raises(error, match=match):
        bald(torch.randn(2, 3, 4, 5).log_softmax(2), mask=mask)


def test_a_mask_without_positions_is_refused():
    with pytest.raises(ValueError, match="only for scores over positions"):
        entropy(torch.randn(2, 3, 4).log_softmax(2), mask=torch.ones(2, dtype=torch.bool))


def test_regression_masks_and_the_gaussian_mutual_information():
    predictions = torch.tensor([[[0.0, 5.0], [2.0, -5.0]]])  # one item, K=2, two outputs; the second is ignored
    mask = torch.tensor([[True, False]])
    assert variance(predictions, mask=mask).tolist() == [1.0]
    means, log_vars = predictions, torch.zeros_like(predictions)
    torch.testing.assert_close(
        gaussian_mutual_information(means, log_vars, mask=mask), torch.tensor([0.5 * math.log(2.0)])
    )


def test_gaussian_mutual_information_against_its_closed_form():
    generator = torch.Generator().manual_seed(1)
    means, log_vars = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    total = log_vars.exp().mean(1) + means.var(1, correction=0)
    expected = 0.5 * torch.log(total / log_vars.exp().mean(1))
    torch.testing.assert_close(gaussian_mutual_information(means, log_vars), expected)
    # Same noise everywhere: MacKay's 1/2 log(1 + model variance / noise variance).
    flat = gaussian_mutual_information(means, torch.full_like(means, math.log(0.5)))
    torch.testing.assert_close(flat, 0.5 * torch.log1p(means.var(1, correction=0) / 0.5))


def test_classes_take_the_mask_from_the_model_outputs():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 4, 5, 6, generator=generator)  # [B, K, C, T]
    valid = (torch.arange(6)[None, :] < torch.tensor([6, 3, 1])[:, None])[:, None].expand(3, 4, 6)  # [B, K, T]
    outputs = {"logits": logits, "valid": valid}
    for heuristic in (BALD(output="logits", mask="valid", reduction="max"), Entropy(output="logits", mask="valid")):
        transformed = heuristic.transform(outputs)
        assert isinstance(transformed, Masked)
        fn = bald if isinstance(heuristic, BALD) else entropy
        expected = fn(logits.log_softmax(2), reduction=heuristic.reduction, mask=valid[:, 0])
        torch.testing.assert_close(heuristic.score(transformed), expected)
    power = PowerBALD(output="logits", mask="valid")
    torch.testing.assert_close(power.score(power.transform(outputs)), bald(logits.log_softmax(2), mask=valid[:, 0]))
    assert Margin(output="logits", mask="valid").score(
        Margin(output="logits", mask="valid").transform(outputs)
    ).shape == (3,)


def test_heuristic_mask_options_fail_at_construction():
    with pytest.raises(ValueError, match="Expected argument `output` to name the model output"):
        BALD(mask="valid")
    with pytest.raises(ValueError, match="reduction"):
        BALD(reduction="median")
    with pytest.raises(TypeError, match="bool mask"):
        BALD(output="logits", mask="valid").transform({"logits": torch.zeros(2, 3, 4, 5), "valid": torch.ones(2, 3, 5)})


def test_variance_and_gaussian_mi_heuristics():
    means = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    assert Variance().score(means).tolist() == [1.0, 0.0]
    heuristic = GaussianMI(mean="mu", log_variance="log_var")
    scores = heuristic.score(heuristic.transform({"mu": means, "log_var": torch.zeros(2, 2)}))
    torch.testing.assert_close(scores, torch.tensor([0.5 * math.log(2.0), 0.0]))
    with pytest.raises(ValueError, match="two outputs"):
        GaussianMI(mean=0, log_variance=0)
