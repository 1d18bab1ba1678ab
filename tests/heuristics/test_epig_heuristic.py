import pytest
import torch

from lightning_bal.functional import epig
from lightning_bal.heuristics import EPIG, HEURISTICS, Heuristic, get_heuristic


def random_log_probs(n, k=5, c=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, c, generator=generator) * 2, dim=2)


def test_registered_with_its_attributes():
    heuristic = get_heuristic("EPIG")
    assert isinstance(heuristic, EPIG)
    assert HEURISTICS["epig"] is EPIG
    assert (EPIG.higher_is_better, EPIG.needs_mc_samples, EPIG.batch_aware, EPIG.stochastic) == (
        True,
        True,
        False,
        False,
    )
    assert heuristic.needs_targets is True
    assert not any(cls.needs_targets for name, cls in HEURISTICS.items() if name != "epig")
    assert heuristic.num_candidates(10, 100) == 0


def test_score_without_targets_raises():
    with pytest.raises(ValueError, match="pass `targets=`"):
        EPIG().score(random_log_probs(4))


def test_batchwise_scores_equal_the_functional_and_select_is_top_k():
    pool, targets = random_log_probs(40), random_log_probs(6, seed=1)
    heuristic = EPIG()
    expected = epig(pool, targets)
    streamed = torch.cat([heuristic.score(batch, targets) for batch in pool.split(7)])
    torch.testing.assert_close(streamed, expected)
    selection = heuristic.select(pool, 5, targets=targets)
    assert selection.indices.tolist() == torch.argsort(expected, descending=True)[:5].tolist()
    torch.testing.assert_close(selection.scores, expected[selection.indices])


def test_scoring_keeps_no_state_between_calls():
    pool = random_log_probs(10)
    heuristic = EPIG()
    heuristic.score(pool, random_log_probs(3, seed=1))
    torch.testing.assert_close(
        heuristic.score(pool, random_log_probs(4, seed=2)), epig(pool, random_log_probs(4, seed=2))
    )


def test_targets_with_grad_give_scores_without():
    targets = random_log_probs(3, seed=1).requires_grad_()
    with torch.no_grad():
        assert not EPIG().score(random_log_probs(4), targets).requires_grad


@pytest.mark.parametrize(
    ("targets", "match"),
    [
        (random_log_probs(0), r"\[T, K, C\] with T >= 1"),
        (random_log_probs(3, k=1), "K >= 2"),
        (random_log_probs(3).exp(), "log-probabilities"),
    ],
)
def test_targets_are_validated(targets, match):
    with pytest.raises(ValueError, match=match):
        EPIG().score(random_log_probs(3), targets)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"num_targets": 0}, "`num_targets`"), ({"target_dataset": 3}, "map-style")]
)
def test_bad_options_fail_at_construction(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        EPIG(**kwargs)


def test_validate_args_false_skips_the_checks():
    heuristic = EPIG(validate_args=False)
    assert heuristic.score(random_log_probs(2), random_log_probs(3).exp()).shape == (2,)


def test_is_a_heuristic():
    assert issubclass(EPIG, Heuristic)
    assert repr(EPIG()) == "EPIG(num_targets=100)"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_targets_move_to_the_pool_device():
    pool, targets = random_log_probs(20), random_log_probs(5, seed=1)
    scores = EPIG().score(pool.cuda(), targets)
    torch.testing.assert_close(scores.cpu(), epig(pool, targets), atol=1e-5, rtol=1e-4)
