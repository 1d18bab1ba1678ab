import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional import bald, batchbald


def random_log_probs(n, k, c, seed=0, scale=2.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, c, generator=g, dtype=dtype) * scale, dim=2)


def exact_joint_mi(log_probs, indices):
    """Brute force a(b) = H[y_b] - sum_i E_k H[p_k(y_i)] by enumerating every configuration."""
    probs = log_probs[indices].exp()  # [b, K, C]
    b, k, c = probs.shape
    joint = 0.0
    for config in itertools.product(range(c), repeat=b):
        p = probs[torch.arange(b), :, torch.tensor(config)].prod(0).mean()
        joint -= float(p * p.log()) if p > 0 else 0.0
    conditional = float(-torch.xlogy(probs, probs).sum(2).mean(1).sum())  # 0 log 0 = 0
    return joint - conditional


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_query_size_one_picks_bald_argmax(seed):
    log_probs = random_log_probs(50, 8, 5, seed=seed)
    indices, scores = batchbald(log_probs, 1)
    scores_bald = bald(log_probs)
    assert indices.tolist() == [int(scores_bald.argmax())]
    torch.testing.assert_close(scores, scores_bald.max().view(1))


@pytest.mark.parametrize(("n", "k", "c", "q"), [(12, 6, 3, 3), (10, 5, 2, 4), (8, 4, 4, 2)])
def test_exact_scores_match_brute_force(n, k, c, q):
    log_probs = random_log_probs(n, k, c, seed=n)
    indices, scores = batchbald(log_probs, q)
    assert len(set(indices.tolist())) == q
    for step in range(q):
        assert scores[step].item() == pytest.approx(exact_joint_mi(log_probs, indices[: step + 1]), abs=1e-9)


def test_greedy_skips_duplicates():
    log_probs = random_log_probs(6, 10, 4, seed=3)
    top = int(bald(log_probs).argmax())
    with_copies = torch.cat([log_probs, log_probs[top : top + 1].expand(3, -1, -1)])
    indices, _ = batchbald(with_copies, 2)
    assert indices[0].item() == top
    assert indices[1].item() not in (6, 7, 8)


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_agrees_with_exact_within_tolerance(seed):
    log_probs = random_log_probs(30, 10, 3, seed=seed)
    exact_indices, exact_scores = batchbald(log_probs, 5, num_samples=10_000)  # 3**4 = 81 configurations: exact
    generator = torch.Generator().manual_seed(seed)
    sampled_indices, sampled_scores = batchbald(log_probs, 5, num_samples=2_000, generator=generator)
    # With num_samples=5 only the first two picks are exact (3 * 3 > 5); the stated tolerance is 0.05 nats of joint
    # MI for 2,000 draws (these problems stay exact, 81 <= 2,000) and 0.25 nats for 5 draws.
    sampled_small = batchbald(log_probs, 5, num_samples=5, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(sampled_scores, exact_scores, atol=0.05, rtol=0)
    assert sampled_indices.tolist() == exact_indices.tolist()
    torch.testing.assert_close(sampled_small[1][:2], exact_scores[:2], atol=1e-9, rtol=0)  # first two picks exact
    torch.testing.assert_close(sampled_small[1], exact_scores, atol=0.25, rtol=0)


def test_sampled_phase_is_seeded():
    log_probs = random_log_probs(40, 6, 4, seed=5)
    first = batchbald(log_probs, 6, num_samples=50, generator=torch.Generator().manual_seed(7))
    second = batchbald(log_probs, 6, num_samples=50, generator=torch.Generator().manual_seed(7))
    assert first[0].tolist() == second[0].tolist()
    torch.testing.assert_close(first[1], second[1])


def test_float32_matches_float64():
    log_probs = random_log_probs(40, 8, 4, seed=9)
    indices64, scores64 = batchbald(log_probs, 4)
    indices32, scores32 = batchbald(log_probs.float(), 4)
    assert indices32.tolist() == indices64.tolist()
    torch.testing.assert_close(scores32.double(), scores64, atol=1e-4, rtol=0)


def test_scores_never_exceed_joint_entropy_bound():
    log_probs = random_log_probs(20, 6, 3, seed=4)
    _, scores = batchbald(log_probs, 4)
    assert (scores.diff() >= -1e-9).all()  # mutual information only grows with the batch
    assert (scores <= 4 * math.log(3)).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"query_size": -1}, "query_size"),
        ({"query_size": 11}, "query_size"),
        ({"query_size": 2, "num_samples": 0}, "num_samples"),
    ],
)
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        batchbald(random_log_probs(10, 4, 3), **kwargs)


