import pytest
import torch

from lightning_bal.functional import bald, entropy
from lightning_bal.heuristics import (
    BALD,
    HEURISTICS,
    BatchBALD,
    CombineHeuristics,
    Entropy,
    Heuristic,
    LeastConfidence,
    Margin,
    MeanSTD,
    PowerBALD,
    PowerEntropy,
    Random,
    Selection,
    SoftmaxBALD,
    SoftrankBALD,
    SoftrankEntropy,
    Variance,
    VariationRatios,
    available_heuristics,
    get_heuristic,
)

POINTWISE = [Entropy, BALD, Margin, LeastConfidence, VariationRatios, MeanSTD]
STOCHASTIC = [PowerBALD, PowerEntropy, SoftmaxBALD, SoftrankBALD, SoftrankEntropy]


def random_log_probs(n=30, k=6, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(n, k, c, generator=g) * 2, dim=2)


@pytest.mark.parametrize("cls", POINTWISE)
def test_select_equals_select_from_scores_and_is_top_k(cls):
    heuristic = cls()
    log_probs = random_log_probs()
    selection = heuristic.select(log_probs, 5)
    assert isinstance(selection, Selection)
    from_scores = heuristic.select_from_scores(heuristic.score(log_probs), 5)
    assert selection.indices.tolist() == from_scores.indices.tolist()
    assert selection.probabilities is None
    scores = heuristic.score(log_probs)
    ordered = torch.sort(scores, descending=heuristic.higher_is_better, stable=True).indices[:5]
    assert selection.indices.tolist() == ordered.tolist()
    torch.testing.assert_close(selection.scores, scores[selection.indices])
    assert heuristic.num_candidates(5, 30) == 0


def test_ties_go_to_lower_index():
    selection = Entropy().select_from_scores(torch.tensor([1.0, 2.0, 2.0, 2.0, 0.0]), 2)
    assert selection.indices.tolist() == [1, 2]
    assert Margin().select_from_scores(torch.tensor([1.0, 0.0, 0.0]), 2).indices.tolist() == [1, 2]


@pytest.mark.parametrize(
    ("name", "higher", "needs_predictions", "needs_mc", "batch_aware", "stochastic"),
    [
        ("random", True, False, False, False, True),
        ("entropy", True, True, False, False, False),
        ("margin", False, True, False, False, False),
        ("bald", True, True, True, False, False),
        ("batchbald", True, True, True, True, False),
        ("variance", True, True, True, False, False),
        ("power_bald", True, True, True, False, True),
        ("softrank_entropy", True, True, False, False, True),
    ],
)
def test_class_attributes(name, higher, needs_predictions, needs_mc, batch_aware, stochastic):
    cls = HEURISTICS[name]
    assert (cls.higher_is_better, cls.needs_predictions, cls.needs_mc_samples, cls.batch_aware, cls.stochastic) == (
        higher,
        needs_predictions,
        needs_mc,
        batch_aware,
        stochastic,
    )


def test_registry():
    assert set(available_heuristics()) == set(HEURISTICS)
    assert all(issubclass(cls, Heuristic) and cls.name == name for name, cls in HEURISTICS.items())
    assert isinstance(get_heuristic("Power-BALD", beta=2.0), PowerBALD)
    assert get_heuristic("batchbald", max_candidates=7).max_candidates == 7
    with pytest.raises(ValueError, match="Did you mean 'entropy'"):
        get_heuristic("entropie")
    with pytest.raises(TypeError):
        get_heuristic("bald", unknown_kwarg=1)


def test_random_is_seeded_and_uniform_probabilities():
    first = Random().select_from_scores(torch.zeros(10), 4, torch.Generator().manual_seed(3))
    second = Random().select_from_scores(torch.zeros(10), 4, torch.Generator().manual_seed(3))
    assert first.indices.tolist() == second.indices.tolist()
    assert len(set(first.indices.tolist())) == 4
    torch.testing.assert_close(first.probabilities, torch.tensor([1 / 10, 1 / 9, 1 / 8, 1 / 7], dtype=torch.float64))
    assert Random().score(torch.zeros(7, 2)).shape == (7,)


