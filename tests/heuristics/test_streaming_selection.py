"""Selection a chunk at a time picks what the selection over all the scores in memory picks, on 1 and 3 ranks."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lightning_bal.functional import sample_without_replacement
from lightning_bal.heuristics import BALD, Margin, PowerBALD, PowerEntropy, Random, SoftmaxBALD, SoftmaxEntropy
from lightning_bal.heuristics import streaming_selection as streaming
from lightning_bal.heuristics.base import ScoredShard
from lightning_bal.heuristics.streaming_selection import draw_sharded, streaming_top_k, top_k
from lightning_bal.utilities.collective import Collective
from lightning_bal.utilities.distributed import shard
from tests.helpers.thread_ranks import ThreadRanks

SEED = 5


def _scores(n, seed=0, ties=True):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, generator=generator)
    if ties:
        scores = (scores * 20).round() / 10  # many ties
        scores[::7] = 0.0  # zero power weights
    return scores


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(0, 6), min_size=0, max_size=60),
    query_size=st.integers(0, 70),
    chunk=st.integers(1, 25),
    higher_is_better=st.booleans(),
)
def test_streaming_top_k_is_the_top_k_of_all_scores(values, query_size, chunk, higher_is_better):
    scores = torch.tensor(values, dtype=torch.float32) / 3  # few distinct values: ties across chunks
    query_size = min(query_size, scores.numel())
    expected = top_k(scores, query_size, higher_is_better)
    assert torch.equal(streaming_top_k(scores, query_size, higher_is_better, chunk=chunk), expected)


def _draw(world_size, scores, log_weights_fn, query_size, chunk, fill_uniformly):
    def run(rank, collective):
        local = shard(torch.arange(scores.numel()), rank, world_size)
        generator = torch.Generator().manual_seed(SEED)
        return draw_sharded(
            local, scores[local], log_weights_fn, query_size, generator, collective,
            fill_uniformly=fill_uniformly, chunk=chunk,
        )  # fmt: skip

    return ThreadRanks(world_size).run(run) if world_size > 1 else [run(0, Collective())]


def _power(scores):
    return scores.double().log() * 2.0


@pytest.mark.parametrize("world_size", [1, 3])
@pytest.mark.parametrize("chunk", [7, 64, 4096])
@pytest.mark.parametrize(
    ("name", "log_weights_fn", "query_size", "fill_uniformly"),
    [
        ("power", _power, 25, True),
        ("softmax", lambda s: s.double() * -3.0, 40, False),
        ("uniform", lambda s: torch.zeros(s.numel(), dtype=torch.float64), 30, False),
        ("fill", _power, 1_000, True),  # more picks than items of positive weight: the uniform fill
        ("none", _power, 0, True),
    ],
)
def test_a_streamed_draw_is_the_draw_over_all_scores(
    world_size, chunk, name, log_weights_fn, query_size, fill_uniformly
):
    scores = _scores(1_103)
    expected_indices, expected_probabilities = sample_without_replacement(
        log_weights_fn(scores), query_size, torch.Generator().manual_seed(SEED), fill_uniformly=fill_uniformly
    )
    for indices, chosen_scores, probabilities in _draw(
        world_size, scores, log_weights_fn, query_size, chunk, fill_uniformly
    ):
        assert torch.equal(indices, expected_indices), "other items drawn"
        assert torch.equal(chosen_scores, scores[expected_indices])
        torch.testing.assert_close(probabilities, expected_probabilities, rtol=1e-12, atol=0)


def test_too_few_positive_weights_without_fill_are_refused():
    with pytest.raises(ValueError, match=r"`query_size`=5 items a non-zero probability, but got 3"):
        _draw(1, torch.tensor([0.0, 1.0, 2.0, 0.0, 3.0]), _power, 5, 2, False)


def test_a_shard_that_is_not_strided_is_refused():
    def run(rank, collective):
        local = torch.arange(5) if rank == 0 else torch.arange(5, 6)
        return draw_sharded(local, torch.ones(local.numel()), _power, 1, torch.Generator(), collective)

    with pytest.raises(ValueError, match=r"strided shard `[01]::2` of a pool of 6 items, but it holds [15] scores"):
        ThreadRanks(2).run(run)


HEURISTICS = [PowerBALD(beta=2.0), SoftmaxEntropy(beta=3.0), SoftmaxBALD(), PowerEntropy(beta=0.0), Random()]


@pytest.mark.parametrize("world_size", [1, 3])
@pytest.mark.parametrize("heuristic", HEURISTICS, ids=lambda h: type(h).__name__)
@pytest.mark.parametrize("query_size", [12, 1_000])
def test_a_heuristic_streams_above_its_threshold_and_picks_what_it_picks_in_memory(
    monkeypatch, world_size, heuristic, query_size
):
    monkeypatch.setattr(streaming, "CHUNK", 50)  # many chunks per rank
    monkeypatch.setattr(heuristic, "stream_above", 0)
    scores = _scores(1_103)
    if isinstance(heuristic, Random):
        scores = torch.zeros_like(scores)
    expected = heuristic.select_from_scores(scores, query_size, torch.Generator().manual_seed(SEED))

    def run(rank, collective):
        local = shard(torch.arange(scores.numel()), rank, world_size)
        generator = torch.Generator().manual_seed(SEED)
        return heuristic.select_sharded(ScoredShard(local, scores[local]), query_size, generator, collective)

    results = ThreadRanks(world_size).run(run) if world_size > 1 else [run(0, Collective())]
    for selection in results:
        assert torch.equal(selection.indices, expected.indices), "other items selected"
        assert torch.equal(selection.scores, expected.scores)
        torch.testing.assert_close(selection.probabilities, expected.probabilities, rtol=1e-12, atol=0)


@pytest.mark.parametrize("heuristic", [BALD(), Margin()], ids=lambda h: type(h).__name__)
def test_a_top_k_heuristic_picks_the_same_with_chunked_candidates(monkeypatch, heuristic):
    scores = _scores(2_001, seed=3)
    expected = heuristic.select_sharded(ScoredShard(torch.arange(2_001), scores), 30, torch.Generator(), Collective())
    monkeypatch.setattr(streaming, "CHUNK", 16)
    got = heuristic.select_sharded(ScoredShard(torch.arange(2_001), scores), 30, torch.Generator(), Collective())
    assert torch.equal(got.indices, expected.indices)
    assert torch.equal(got.indices, top_k(scores, 30, heuristic.higher_is_better))


@pytest.mark.parametrize(
    ("scores", "error", "match"),
    [
        (torch.tensor([0.5, float("nan"), 0.2]), ValueError, r"hold no NaN, but got 1 of 3"),
        (torch.tensor([0.5, float("inf"), 0.2]), ValueError, r"`scores` to contain finite values"),
        (torch.tensor([0.5, -0.25, 0.2]), ValueError, r"`scores` to be >= 0 for power sampling, but got -0.25"),
    ],
)
@pytest.mark.parametrize("world_size", [1, 2])
def test_bad_scores_are_refused_by_every_rank_alike(monkeypatch, scores, error, match, world_size):
    heuristic = PowerBALD()
    monkeypatch.setattr(heuristic, "stream_above", 0)

    def run(rank, collective):
        local = shard(torch.arange(scores.numel()), rank, world_size)
        return heuristic.select_sharded(ScoredShard(local, scores[local]), 1, torch.Generator(), collective)

    with pytest.raises(error, match=match):
        ThreadRanks(world_size).run(run) if world_size > 1 else run(0, Collective())
