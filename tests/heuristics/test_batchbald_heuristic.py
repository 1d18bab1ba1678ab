import pytest
import torch

from lightning_bal.heuristics import BALD, BatchBALD


def log_probs_with_exact_zeros(n=40, k=6, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(torch.randn(n, k, c, generator=g, dtype=torch.float64) * 2, dim=2)
    log_probs[:, :, 0] = float("-inf")
    log_probs[::3, 1:, 1] = float("-inf")
    return log_probs.log_softmax(2)


@pytest.mark.parametrize("max_candidates", [10, None])
@pytest.mark.parametrize("validate_args", [True, False])
def test_batchbald_accepts_exact_zeros_like_bald(max_candidates, validate_args):
    log_probs = log_probs_with_exact_zeros()
    heuristic = BatchBALD(max_candidates=max_candidates, validate_args=validate_args)
    selection = heuristic.select(log_probs, 4, torch.Generator().manual_seed(0))
    assert not selection.scores.isnan().any()
    assert len(set(selection.indices.tolist())) == 4
    assert selection.indices[0].item() == int(BALD().score(log_probs).argmax())


@pytest.mark.parametrize(("n", "max_candidates"), [(0, 1000), (5, 1000), (30, 10)])
def test_batchbald_selects_nothing_for_query_size_zero(n, max_candidates):
    selection = BatchBALD(max_candidates=max_candidates).select(log_probs_with_exact_zeros(n), 0)
    assert selection.indices.shape == selection.scores.shape == (0,)
