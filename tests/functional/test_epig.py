import math
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional import bald, epig

# The package attribute `epig` is the function; the module holds the chunk size.
epig_module = sys.modules["lightning_bal.functional.epig"]


def random_log_probs(n, k, c, seed, sharpness=2.0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, c, generator=generator, dtype=dtype) * sharpness, dim=2)


def brute_force_epig(log_probs_pool, log_probs_targets):
    """The definition, one (pool, target) pair and one (y, y*) cell at a time, in float64."""
    probs_pool, probs_targets = log_probs_pool.double().exp(), log_probs_targets.double().exp()
    num_samples = probs_pool.shape[1]
    scores = []
    for p_KC in probs_pool:
        information = 0.0
        for q_KC in probs_targets:
            marginal_pool, marginal_target = p_KC.mean(0), q_KC.mean(0)
            for y in range(p_KC.shape[1]):
                for y_star in range(q_KC.shape[1]):
                    joint = float((p_KC[:, y] * q_KC[:, y_star]).sum()) / num_samples
                    if joint > 0:
                        information += joint * math.log(joint / float(marginal_pool[y] * marginal_target[y_star]))
        scores.append(information / probs_targets.shape[0])
    return torch.tensor(scores, dtype=torch.float64)


@pytest.mark.parametrize(
    ("n", "t", "k", "c_pool", "c_target", "seed"),
    [(5, 3, 4, 3, 3, 0), (7, 1, 2, 2, 2, 1), (4, 6, 5, 4, 4, 2), (3, 4, 3, 2, 5, 3), (1, 1, 8, 10, 10, 4)],
)
def test_matches_brute_force(n, t, k, c_pool, c_target, seed):
    log_probs_pool = random_log_probs(n, k, c_pool, seed)
    log_probs_targets = random_log_probs(t, k, c_target, seed + 100)
    torch.testing.assert_close(
        epig(log_probs_pool, log_probs_targets), brute_force_epig(log_probs_pool, log_probs_targets)
    )


