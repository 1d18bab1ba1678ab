import pytest
import torch

from lightning_bal.functional import batchbald
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


@pytest.mark.parametrize(("max_candidates", "num_samples"), [(10, 10_000), (None, 10_000), (None, 50)])
@pytest.mark.parametrize("seed", [0, 1])
def test_batchbald_scores_are_bald_scores_and_gains_the_joint_mi_increments(max_candidates, num_samples, seed):
    """The selected scores compare with the pool's (BALD); the gains sum to the functional's joint MI."""
    log_probs = log_probs_with_exact_zeros(seed=seed)
    heuristic = BatchBALD(max_candidates=max_candidates, num_samples=num_samples)
    selection = heuristic.select(log_probs, 5, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(selection.scores, heuristic.score(log_probs)[selection.indices])
    assert selection.scores.max() <= heuristic.score(log_probs).max()
    candidates = log_probs if max_candidates is None else log_probs[BALD().score(log_probs).topk(10).indices]
    _, joint_mi = batchbald(candidates, 5, num_samples, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(selection.gains.cumsum(0), joint_mi)
    torch.testing.assert_close(selection.gains[0], selection.scores[0])  # the first pick adds its own BALD score
    assert (selection.gains[1:] <= selection.scores[1:] + 1e-9).all()  # conditioning on the earlier picks only removes


def test_batchbald_gains_are_empty_for_an_empty_selection():
    selection = BatchBALD().select(log_probs_with_exact_zeros(5), 0)
    assert selection.gains is not None
    assert selection.gains.shape == (0,)
