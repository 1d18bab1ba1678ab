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
    assert getattr(heuristic, "needs_targets", False) is True
    assert not any(getattr(cls, "needs_targets", False) for name, cls in HEURISTICS.items() if name != "epig")
    assert heuristic.num_candidates(10, 100) == 0


def test_score_without_targets_raises():
    with pytest.raises(RuntimeError, match="set_targets"):
        EPIG().score(random_log_probs(4))


def test_batchwise_scores_equal_the_functional_and_select_is_top_k():
    pool, targets = random_log_probs(40), random_log_probs(6, seed=1)
    heuristic = EPIG()
    heuristic.set_targets(targets)
    expected = epig(pool, targets)
    streamed = torch.cat([heuristic.score(batch) for batch in pool.split(7)])
    torch.testing.assert_close(streamed, expected)
    selection = heuristic.select(pool, 5)
    assert selection.indices.tolist() == torch.argsort(expected, descending=True)[:5].tolist()
    torch.testing.assert_close(selection.scores, expected[selection.indices])


def test_new_targets_replace_the_old_ones():
    pool = random_log_probs(10)
    heuristic = EPIG()
    heuristic.set_targets(random_log_probs(3, seed=1))
    heuristic.set_targets(random_log_probs(4, seed=2))
    torch.testing.assert_close(heuristic.score(pool), epig(pool, random_log_probs(4, seed=2)))


def test_targets_are_detached():
    targets = random_log_probs(3, seed=1).requires_grad_()
    heuristic = EPIG()
    heuristic.set_targets(targets)
    assert not heuristic.score(random_log_probs(4)).requires_grad


@pytest.mark.parametrize(
    ("targets", "match"),
    [
        (random_log_probs(0), r"\[T, K, C\] with T >= 1"),
        (random_log_probs(3, k=1), "K >= 2"),
        (random_log_probs(3).exp(), "log-probabilities"),
    ],
)
def test_set_targets_validates(targets, match):
    with pytest.raises(ValueError, match=match):
        EPIG().set_targets(targets)


def test_validate_args_false_skips_the_checks():
    heuristic = EPIG(validate_args=False)
    heuristic.set_targets(random_log_probs(3).exp())  # not log-probabilities, but not checked
    assert heuristic.score(random_log_probs(2)).shape == (2,)


def test_is_a_heuristic():
    assert issubclass(EPIG, Heuristic)
    assert repr(EPIG()) == "EPIG()"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_targets_move_lazily_to_the_pool_device():
    pool, targets = random_log_probs(20), random_log_probs(5, seed=1)
    heuristic = EPIG()
    heuristic.set_targets(targets)
    assert heuristic._targets.device.type == "cpu"
    scores = heuristic.score(pool.cuda())
    assert heuristic._targets.device.type == "cuda"
    torch.testing.assert_close(scores.cpu(), epig(pool, targets), atol=1e-5, rtol=1e-4)
