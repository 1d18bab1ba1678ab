import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional import (
    lure_weights,
    pure_weights,
    sample_without_replacement,
    sampling_log_weights,
    uniform_probabilities,
    weighted_risk,
)

ESTIMATORS = {"lure": lure_weights, "pure": pure_weights}


def _exact_expectation(losses, proposal, num_acquired, weights_fn):
    """E[R_hat] by enumerating every ordered acquisition; ``proposal(history)`` gives the [N] weights of a draw."""
    pool_size = len(losses)
    expectation = 0.0
    for sequence in itertools.permutations(range(pool_size), num_acquired):
        probability, conditionals = 1.0, []
        for m, index in enumerate(sequence):
            weights = proposal(sequence[:m])
            remaining = sum(w for i, w in enumerate(weights) if i not in sequence[:m])
            conditionals.append(weights[index] / remaining)
            probability *= conditionals[-1]
        estimate = weighted_risk(
            torch.tensor([losses[i] for i in sequence], dtype=torch.float64),
            weights_fn(torch.tensor(conditionals, dtype=torch.float64), pool_size),
        )
        expectation += probability * float(estimate)
    return expectation


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
@pytest.mark.parametrize(("pool_size", "num_acquired"), [(4, 1), (4, 2), (5, 3), (5, 5), (6, 4)])
def test_exactly_unbiased_for_adaptive_proposals(estimator, pool_size, num_acquired):
    """The exact expectation over all acquisitions is the population risk, even when the proposal adapts."""
    losses = [0.3 + i**2 for i in range(pool_size)]

    def proposal(history):  # favours high losses, and changes with every label, like a retrained model
        return [(1.0 + loss) ** (1 + len(history) % 2) + 0.1 * (i in history[:1]) for i, loss in enumerate(losses)]

    expectation = _exact_expectation(losses, proposal, num_acquired, ESTIMATORS[estimator])
    assert expectation == pytest.approx(sum(losses) / pool_size, rel=1e-12)


def test_plain_mean_is_biased_under_the_same_proposal():
    losses = [0.3 + i**2 for i in range(5)]
    expectation = _exact_expectation(losses, lambda history: [1.0 + x for x in losses], 2, lambda q, n: torch.ones(2))
    assert expectation > 1.2 * sum(losses) / 5


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 5).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.integers(1, n),
            st.lists(st.floats(0.01, 10.0), min_size=n, max_size=n),
            st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n),
        )
    )
)
def test_unbiased_property(case):
    pool_size, num_acquired, proposal_weights, losses = case
    for weights_fn in ESTIMATORS.values():
        expectation = _exact_expectation(losses, lambda history: proposal_weights, num_acquired, weights_fn)
        assert expectation == pytest.approx(sum(losses) / pool_size, rel=1e-9, abs=1e-12)


def _acquire(losses, steps, generator):
    """Uniform initial labels, then stochastic steps with power sampling over the losses of the remaining pool.

    Returns the acquired losses and their conditional probabilities in acquisition order, as a datamodule records.
    """
    pool_size = losses.numel()
    available = torch.ones(pool_size, dtype=torch.bool)
    acquired, probabilities = [], []
    for beta, size in steps:
        remaining = torch.nonzero(available).squeeze(1)
        log_weights = sampling_log_weights(losses[remaining], "power", beta)
        picked, q = sample_without_replacement(log_weights, size, generator)
        available[remaining[picked]] = False
        acquired.append(losses[remaining[picked]])
        probabilities.append(q)
    return torch.cat(acquired), torch.cat(probabilities)


@pytest.mark.parametrize(
    "steps",
    [
        [(2.0, 10)],  # one step of power sampling
        [(0.0, 4), (2.0, 6), (1.0, 6)],  # uniform initial labels, then two steps with different proposals
    ],
)
def test_monte_carlo_unbiased_while_plain_mean_is_biased(steps):
    generator = torch.Generator().manual_seed(0)
    losses = torch.linspace(0.05, 2.0, 60, dtype=torch.float64) ** 2
    population_risk = float(losses.mean())
    num_repeats = 3000
    estimates = {"lure": [], "pure": [], "plain": []}
    for _ in range(num_repeats):
        acquired, probabilities = _acquire(losses, steps, generator)
        estimates["plain"].append(float(acquired.mean()))
        for name, weights_fn in ESTIMATORS.items():
            estimates[name].append(float(weighted_risk(acquired, weights_fn(probabilities, losses.numel()))))
    for name, values in estimates.items():
        values = torch.tensor(values, dtype=torch.float64)
        standard_error = float(values.std()) / math.sqrt(num_repeats)
        error = abs(float(values.mean()) - population_risk)
        if name == "plain":
            assert error > 10 * standard_error, name
        else:
            assert error < 3 * standard_error, name


