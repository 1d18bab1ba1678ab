import numpy as np
import pytest
import torch

from lightning_bal.functional import bald, batchbald, entropy, least_confidence, margin, variance

pytestmark = pytest.mark.reference


def random_log_probs(n, k, c, *rest, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, c, *rest, generator=g, dtype=dtype) * 2, dim=2)


def to_baal(log_probs):
    """Baal wants probabilities [N, C, ..., K], MC axis last."""
    return np.moveaxis(log_probs.exp().numpy(), 1, -1)


@pytest.mark.parametrize(
    ("ours", "baal_name", "transform"),
    [
        (bald, "BALD", lambda s: s),
        (entropy, "Entropy", lambda s: s),
        (margin, "Margin", lambda s: s),
        (least_confidence, "Certainty", lambda s: 1 - s),
    ],
)
@pytest.mark.parametrize("shape", [(40, 7, 5), (10, 4, 3, 2, 3)])
def test_scores_match_baal(ours, baal_name, transform, shape):
    heuristics = pytest.importorskip("baal.active.heuristics")
    log_probs = random_log_probs(*shape)
    expected = getattr(heuristics, baal_name)(reduction="mean").get_uncertainties(to_baal(log_probs))
    np.testing.assert_allclose(transform(ours(log_probs).numpy()), expected, atol=1e-10)


def test_variance_matches_baal():
    heuristics = pytest.importorskip("baal.active.heuristics")
    predictions = torch.randn(20, 6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = heuristics.Variance(reduction="mean").get_uncertainties(np.moveaxis(predictions.numpy(), 1, -1))
    np.testing.assert_allclose(variance(predictions).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(("n", "k", "c", "q", "seed"), [(60, 10, 4, 5, 0), (40, 8, 10, 4, 1), (30, 5, 2, 8, 2)])
def test_exact_batchbald_matches_batchbald_redux(n, k, c, q, seed):
    redux = pytest.importorskip("batchbald_redux.batchbald")
    log_probs = random_log_probs(n, k, c, seed=seed)
    num_samples = c ** (q - 1)  # every step stays exact in both implementations
    expected = redux.get_batchbald_batch(log_probs, q, num_samples, dtype=torch.float64)
    indices, scores = batchbald(log_probs, q, num_samples=num_samples)
    assert indices.tolist() == expected.indices
    np.testing.assert_allclose(scores.numpy(), expected.scores, atol=1e-9)
