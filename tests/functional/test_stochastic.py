import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional import sample_without_replacement, sampling_log_weights


@pytest.mark.parametrize(
    ("mode", "beta", "higher_is_better", "expected"),
    [
        ("power", 1.0, True, [1.0, 2.0, 4.0]),
        ("power", 2.0, True, [1.0, 4.0, 16.0]),
        ("softmax", 1.0, True, [1.0, 2.718281828, 20.08553692]),
        ("softmax", 1.0, False, [1.0, 0.367879441, 0.049787068]),
        ("softrank", 1.0, True, [1 / 3, 1 / 2, 1.0]),
        ("softrank", 1.0, False, [1.0, 1 / 2, 1 / 3]),
        ("power", 0.0, True, [1.0, 1.0, 1.0]),
    ],
)
def test_log_weights(mode, beta, higher_is_better, expected):
    scores = torch.tensor([1.0, 2.0, 4.0]) if mode != "softmax" else torch.tensor([0.0, 1.0, 3.0])
    weights = sampling_log_weights(scores, mode, beta, higher_is_better).exp()
    torch.testing.assert_close(weights / weights[0], torch.tensor(expected, dtype=torch.float64) / expected[0])


@pytest.mark.parametrize(
    ("scores", "mode", "higher_is_better", "match"),
    [
        (torch.tensor([1.0, -1.0]), "power", True, ">= 0"),
        (torch.tensor([1.0, 2.0]), "power", False, "higher_is_better"),
        (torch.tensor([1.0, float("nan")]), "softmax", True, "finite"),
        (torch.tensor([1.0, 2.0]), "gibbs", True, "mode"),
    ],
)
def test_log_weights_errors(scores, mode, higher_is_better, match):
    with pytest.raises(ValueError, match=match):
        sampling_log_weights(scores, mode, 1.0, higher_is_better)


def test_conditional_probabilities_are_exact():
    log_weights = torch.tensor([1.0, 2.0, 3.0, 4.0]).log()
    indices, probabilities = sample_without_replacement(log_weights, 4, torch.Generator().manual_seed(0))
    remaining = 10.0
    for index, probability in zip(indices.tolist(), probabilities.tolist(), strict=True):
        assert probability == pytest.approx((index + 1) / remaining)
        remaining -= index + 1


def test_first_draw_frequencies_follow_weights():
    log_weights = torch.tensor([1.0, 3.0]).log()
    generator = torch.Generator().manual_seed(0)
    firsts = [int(sample_without_replacement(log_weights, 1, generator)[0]) for _ in range(2000)]
    assert 0.70 < sum(firsts) / 2000 < 0.80  # 0.75 expected; bounds are > 5 standard deviations wide


def test_zero_weights_are_never_drawn_and_too_few_raise():
    log_weights = torch.tensor([0.0, float("-inf"), 0.0])
    indices, _ = sample_without_replacement(log_weights, 2, torch.Generator().manual_seed(1))
    assert sorted(indices.tolist()) == [0, 2]
    with pytest.raises(ValueError, match="non-zero probability"):
        sample_without_replacement(log_weights, 3)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 50), data=st.data(), seed=st.integers(0, 1000))
def test_draws_are_distinct_and_seeded(n, data, seed):
    q = data.draw(st.integers(0, n))
    log_weights = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    first = sample_without_replacement(log_weights, q, torch.Generator().manual_seed(seed))
    second = sample_without_replacement(log_weights, q, torch.Generator().manual_seed(seed))
    assert len(set(first[0].tolist())) == q
    assert first[0].tolist() == second[0].tolist()
    assert ((first[1] > 0) & (first[1] <= 1 + 1e-12)).all()


def reference_probabilities(log_weights, indices):
    """Sequential drawing probabilities by brute force: w_i / fsum(w_j over the items not drawn yet).

    Weights are rescaled by the largest one left at each draw, so nothing under- or overflows, and ``math.fsum``
    rounds each remaining mass once: the reference is exact to float64 rounding of ``exp``.
    """
    log_weights = [float(w) for w in log_weights]
    remaining = set(range(len(log_weights)))
    expected = []
    for index in indices:
        top = max(log_weights[j] for j in remaining)
        mass = math.fsum(math.exp(log_weights[j] - top) for j in remaining)
        expected.append(math.exp(log_weights[index] - top) / mass)
        remaining.remove(index)
    return expected


def assert_close_to_reference(log_weights, indices, probabilities):
    finite = [float(w) for w in log_weights if w > -math.inf]
    # A log-weight is known to float64 rounding, eps * |log w|, so the weight ratios are known to eps * spread.
    rtol = 64 * torch.finfo(torch.float64).eps * max(1.0, max(finite) - min(finite))
    expected = reference_probabilities(log_weights, indices.tolist())
    for got, want in zip(probabilities.tolist(), expected, strict=True):
        assert got == pytest.approx(want, rel=rtol, abs=0)


