"""ICAL: the HSIC estimator's properties, the greedy selection against a brute-force reference, bad inputs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional.ical import hsic, ical, sample_kernels

PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None)


def delta_kernel(labels: torch.Tensor) -> torch.Tensor:
    return (labels[..., :, None] == labels[..., None, :]).double()


def random_kernel(n: int, seed: int, dim: int = 3) -> torch.Tensor:
    """A positive semi-definite Gaussian kernel of n random points."""
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.exp(-torch.cdist(x, x).square() / dim)


def log_probs(n: int, k: int = 8, c: int = 3, seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    logits = torch.randn(n, k, c, generator=torch.Generator().manual_seed(seed)) * scale
    return logits.log_softmax(2)


# ------------------------------------------------------------------------------------------------ the estimator
@PROPERTY
@given(st.integers(2, 12), st.integers(0, 2**31 - 1))
def test_hsic_is_symmetric_and_invariant_to_reordering_the_paired_samples(n, seed):
    kx, ky = random_kernel(n, seed), random_kernel(n, seed + 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    shuffled_x, shuffled_y = kx[order][:, order], ky[order][:, order]
    for normalized in (False, True):
        value = hsic(kx, ky, normalized)
        torch.testing.assert_close(hsic(ky, kx, normalized), value)
        torch.testing.assert_close(hsic(shuffled_x, shuffled_y, normalized), value)


@PROPERTY
@given(
    st.integers(2, 12),
    st.integers(0, 2**31 - 1),
    st.floats(0.01, 100.0),
    st.floats(-5.0, 5.0),
)
def test_a_constant_offset_changes_nothing_and_scaling_changes_only_the_plain_estimate(n, seed, scale, offset):
    kx, ky = random_kernel(n, seed), random_kernel(n, seed + 1)
    torch.testing.assert_close(hsic(kx + offset, ky), hsic(kx, ky))
    torch.testing.assert_close(hsic(kx * scale, ky), hsic(kx, ky) * scale)
    torch.testing.assert_close(hsic(kx * scale + offset, ky, normalized=True), hsic(kx, ky, normalized=True))


@PROPERTY
@given(st.integers(2, 12), st.integers(0, 2**31 - 1))
def test_identical_variables_are_maximally_dependent(n, seed):
    """Cauchy-Schwarz: HSIC(K, L)^2 <= HSIC(K, K) HSIC(L, L), so the normalised estimate is in [0, 1], and 1 for K=L."""
    kx, ky = random_kernel(n, seed), random_kernel(n, seed + 1)
    assert float(hsic(kx, kx, normalized=True)) == pytest.approx(1.0)
    assert 0.0 <= float(hsic(kx, ky)) ** 2 <= float(hsic(kx, kx) * hsic(ky, ky)) * (1 + 1e-9)
    assert -1e-12 <= float(hsic(kx, ky, normalized=True)) <= 1.0 + 1e-9


@PROPERTY
@given(st.integers(2, 4), st.integers(2, 4), st.integers(0, 2**31 - 1))
def test_delta_kernels_give_the_squared_distance_of_the_joint_from_the_product_of_marginals(cx, cy, seed):
    """With delta kernels, HSIC_b = sum_ab (p_ab - p_a p_b)^2 over the empirical contingency table."""
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randint(cx, (40,), generator=generator), torch.randint(cy, (40,), generator=generator)
    joint = torch.zeros(cx, cy, dtype=torch.float64).index_put_((x, y), torch.ones(40, dtype=torch.float64), True)
    joint /= 40
    expected = (joint - joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)).square().sum()
    torch.testing.assert_close(hsic(delta_kernel(x), delta_kernel(y)), expected)


@PROPERTY
@given(st.integers(0, 2**31 - 1))
def test_independent_labels_are_near_zero_and_a_function_of_one_is_near_one(seed):
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randint(3, (600,), generator=generator), torch.randint(3, (600,), generator=generator)
    assert float(hsic(delta_kernel(x), delta_kernel(y), normalized=True)) < 0.05
    relabelled = (x + 1) % 3  # a bijection of x: the same partition of the samples
    assert float(hsic(delta_kernel(x), delta_kernel(relabelled), normalized=True)) == pytest.approx(1.0)


def test_a_constant_kernel_is_independent_of_everything():
    assert float(hsic(torch.ones(5, 5), random_kernel(5, 0), normalized=True)) == 0.0
    assert float(hsic(torch.ones(5, 5), random_kernel(5, 0))) == pytest.approx(0.0, abs=1e-12)


def test_hsic_broadcasts_over_leading_dims():
    kernels = torch.stack([random_kernel(6, seed) for seed in range(4)])
    expected = torch.stack([hsic(kernel, kernels[0]) for kernel in kernels])
    torch.testing.assert_close(hsic(kernels, kernels[0]), expected)


@pytest.mark.parametrize(
    ("kernel_x", "kernel_y", "normalized", "error", "match"),
    [
        (torch.ones(3, 4), torch.ones(3, 3), False, ValueError, r"`kernel_x`.*\[\.\.\., n, n\].*\(3, 4\)"),
        (torch.ones(3, 3), [[1.0]], False, ValueError, r"`kernel_y`.*\[\.\.\., n, n\].*list"),
        (torch.ones(3), torch.ones(3, 3), False, ValueError, r"`kernel_x`.*\(3,\)"),
        (torch.ones(3, 3), torch.ones(4, 4), False, ValueError, r"same number of samples.*3 and 4"),
        (torch.ones(3, 3), torch.ones(3, 3), 1, TypeError, r"`normalized`.*bool.*1"),
    ],
)
def test_hsic_refuses_bad_input(kernel_x, kernel_y, normalized, error, match):
    with pytest.raises(error, match=match):
        hsic(kernel_x, kernel_y, normalized)


# ----------------------------------------------------------------------------------------------------- kernels
def test_sampled_label_kernels_are_one_for_equal_labels_and_the_rq_mixture_of_two_otherwise():
    certain = torch.nn.functional.one_hot(torch.tensor([[0, 0, 1]]), 2).float().clamp(1e-7, 1 - 1e-7).log()
    kernel = sample_kernels(certain, generator=torch.Generator().manual_seed(0))
    other = sum((1 + 2 / (2 * a)) ** -a for a in (0.2, 0.5, 1.0, 2.0, 5.0)) / 5
    expected = torch.tensor([[[1.0, 1.0, other], [1.0, 1.0, other], [other, other, 1.0]]])
    torch.testing.assert_close(kernel, expected)


def test_label_draws_follow_the_predictive():
    """p(y=1) = 0.3 in every sample: two samples draw the same label with probability 0.3^2 + 0.7^2 = 0.58."""
    lp = torch.tensor([0.7, 0.3]).log().expand(4000, 2, 2)
    kernel = sample_kernels(lp, generator=torch.Generator().manual_seed(0))
    assert float((kernel[:, 0, 1] == 1.0).double().mean()) == pytest.approx(0.58, abs=0.03)


# --------------------------------------------------------------------------------------------------- selection
def brute_force_ical(log_probs_N_K_C: torch.Tensor, query_size: int, normalized: bool) -> tuple[list[int], list]:
    """Greedy ICAL with every mean kernel built explicitly; targets are every item not yet picked."""
    kernels = sample_kernels(log_probs_N_K_C.double(), "probs")
    picks, scores = [], []
    for _ in range(query_size):
        free = [i for i in range(len(kernels)) if i not in picks]
        target = kernels[free].mean(0)
        gains = torch.stack([hsic(kernels[[*picks, x]].mean(0), target, normalized) for x in free])
        best = int(gains.argmax())
        picks.append(free[best])
        scores.append(float(gains[best]))
    return picks, scores


@pytest.mark.parametrize("normalized", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_selection_matches_the_brute_force_reference(normalized, seed):
    lp = log_probs(15, k=6, seed=seed).double()
    indices, scores = ical(lp, 6, num_targets=15, normalized=normalized, samples="probs")
    expected_indices, expected_scores = brute_force_ical(lp, 6, normalized)
    assert indices.tolist() == expected_indices
    torch.testing.assert_close(scores, torch.tensor(expected_scores, dtype=torch.float64))


def test_the_normalised_score_skips_items_redundant_with_the_batch():
    """Four items split the MC samples one way, four another: the second pick is of the other kind."""
    labels = torch.tensor([[0, 0, 0, 1, 1, 1]] * 4 + [[0, 1, 0, 1, 0, 1]] * 4)
    lp = torch.nn.functional.one_hot(labels, 2).float().clamp(1e-7, 1 - 1e-7).log()
    for seed in range(5):
        picks, _ = ical(lp, 2, num_targets=6, generator=torch.Generator().manual_seed(seed))
        assert sorted(int(i >= 4) for i in picks.tolist()) == [0, 1]


@pytest.mark.parametrize("resample_targets", [True, False])
def test_selection_is_seeded_distinct_and_complete(resample_targets):
    lp = log_probs(40, seed=3)
    runs = [
        ical(lp, 10, num_targets=8, resample_targets=resample_targets, generator=torch.Generator().manual_seed(5))
        for _ in range(2)
    ]
    assert torch.equal(runs[0][0], runs[1][0])
    torch.testing.assert_close(runs[0][1], runs[1][1])
    assert len(set(runs[0][0].tolist())) == 10
    everything, _ = ical(lp, 40, num_targets=8, generator=torch.Generator().manual_seed(5))
    assert sorted(everything.tolist()) == list(range(40))
    assert ical(lp, 0)[0].numel() == 0


def test_other_seeds_draw_other_labels_and_targets():
    lp = log_probs(60, seed=4, scale=0.5)
    picks = {
        tuple(ical(lp, 10, num_targets=5, generator=torch.Generator().manual_seed(s))[0].tolist()) for s in range(4)
    }
    assert len(picks) > 1


def test_certain_predictions_score_zero_and_fall_back_to_the_lowest_index():
    certain = torch.nn.functional.one_hot(torch.tensor([[1] * 4] * 5), 3).float().mul(40.0).log_softmax(2)
    indices, scores = ical(certain, 3, generator=torch.Generator().manual_seed(0))
    assert indices.tolist() == [0, 1, 2]
    assert scores.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "match"),
    [
        (lambda: log_probs(5), {"query_size": 6}, ValueError, r"`query_size`.*\[0, 5\].*6"),
        (lambda: log_probs(5), {"query_size": -1}, ValueError, r"`query_size`.*\[0, 5\].*-1"),
        (lambda: log_probs(5), {"query_size": 2.0}, ValueError, r"`query_size`.*2.0"),
        (lambda: log_probs(5), {"num_targets": 0}, ValueError, r"`num_targets`.*>= 1.*0"),
        (lambda: log_probs(5), {"resample_targets": "yes"}, TypeError, r"`resample_targets`.*bool"),
        (lambda: log_probs(5), {"normalized": None}, TypeError, r"`normalized`.*bool"),
        (lambda: log_probs(5), {"samples": "logits"}, ValueError, r"`samples`.*'labels' or 'probs'.*'logits'"),
        (lambda: log_probs(5), {"generator": 3}, TypeError, r"`generator`.*torch.Generator"),
        (lambda: log_probs(5, k=1), {}, ValueError, r"K >= 2"),
        (lambda: log_probs(5).exp(), {}, ValueError, r"log-probabilities"),
        (lambda: log_probs(5).index_fill(0, torch.tensor([2]), float("nan")), {}, ValueError, r"NaN"),
        (lambda: log_probs(5)[..., None], {}, ValueError, r"\[N, K, C\].*\(5, 8, 3, 1\)"),
        (lambda: log_probs(5).tolist(), {}, TypeError, r"`log_probs`.*torch.Tensor"),
        (lambda: log_probs(5).long(), {}, TypeError, r"`log_probs`.*floating point"),
    ],
)
def test_ical_refuses_bad_input_and_leaves_the_generator_untouched(make, kwargs, error, match):
    kwargs = {"query_size": 2, **kwargs}
    generator = kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    state = generator.get_state() if isinstance(generator, torch.Generator) else None
    with pytest.raises(error, match=match):
        ical(make(), **kwargs)
    if state is not None:
        assert torch.equal(generator.get_state(), state)
