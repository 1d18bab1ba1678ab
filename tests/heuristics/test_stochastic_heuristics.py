import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional import bald, lure_weights, pure_weights, sampling_log_weights
from lightning_bal.heuristics import (
    PowerBALD,
    PowerEntropy,
    SoftmaxBALD,
    SoftmaxEntropy,
    SoftrankBALD,
    SoftrankEntropy,
)

STOCHASTIC = [PowerBALD, PowerEntropy, SoftmaxBALD, SoftmaxEntropy, SoftrankBALD, SoftrankEntropy]


def reference_probabilities(log_weights, indices):
    """w_i / fsum(w_j over the items not drawn yet), rescaled by the largest weight left: exact to float64."""
    log_weights = [float(w) for w in log_weights]
    remaining = set(range(len(log_weights)))
    expected = []
    for index in indices:
        top = max(log_weights[j] for j in remaining)
        mass = math.fsum(math.exp(log_weights[j] - top) for j in remaining)
        expected.append(math.exp(log_weights[index] - top) / mass)
        remaining.remove(index)
    return expected


def random_log_probs(n, k=6, c=4, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, c, generator=g, dtype=torch.float64) * scale, dim=2)


def peaked_pool_with_one_uniform_item(n=300, seed=0):
    """Item 0 is uniform over 4 classes (entropy log 4); the others are confident (entropy < 0.4)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1, 4, generator=g, dtype=torch.float64) * 0.5
    logits[:, 0, 0] += 6.0
    logits[0] = 0.0
    return torch.log_softmax(logits, dim=2)


def test_softmax_entropy_at_high_beta_reports_exact_probabilities():
    # Issue #15: beta=40 puts all but ~e^-40 of the mass on item 0, and `total - cumsum` reported every later draw
    # as 1.0 (here the second is ~0.01).
    log_probs = peaked_pool_with_one_uniform_item()
    heuristic = SoftmaxEntropy(beta=40.0)
    scores = heuristic.score(log_probs)
    assert float(scores[0] - scores[1:].max()) * 40 > 37  # e^37 > 1 / float64 eps: the case that cancelled
    selection = heuristic.select(log_probs, 5, torch.Generator().manual_seed(0))
    assert selection.indices[0].item() == 0
    expected = reference_probabilities(40.0 * scores, selection.indices.tolist())
    assert expected[1] < 0.05
    torch.testing.assert_close(selection.probabilities, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("cls", STOCHASTIC)
@pytest.mark.parametrize("beta", [0.0, 1.0, 8.0, 40.0])
def test_probabilities_match_brute_force(cls, beta):
    heuristic = cls(beta=beta)
    scores = heuristic.score(random_log_probs(40, seed=int(beta)))
    selection = heuristic.select_from_scores(scores, 12, torch.Generator().manual_seed(1))
    log_weights = sampling_log_weights(scores, cls.mode, beta, cls.base_heuristic.higher_is_better)
    expected = reference_probabilities(log_weights, selection.indices.tolist())
    torch.testing.assert_close(selection.probabilities, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


def test_power_bald_with_fewer_non_zero_scores_than_query_size_does_not_crash():
    # Issue #15: 50 non-zero BALD scores and a query of 60 crashed the fit.
    scores = torch.zeros(200)
    non_zero = torch.randperm(200, generator=torch.Generator().manual_seed(0))[:50]
    scores[non_zero] = torch.rand(50, generator=torch.Generator().manual_seed(1)) + 0.1
    selection = PowerBALD().select_from_scores(scores, 60, torch.Generator().manual_seed(2))
    assert len(set(selection.indices.tolist())) == 60
    assert set(selection.indices[:50].tolist()) == set(non_zero.tolist())  # every non-zero item first
    assert (selection.scores[50:] == 0).all()
    # The last non-zero draw is certain; then uniform among the 150, 149, ... zero-score items left.
    assert selection.probabilities[49].item() == pytest.approx(1.0, rel=1e-12)
    expected_fill = 1.0 / torch.arange(150, 140, -1, dtype=torch.float64)
    torch.testing.assert_close(selection.probabilities[50:], expected_fill, rtol=0, atol=0)
    for weights in (lure_weights(selection.probabilities, 200), pure_weights(selection.probabilities, 200)):
        assert torch.isfinite(weights).all()


def test_power_bald_on_confident_items_selects_from_log_probs():
    # One-hot predictions (exact zeros, -inf log-probs) have a BALD score of exactly 0, hence weight 0.
    log_probs = random_log_probs(30, seed=3)
    log_probs[10:] = torch.tensor([0.0, -math.inf, -math.inf, -math.inf], dtype=torch.float64)
    assert (bald(log_probs)[10:] == 0).all()
    selection = PowerBALD(beta=2.0).select(log_probs, 25, torch.Generator().manual_seed(0))
    assert sorted(selection.indices[:10].tolist()) == list(range(10))
    torch.testing.assert_close(
        selection.probabilities[10:], 1.0 / torch.arange(20, 5, -1, dtype=torch.float64), rtol=0, atol=0
    )


def test_all_zero_scores_give_uniform_sampling():
    selection = PowerEntropy().select_from_scores(torch.zeros(10), 4, torch.Generator().manual_seed(3))
    assert len(set(selection.indices.tolist())) == 4
    torch.testing.assert_close(
        selection.probabilities, torch.tensor([1 / 10, 1 / 9, 1 / 8, 1 / 7], dtype=torch.float64)
    )


@settings(max_examples=40, deadline=None)
@given(
    num_items=st.integers(1, 40),
    data=st.data(),
    beta=st.sampled_from([0.5, 1.0, 4.0]),
    seed=st.integers(0, 2**16),
)
def test_power_selection_never_crashes_and_draws_non_zero_scores_first(num_items, data, beta, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(num_items, generator=g, dtype=torch.float64)
    scores[torch.rand(num_items, generator=g) < data.draw(st.floats(0.0, 1.0))] = 0.0
    query_size = data.draw(st.integers(0, num_items))
    selection = PowerBALD(beta=beta).select_from_scores(scores, query_size, torch.Generator().manual_seed(seed))
    assert len(set(selection.indices.tolist())) == query_size
    num_non_zero = int((scores > 0).sum())
    head = min(query_size, num_non_zero)
    assert (selection.scores[:head] > 0).all()
    assert (selection.scores[head:] == 0).all()
    # Exactly <= 1: the log of the mass left is a log-add-exp that includes the drawn item's own log-weight.
    assert ((selection.probabilities > 0) & (selection.probabilities <= 1)).all()
    if query_size:
        assert torch.isfinite(lure_weights(selection.probabilities, num_items)).all()


@pytest.mark.parametrize("cls", STOCHASTIC)
def test_empty_pool_selects_nothing(cls):
    selection = cls().select(torch.zeros(0, 3, 4), 0, torch.Generator().manual_seed(0))
    assert selection.indices.shape == selection.scores.shape == selection.probabilities.shape == (0,)