@pytest.mark.parametrize("seed", range(3))
def test_target_equal_to_the_item_matches_brute_force(seed):
    """With x* = x, EPIG is I(y; y*) of two labels of x drawn from the same MC sample."""
    log_probs = random_log_probs(6, 5, 3, seed)
    scores = torch.stack([epig(log_probs[i : i + 1], log_probs[i : i + 1]) for i in range(6)]).squeeze(1)
    expected = torch.cat([brute_force_epig(log_probs[i : i + 1], log_probs[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(scores, expected)


def test_target_equal_to_the_item_with_deterministic_samples_is_bald():
    """One-hot samples make y* = y given the sample, so I(y; y*) = H[y] = BALD."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (10, 6), generator=generator)
    log_probs = torch.nn.functional.one_hot(labels, 4).double().clamp_min(1e-30).log()
    scores = torch.stack([epig(log_probs[i : i + 1], log_probs[i : i + 1]) for i in range(10)]).squeeze(1)
    torch.testing.assert_close(scores, bald(log_probs))


def test_identical_samples_give_zero():
    log_probs = random_log_probs(20, 1, 5, 0).expand(20, 6, 5)
    targets = random_log_probs(8, 1, 5, 1).expand(8, 6, 5)
    torch.testing.assert_close(epig(log_probs, targets), torch.zeros(20, dtype=torch.float64))
    torch.testing.assert_close(epig(log_probs.float(), targets.float()), torch.zeros(20), atol=1e-6, rtol=0)


def test_mean_over_targets():
    """EPIG is a mean over targets, so scores for a target set combine from scores for its parts."""
    log_probs_pool = random_log_probs(9, 4, 3, 0)
    targets_a, targets_b = random_log_probs(2, 4, 3, 1), random_log_probs(5, 4, 3, 2)
    combined = epig(log_probs_pool, torch.cat([targets_a, targets_b]))
    torch.testing.assert_close(
        combined, (2 * epig(log_probs_pool, targets_a) + 5 * epig(log_probs_pool, targets_b)) / 7
    )


@pytest.mark.parametrize("chunk_elements", [1, 100, 1 << 22])
def test_chunking_does_not_change_scores(monkeypatch, chunk_elements):
    log_probs_pool, log_probs_targets = random_log_probs(50, 4, 3, 0), random_log_probs(7, 4, 3, 1)
    expected = brute_force_epig(log_probs_pool, log_probs_targets)
    monkeypatch.setattr(epig_module, "_CHUNK_ELEMENTS", chunk_elements)
    torch.testing.assert_close(epig(log_probs_pool, log_probs_targets), expected)


def test_float32_matches_float64():
    log_probs_pool, log_probs_targets = random_log_probs(40, 8, 10, 0), random_log_probs(30, 8, 10, 1)
    scores = epig(log_probs_pool.float(), log_probs_targets.float())
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores.double(), epig(log_probs_pool, log_probs_targets), atol=1e-5, rtol=1e-4)


def test_mixed_dtypes_compute_in_float64():
    assert epig(random_log_probs(2, 3, 2, 0).float(), random_log_probs(2, 3, 2, 1)).dtype == torch.float64


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6),
    t=st.integers(1, 5),
    k=st.integers(2, 6),
    c=st.integers(2, 5),
    sharpness=st.floats(0.0, 8.0),
    seed=st.integers(0, 2**16),
)
def test_bounds_property(n, t, k, c, sharpness, seed):
    """0 <= EPIG <= BALD (data processing inequality: I(y; y*) <= I(y; sample))."""
    log_probs_pool = random_log_probs(n, k, c, seed, sharpness)
    log_probs_targets = random_log_probs(t, k, c, seed + 1, sharpness)
    scores = epig(log_probs_pool, log_probs_targets)
    assert scores.shape == (n,)
    assert bool((scores >= 0).all())
    assert bool((scores <= bald(log_probs_pool) + 1e-10).all())
    torch.testing.assert_close(scores, brute_force_epig(log_probs_pool, log_probs_targets), atol=1e-10, rtol=1e-8)


def test_empty_pool():
    assert epig(random_log_probs(0, 3, 2, 0), random_log_probs(4, 3, 2, 1)).shape == (0,)


@pytest.mark.parametrize(
    ("pool", "targets", "error", "match"),
    [
        (random_log_probs(3, 4, 2, 0), random_log_probs(3, 5, 2, 0), ValueError, "same K=4 MC samples"),
        (random_log_probs(3, 1, 2, 0), random_log_probs(3, 1, 2, 0), ValueError, "K >= 2"),
        (random_log_probs(3, 4, 2, 0).unsqueeze(-1), random_log_probs(3, 4, 2, 0), ValueError, r"shape \[N, K, C\]"),
        (random_log_probs(3, 4, 2, 0).exp(), random_log_probs(3, 4, 2, 0), ValueError, "log-probabilities"),
        (random_log_probs(3, 4, 2, 0), torch.zeros(3, 4, 2), ValueError, "`log_probs_targets` to hold log-prob"),
        (random_log_probs(3, 4, 2, 0), torch.zeros(3, 4, 2, dtype=torch.long), TypeError, "floating point"),
        (random_log_probs(3, 4, 2, 0)[:, :, 0], random_log_probs(3, 4, 2, 0), ValueError, "at least 3 dims"),
        (random_log_probs(3, 4, 2, 0), random_log_probs(0, 4, 2, 0), ValueError, r"\[T, K, C\] with T >= 1"),
    ],
)
def test_errors(pool, targets, error, match):
    with pytest.raises(error, match=match):
        epig(pool, targets)


def test_nan_raises():
    log_probs = random_log_probs(3, 4, 2, 0)
    log_probs[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        epig(log_probs, random_log_probs(2, 4, 2, 1))


@pytest.mark.reference
def test_matches_baal():
    heuristics = pytest.importorskip("baal.active.heuristics")
    log_probs_pool, log_probs_targets = random_log_probs(30, 6, 4, 0), random_log_probs(12, 6, 4, 1)
    expected = heuristics.EPIG().compute_score(
        log_probs_pool.exp().permute(0, 2, 1).numpy(), log_probs_targets.exp().permute(0, 2, 1).numpy()
    )
    torch.testing.assert_close(
        epig(log_probs_pool.float(), log_probs_targets.float()), torch.from_numpy(expected), atol=1e-5, rtol=1e-4
    )