def test_trailing_dims_and_single_sample_raise():
    with pytest.raises(ValueError, match=r"\[N, K, C\]"):
        batchbald(random_log_probs(10, 4, 3).unsqueeze(-1), 2)
    with pytest.raises(ValueError, match="K >= 2"):
        batchbald(random_log_probs(10, 1, 3), 2)


def with_exact_zeros(n, k, c, seed=0, dtype=torch.float64):
    """Log-probs with -inf entries: class 0 is impossible for every sample, class 1 for all samples but the first
    in every other item (so the samples disagree about a zero)."""
    log_probs = random_log_probs(n, k, c, seed=seed, dtype=dtype)
    log_probs[:, :, 0] = float("-inf")
    log_probs[::2, 1:, 1] = float("-inf")
    return log_probs.log_softmax(2)


def tiny_instead_of_zeros(log_probs, tiny=1e-30):
    probs = log_probs.exp().clamp_min(tiny)
    return (probs / probs.sum(2, keepdim=True)).log()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    ("n", "k", "c", "q", "num_samples"), [(20, 6, 4, 3, 10_000), (30, 8, 5, 6, 40), (12, 4, 3, 4, 9)]
)
def test_exact_zero_probabilities_match_tiny_positive_ones(n, k, c, q, num_samples, dtype):
    # Issue #15: BALD accepts -inf log-probs (exact zeros) but BatchBALD rejected them, and returned NaN without
    # validation. Exact zeros must give what probabilities of 1e-30 give.
    log_probs = with_exact_zeros(n, k, c, seed=n, dtype=dtype)
    expected = batchbald(tiny_instead_of_zeros(log_probs), q, num_samples, torch.Generator().manual_seed(0))
    for validate_args in (True, False):
        indices, scores = batchbald(log_probs, q, num_samples, torch.Generator().manual_seed(0), validate_args)
        assert not scores.isnan().any()
        assert indices.tolist() == expected[0].tolist()
        atol = 1e-12 if dtype == torch.float64 else 1e-5
        torch.testing.assert_close(scores, expected[1], atol=atol, rtol=0)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 8),
    k=st.integers(2, 5),
    c=st.integers(2, 4),
    zero_fraction=st.floats(0.0, 0.9),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_scores_with_exact_zeros_are_the_exact_joint_mi(n, k, c, zero_fraction, seed, data):
    g = torch.Generator().manual_seed(seed)
    log_probs = random_log_probs(n, k, c, seed=seed)
    zeros = torch.rand(n, k, c, generator=g) < zero_fraction
    zeros.scatter_(2, log_probs.argmax(2, keepdim=True), False)  # each row keeps a non-zero class
    log_probs = log_probs.masked_fill(zeros, float("-inf")).log_softmax(2)
    q = data.draw(st.integers(1, min(n, 3)))
    indices, scores = batchbald(log_probs, q)
    assert len(set(indices.tolist())) == q
    assert scores[0].item() == pytest.approx(bald(log_probs).max().item(), abs=1e-12)
    for step in range(q):
        assert scores[step].item() == pytest.approx(exact_joint_mi(log_probs, indices[: step + 1]), abs=1e-9)


@pytest.mark.parametrize(("bad", "match"), [(float("nan"), "NaN"), (float("inf"), "log-probabilities")])
def test_nan_and_positive_infinity_are_rejected(bad, match):
    log_probs = with_exact_zeros(6, 3, 4)
    log_probs[2, 1, 3] = bad
    with pytest.raises(ValueError, match=match):
        batchbald(log_probs, 2)


@pytest.mark.parametrize("n", [0, 5])
def test_query_size_zero_and_empty_pool(n):
    indices, scores = batchbald(random_log_probs(n, 4, 3), 0)
    assert indices.shape == scores.shape == (0,)
    assert indices.dtype == torch.int64
