import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional import (
    bald,
    entropy,
    expected_entropy,
    least_confidence,
    margin,
    mean_std,
    variance,
    variation_ratios,
)

POINTWISE = [entropy, bald, expected_entropy, margin, least_confidence, mean_std, variation_ratios]


def random_log_probs(n=6, k=5, c=4, *rest, dtype=torch.float32, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, c, *rest, generator=g, dtype=dtype) * scale, dim=2)


@pytest.mark.parametrize("num_classes", [2, 3, 10, 100])
def test_uniform_entropy_is_log_c(num_classes):
    log_probs = torch.full((3, 4, num_classes), -math.log(num_classes))
    torch.testing.assert_close(entropy(log_probs), torch.full((3,), math.log(num_classes)))
    torch.testing.assert_close(bald(log_probs), torch.zeros(3), atol=1e-6, rtol=0)


def test_identical_samples_give_zero_bald():
    one = random_log_probs(5, 1, 7)
    torch.testing.assert_close(bald(one.expand(5, 8, 7)), torch.zeros(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(mean_std(one.expand(5, 8, 7)), torch.zeros(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(variation_ratios(one.expand(5, 8, 7)), torch.zeros(5))


@pytest.mark.parametrize(
    ("probs", "expected_margin", "expected_least_confidence"),
    [([0.7, 0.2, 0.1], 0.5, 0.3), ([0.4, 0.4, 0.2], 0.0, 0.6), ([1.0, 0.0, 0.0], 1.0, 0.0)],
)
def test_confidence_closed_forms(probs, expected_margin, expected_least_confidence):
    log_probs = torch.tensor(probs, dtype=torch.float64).clamp_min(1e-300).log().view(1, 1, 3)
    assert margin(log_probs).item() == pytest.approx(expected_margin)
    assert least_confidence(log_probs).item() == pytest.approx(expected_least_confidence)


def test_matches_naive_formulas_float64():
    log_probs = random_log_probs(20, 6, 5, dtype=torch.float64)
    probs = log_probs.exp()
    mean = probs.mean(1)
    h = -(mean * mean.log()).sum(1)
    cond = -(probs * log_probs).sum(2).mean(1)
    torch.testing.assert_close(entropy(log_probs), h)
    torch.testing.assert_close(expected_entropy(log_probs), cond)
    torch.testing.assert_close(bald(log_probs), h - cond)
    torch.testing.assert_close(mean_std(log_probs), probs.std(1, correction=0).mean(1))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 9),
    k=st.integers(2, 7),
    c=st.integers(2, 12),
    scale=st.floats(0.0, 20.0),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_properties_on_random_log_probs(n, k, c, scale, dtype, seed):
    log_probs = random_log_probs(n, k, c, dtype=dtype, seed=seed, scale=scale)
    h, mi = entropy(log_probs), bald(log_probs)
    for scores in (h, mi, margin(log_probs), least_confidence(log_probs), mean_std(log_probs)):
        assert scores.shape == (n,)
        assert scores.dtype == dtype
    atol = 1e-5 if dtype == torch.float32 else 1e-10
    assert (mi >= 0).all()
    assert (mi <= h + atol).all()
    assert (h <= math.log(c) + atol).all()
    vr = variation_ratios(log_probs)
    assert ((vr >= 0) & (vr <= 1 - 1 / k + atol)).all()


@pytest.mark.parametrize("fn", POINTWISE)
@pytest.mark.parametrize(("reduction", "reduce"), [("mean", torch.mean), ("sum", torch.sum), ("max", torch.amax)])
def test_trailing_dims_are_reduced(fn, reduction, reduce):
    log_probs = random_log_probs(4, 3, 5, 2, 3)
    per_pixel = torch.stack(
        [fn(log_probs[..., i, j]) for i in range(2) for j in range(3)], dim=1
    )  # [N, 6] from the 3-dim path
    if fn is margin and reduction == "max":
        reduce = torch.amin  # "max" keeps the most uncertain pixel: the smallest margin
    torch.testing.assert_close(fn(log_probs, reduction=reduction), reduce(per_pixel, dim=1))
    torch.testing.assert_close(fn(log_probs, reduction=lambda s: s.flatten(1).min(1).values), per_pixel.min(1).values)


@pytest.mark.parametrize("fn", POINTWISE)
def test_chunked_pass_matches_single_item_calls(fn):
    log_probs = random_log_probs(3000, 20, 10)  # > 1 chunk of 2**20 elements
    torch.testing.assert_close(fn(log_probs)[2990:], torch.cat([fn(log_probs[i : i + 1]) for i in range(2990, 3000)]))


@pytest.mark.parametrize("fn", [entropy, bald, margin])
def test_half_precision_is_computed_in_float32(fn):
    log_probs = random_log_probs(5, 3, 4)
    torch.testing.assert_close(fn(log_probs.to(torch.bfloat16)), fn(log_probs), atol=2e-2, rtol=0)


@pytest.mark.parametrize("fn", POINTWISE)
@pytest.mark.parametrize(
    ("make_input", "error", "match"),
    [
        (lambda: torch.zeros(3, 4), ValueError, "at least 3 dims"),
        (lambda: torch.zeros(3, 4, 2, dtype=torch.int64), TypeError, "floating point"),
        (lambda: torch.full((3, 4, 2), 0.5), ValueError, "probabilities or logits"),
        (lambda: torch.full((3, 4, 2), -5.0), ValueError, r"row mass of `log_probs\[0, 0, :\]` is 0.0134759"),
        (
            lambda: random_log_probs(3, 4, 2).index_put_((torch.tensor(1),), torch.tensor(float("nan"))),
            ValueError,
            "finite|NaN",
        ),
        (lambda: [[[0.0]]], TypeError, "torch.Tensor"),
    ],
)
def test_invalid_inputs_raise(fn, make_input, error, match):
    with pytest.raises(error, match=match):
        fn(make_input())


@pytest.mark.parametrize("fn", [bald, mean_std, variation_ratios])
def test_mc_heuristics_need_two_samples(fn):
    with pytest.raises(ValueError, match="K >= 2"):
        fn(random_log_probs(3, 1, 4))


def test_unknown_reduction_raises():
    with pytest.raises(ValueError, match="`reduction`"):
        entropy(random_log_probs(), reduction="median")


def test_validate_args_false_skips_checks():
    probs = torch.full((2, 3, 4), 0.25)
    entropy(probs, validate_args=False)  # garbage in, no error


@pytest.mark.parametrize(("shape", "reduction"), [((5, 4), "mean"), ((5, 4, 3, 2), "mean"), ((5, 4, 3), "max")])
def test_variance_matches_population_variance(shape, reduction):
    predictions = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    per_item = predictions.var(1, correction=0)
    expected = (
        per_item if per_item.ndim == 1 else getattr(per_item.flatten(1), "mean" if reduction == "mean" else "amax")(1)
    )
    torch.testing.assert_close(variance(predictions, reduction=reduction), expected)
    with pytest.raises(ValueError, match="K >= 2"):
        variance(predictions[:, :1])


@pytest.mark.parametrize("fn", POINTWISE)
@pytest.mark.parametrize("shape", [(0, 3, 4), (0, 3, 4, 2, 5)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "max"])
@pytest.mark.parametrize("validate_args", [True, False])
def test_empty_pool_gives_empty_scores(fn, shape, reduction, validate_args):
    for dtype in (torch.float32, torch.float64):
        scores = fn(torch.zeros(shape, dtype=dtype), reduction=reduction, validate_args=validate_args)
        assert scores.shape == (0,)
        assert scores.dtype == dtype


def test_zero_probabilities_contribute_nothing():
    # -inf log-probs are exact zeros: 0 log 0 = 0 as in torch.xlogy, in a class zero for every sample or only some.
    log_probs = random_log_probs(7, 5, 4, 3)
    log_probs[:, :, 0] = float("-inf")
    log_probs[:, 1:, 1] = float("-inf")
    log_probs = log_probs.log_softmax(2)
    probs = log_probs.exp()
    mean = probs.mean(1)
    expected_entropy = -torch.xlogy(mean, mean).sum(1).mean(1)
    torch.testing.assert_close(entropy(log_probs), expected_entropy)
    mean_entropy = -torch.xlogy(probs, probs).sum(2).mean(1).mean(1)
    torch.testing.assert_close(bald(log_probs), expected_entropy - mean_entropy)


def test_large_finite_scores_are_not_reported_as_non_finite():
    predictions = torch.tensor([[0.0, 3e38], [0.0, -3e38]]).expand(3, 2, 2)  # a variance of 9e76 overflows float32
    with pytest.raises(ValueError, match="finite"):
        variance(predictions)
    huge = torch.tensor([[0.0, 2.5e19]]).expand(4, 2)  # each variance ~1.6e38 is finite, their sum is not
    torch.testing.assert_close(variance(huge), torch.full((4,), 2.5e19**2 / 4))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    st.integers(1, 30),
    st.integers(2, 8),
    st.integers(2, 12),
    st.floats(0.0, 1.0),
    st.sampled_from([torch.float32, torch.float64]),
    st.integers(0, 2**16),
)
def test_bald_and_entropy_share_one_entropy(n, k, c, one_hot_share, dtype, seed):
    """BALD's predictive entropy is entropy()'s to the bit: 0 <= BALD <= entropy holds exactly, and with one-hot
    samples (exact zeros in the log-probabilities: no aleatoric part) BALD equals entropy. Both match float64 xlogy."""
    generator = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(torch.randn(n, k, c, generator=generator, dtype=dtype) * 3, dim=2)
    labels = torch.randint(0, c, (n, k), generator=generator)
    one_hot = torch.full_like(log_probs, -math.inf).scatter_(2, labels[..., None], 0.0)
    hard = torch.rand(n, 1, 1, generator=generator) < one_hot_share
    log_probs = torch.where(hard, one_hot, log_probs)
    h, mi = entropy(log_probs), bald(log_probs)
    assert (mi >= 0).all()
    assert (mi <= h).all()
    assert torch.equal(mi[hard.flatten()], h[hard.flatten()])
    mean_probs = log_probs.double().exp().mean(1)
    torch.testing.assert_close(h.double(), -torch.xlogy(mean_probs, mean_probs).sum(1), atol=1e-5, rtol=1e-5)