@pytest.mark.parametrize(
    ("log_weights", "expected"),
    [
        ([100.0, 0.0, 0.0, 0.0], [1.0, 1 / 3, 1 / 2, 1.0]),  # weights e^100, 1, 1, 1 (issue #15)
        ([0.0, -800.0, -800.0], [1.0, 1 / 2, 1.0]),  # the later weights underflow in linear space
        ([1e300, 1e300 - 1e290, 0.0], [1.0, 1.0, 1.0]),  # huge log-weights: no overflow in the Gumbel keys
        ([40.0, 0.0, math.log(3.0)], [1.0, 3 / 4, 1.0]),
    ],
)
def test_probabilities_are_exact_when_the_first_draws_hold_almost_all_the_mass(log_weights, expected):
    # The first weight exceeds the others by more than any Gumbel noise can (< 45), so the order is fixed.
    indices, probabilities = sample_without_replacement(
        torch.tensor(log_weights, dtype=torch.float64), len(log_weights), torch.Generator().manual_seed(0)
    )
    assert indices[0].item() == 0
    assert_close_to_reference(log_weights, indices, probabilities)
    if expected[1] != 1.0:  # the order of the equal weights is random, not their probabilities
        torch.testing.assert_close(probabilities, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None)
@given(
    log_weights=st.lists(
        st.one_of(st.floats(-1e4, 1e4), st.floats(-30.0, 30.0), st.just(-math.inf)), min_size=1, max_size=40
    ),
    data=st.data(),
    seed=st.integers(0, 2**16),
)
def test_probabilities_match_brute_force(log_weights, data, seed):
    num_drawable = sum(w > -math.inf for w in log_weights)
    query_size = data.draw(st.integers(0, num_drawable))
    indices, probabilities = sample_without_replacement(
        torch.tensor(log_weights, dtype=torch.float64), query_size, torch.Generator().manual_seed(seed)
    )
    assert all(log_weights[i] > -math.inf for i in indices.tolist())
    if query_size:
        assert_close_to_reference(log_weights, indices, probabilities)


def test_sequential_probabilities_match_frequencies():
    # P(second draw = 2 | first draw = 0) = 3 / (2 + 3) for weights 1, 2, 3: checks the conditional, not only draw 1.
    log_weights = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64).log()
    generator = torch.Generator().manual_seed(0)
    draws = [sample_without_replacement(log_weights, 2, generator) for _ in range(3000)]
    after_zero = [(int(indices[1]), float(p[1])) for indices, p in draws if int(indices[0]) == 0]
    assert 0.5 < sum(index == 2 for index, _ in after_zero) / len(after_zero) < 0.7  # 0.6 expected, ~500 draws
    assert all(p == pytest.approx(0.6 if index == 2 else 0.4, rel=1e-14) for index, p in after_zero)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_positive_infinite_log_weights_raise(bad):
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        sample_without_replacement(torch.tensor([0.0, bad]), 1)


@pytest.mark.parametrize(("num_weighted", "num_zero", "query_size"), [(2, 4, 5), (0, 5, 3), (1, 3, 4), (3, 3, 3)])
def test_fill_uniformly_draws_weighted_items_first_then_zero_weight_ones(num_weighted, num_zero, query_size):
    log_weights = torch.cat([torch.tensor([1.0, 2.0, 3.0][:num_weighted]).log(), torch.full((num_zero,), -math.inf)])
    generator = torch.Generator().manual_seed(num_weighted)
    indices, probabilities = sample_without_replacement(log_weights, query_size, generator, fill_uniformly=True)
    assert len(set(indices.tolist())) == query_size
    weighted = min(num_weighted, query_size)
    assert sorted(indices[:weighted].tolist()) == list(range(weighted))
    assert all(index >= num_weighted for index in indices[weighted:].tolist())
    if weighted:
        assert_close_to_reference(log_weights.tolist()[:num_weighted], indices[:weighted], probabilities[:weighted])
    num_fill = query_size - weighted
    expected_fill = 1.0 / torch.arange(num_zero, num_zero - num_fill, -1, dtype=torch.float64)
    torch.testing.assert_close(probabilities[weighted:], expected_fill, rtol=0, atol=0)


def test_fill_uniformly_is_uniform_and_seeded():
    log_weights = torch.tensor([0.0] + [-math.inf] * 4)
    generator = torch.Generator().manual_seed(0)
    counts = [0] * 5
    for _ in range(2000):
        indices, _ = sample_without_replacement(log_weights, 2, generator, fill_uniformly=True)
        assert indices[0].item() == 0
        counts[int(indices[1])] += 1
    assert all(400 < count < 600 for count in counts[1:])  # 500 expected, sd ~19
    first = sample_without_replacement(log_weights, 4, torch.Generator().manual_seed(3), fill_uniformly=True)
    second = sample_without_replacement(log_weights, 4, torch.Generator().manual_seed(3), fill_uniformly=True)
    assert first[0].tolist() == second[0].tolist()


def test_empty_input():
    indices, probabilities = sample_without_replacement(torch.zeros(0), 0)
    assert indices.shape == probabilities.shape == (0,)
    assert sampling_log_weights(torch.zeros(0), "softrank").shape == (0,)