@pytest.mark.parametrize("cls", STOCHASTIC)
def test_stochastic_family(cls):
    heuristic = cls()
    log_probs = random_log_probs()
    selection = heuristic.select(log_probs, 6, torch.Generator().manual_seed(0))
    again = heuristic.select_from_scores(heuristic.score(log_probs), 6, torch.Generator().manual_seed(0))
    assert selection.indices.tolist() == again.indices.tolist()
    assert len(set(selection.indices.tolist())) == 6
    assert selection.probabilities is not None
    assert selection.probabilities.shape == (6,)
    base = heuristic.base_heuristic().score(log_probs)
    torch.testing.assert_close(selection.scores, base[selection.indices])


def test_power_over_lower_is_better_fails_early():
    from lightning_bal.heuristics import StochasticHeuristic

    class PowerMargin(StochasticHeuristic):
        name = "power_margin"
        base_heuristic = Margin
        mode = "power"

    with pytest.raises(ValueError, match="higher_is_better"):
        PowerMargin()


def test_batchbald_heuristic():
    heuristic = BatchBALD(max_candidates=20, num_samples=1000)
    log_probs = random_log_probs(60, 8, 5)
    assert heuristic.num_candidates(5, 60) == 20
    assert heuristic.num_candidates(30, 60) == 30
    assert heuristic.num_candidates(5, 10) == 10
    assert BatchBALD(max_candidates=None).num_candidates(5, 60) == 60
    torch.testing.assert_close(heuristic.score(log_probs), bald(log_probs))
    selection = heuristic.select(log_probs, 5, torch.Generator().manual_seed(0))
    # Pre-filtering inside select equals the streaming path: keep the top candidates, select among them.
    keep = torch.sort(bald(log_probs), descending=True, stable=True).indices[:20]
    streamed = heuristic.select(log_probs[keep], 5, torch.Generator().manual_seed(0))
    assert selection.indices.tolist() == keep[streamed.indices].tolist()
    assert selection.indices[0].item() == int(bald(log_probs).argmax())
    with pytest.raises(TypeError, match="batch-aware"):
        heuristic.select_from_scores(torch.zeros(4), 2)
    with pytest.raises(ValueError, match="max_candidates"):
        BatchBALD(max_candidates=0)


def test_variance_heuristic_takes_predictions():
    predictions = torch.tensor([[1.0, 3.0], [2.0, 2.0], [0.0, 4.0]])
    assert Variance().select(predictions, 2).indices.tolist() == [2, 0]


def test_combine_heuristics():
    log_probs = random_log_probs()
    combined = CombineHeuristics([Entropy(), BALD()], weights=[3.0, 1.0])
    torch.testing.assert_close(
        combined.score([log_probs, log_probs]), 0.75 * entropy(log_probs) + 0.25 * bald(log_probs)
    )
    flipped = CombineHeuristics([Margin()]).score([log_probs])
    torch.testing.assert_close(flipped, -Margin().score(log_probs))
    with pytest.raises(ValueError, match="weights"):
        CombineHeuristics([Entropy()], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="pointwise"):
        CombineHeuristics([BatchBALD()])
    with pytest.raises(ValueError, match="sequence of 2"):
        combined.score(log_probs)


@pytest.mark.parametrize("cls", [Entropy, BALD])
def test_streaming_scores_equal_whole_pool(cls):
    log_probs = random_log_probs(1000, 5, 3)
    heuristic = cls()
    streamed = torch.cat([heuristic.score(batch) for batch in log_probs.split(128)])
    torch.testing.assert_close(streamed, heuristic.score(log_probs))


def test_query_size_errors():
    with pytest.raises(ValueError, match="query_size"):
        Entropy().select_from_scores(torch.zeros(3), 4)
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        Entropy().select_from_scores(torch.zeros(3, 1), 1)
