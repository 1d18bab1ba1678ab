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