def test_lure_has_lower_variance_than_pure():
    generator = torch.Generator().manual_seed(1)
    losses = torch.linspace(0.05, 2.0, 60, dtype=torch.float64) ** 2
    estimates = {"lure": [], "pure": []}
    for _ in range(500):
        acquired, probabilities = _acquire(losses, [(0.0, 4), (1.0, 12)], generator)
        for name, weights_fn in ESTIMATORS.items():
            estimates[name].append(float(weighted_risk(acquired, weights_fn(probabilities, losses.numel()))))
    assert torch.tensor(estimates["lure"]).var() < torch.tensor(estimates["pure"]).var()


@pytest.mark.parametrize(("pool_size", "num_before", "count"), [(10, 0, 10), (10, 3, 4), (1, 0, 1), (7, 7, 0)])
def test_uniform_sampling_gives_unit_lure_weights(pool_size, num_before, count):
    probabilities = torch.cat(
        [uniform_probabilities(num_before, pool_size), uniform_probabilities(count, pool_size, num_before)]
    )
    torch.testing.assert_close(
        lure_weights(probabilities, pool_size), torch.ones(num_before + count, dtype=torch.float64)
    )


def test_whole_pool_gives_unit_lure_weights_for_any_proposal():
    probabilities = torch.tensor([0.1, 0.7, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(lure_weights(probabilities, 4), torch.ones(4, dtype=torch.float64))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 200).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.floats(1e-6, 1.0), min_size=1, max_size=n)))
)
def test_weights_are_positive_float64_and_shaped_like_the_input(case):
    pool_size, probabilities = case
    probabilities = torch.tensor(probabilities, dtype=torch.float32)
    for weights_fn in ESTIMATORS.values():
        weights = weights_fn(probabilities, pool_size)
        assert weights.shape == probabilities.shape
        assert weights.dtype == torch.float64
        assert bool(torch.isfinite(weights).all())
        assert bool((weights > 0).all())


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 50).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n - 1))))
def test_lure_weights_below_one_exactly_when_drawn_more_likely_than_uniform(case):
    pool_size, num_acquired = case
    uniform = uniform_probabilities(num_acquired, pool_size)
    weights = lure_weights(torch.clamp(uniform * 1.5, max=1.0), pool_size)
    assert bool((weights < 1).all())
    weights = lure_weights(uniform * 0.5, pool_size)
    assert bool((weights > 1).all())


def test_pure_weights_formula():
    # c_m = 1 / (N q_m) + (M - m) / N with N = 10, M = 3
    expected = torch.tensor([1 / (10 * 0.2) + 0.2, 1 / (10 * 0.5) + 0.1, 1 / (10 * 0.25)], dtype=torch.float64)
    torch.testing.assert_close(pure_weights(torch.tensor([0.2, 0.5, 0.25]), 10), expected)


def test_weighted_risk_keeps_dtype_and_gradients():
    losses = torch.tensor([1.0, 2.0], requires_grad=True)
    risk = weighted_risk(losses, torch.tensor([0.5, 2.0], dtype=torch.float64))
    assert risk.dtype == torch.float32
    risk.backward()
    torch.testing.assert_close(losses.grad, torch.tensor([0.25, 1.0]))


def test_empty_acquisition_gives_empty_weights():
    assert lure_weights(torch.empty(0), 5).shape == (0,)
    assert pure_weights(torch.empty(0), 5).shape == (0,)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: lure_weights(torch.tensor([0.5, 0.0]), 4), ValueError, r"lie in \(0, 1\]"),
        (lambda: pure_weights(torch.tensor([1.5]), 4), ValueError, r"lie in \(0, 1\]"),
        (lambda: lure_weights(torch.tensor([float("nan")]), 4), ValueError, r"lie in \(0, 1\]"),
        (lambda: lure_weights(torch.full((3,), 0.5), 2), ValueError, "at most `pool_size`=2"),
        (lambda: lure_weights(torch.full((2, 1), 0.5), 4), ValueError, r"shape \[M\]"),
        (lambda: lure_weights(torch.full((2,), 0.5), 0), ValueError, "`pool_size` to be a positive integer"),
        (lambda: pure_weights(torch.full((2,), 0.5), True), ValueError, "`pool_size` to be a positive integer"),
        (lambda: uniform_probabilities(3, 2), ValueError, "`pool_size` to be an integer >= "),
        (lambda: uniform_probabilities(-1, 2), ValueError, "`count` to be a non-negative integer"),
        (lambda: weighted_risk(torch.ones(2), torch.ones(3)), ValueError, "same non-empty shape"),
        (lambda: weighted_risk(torch.ones(0), torch.ones(0)), ValueError, "same non-empty shape"),
        (lambda: weighted_risk(torch.ones(2, 1), torch.ones(2)), ValueError, r"`losses` to be a tensor of shape \[M\]"),
        (lambda: weighted_risk(torch.ones(2, dtype=torch.long), torch.ones(2)), TypeError, "floating point"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
