"""Bad inputs to selection a chunk at a time: streaming_top_k, draw_sharded and a streamed select_sharded."""

import pytest
import torch

from lightning_bal.heuristics import PowerBALD, Random
from lightning_bal.heuristics.base import ScoredShard
from lightning_bal.heuristics.streaming_selection import draw_sharded, streaming_top_k
from lightning_bal.utilities.collective import Collective
from tests.bad_inputs.harness import accepts, refuses

SCORES = torch.tensor([0.5, 0.9, 0.0, 0.1, 0.9, 0.3])
ENTRY_TOP_K = "heuristic selection a chunk at a time (streaming_top_k)"
ENTRY_DRAW = "heuristic selection a chunk at a time (draw_sharded)"


def _power(scores):
    return scores.double().log()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scores": SCORES[None]}, ValueError, r"`scores` to be a tensor of shape \[N\], but got \(1, 6\)"),
        ({"scores": [0.5, 0.2]}, ValueError, r"`scores` to be a tensor of shape \[N\], but got list"),
        ({"query_size": 7}, ValueError, r"`query_size` to be an integer in \[0, 6\], but got 7"),
        ({"query_size": -1}, ValueError, r"`query_size` to be an integer in \[0, 6\], but got -1"),
        ({"query_size": 2.0}, ValueError, r"`query_size` to be an integer in \[0, 6\], but got 2.0"),
        ({"chunk": 0}, ValueError, r"`chunk` to be a positive integer or None, but got 0"),
        ({"chunk": True}, ValueError, r"`chunk` to be a positive integer or None, but got True"),
    ],
)
def test_streaming_top_k_refuses(kwargs, error, match):
    args = {"scores": SCORES.clone(), "query_size": 2, "chunk": 2, **kwargs}
    refuses(ENTRY_TOP_K, lambda: streaming_top_k(**args), error, match, args)


@pytest.mark.parametrize(("query_size", "chunk"), [(0, 1), (6, 2), (2, None)])
def test_streaming_top_k_accepts(query_size, chunk):
    assert accepts(lambda: streaming_top_k(SCORES, query_size, chunk=chunk)).numel() == query_size


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"indices": torch.arange(5)}, ValueError, r"`indices` and `scores` of one shape, but got \(5,\) and \(6,\)"),
        ({"scores": SCORES[None]}, ValueError, r"`scores` to be a tensor of shape \[N\], but got \(1, 6\)"),
        ({"indices": 3}, ValueError, r"`indices` to be a tensor of shape \[N\], but got int"),
        ({"generator": 0}, TypeError, r"`generator` to be a torch.Generator, but got 0"),
        ({"query_size": 7}, ValueError, r"`query_size` to be an integer in \[0, 6\], but got 7"),
        ({"query_size": 6}, ValueError, r"`query_size`=6 items a non-zero probability, but got 5"),
        ({"chunk": -4}, ValueError, r"`chunk` to be a positive integer or None, but got -4"),
    ],
)
def test_draw_sharded_refuses(kwargs, error, match):
    args = {
        "indices": torch.arange(6),
        "scores": SCORES.clone(),
        "log_weights_fn": _power,
        "query_size": 2,
        "generator": torch.Generator().manual_seed(0),
        "collective": Collective(),
        "chunk": 4,
        **kwargs,
    }
    refuses(ENTRY_DRAW, lambda: draw_sharded(**args), error, match, args)


@pytest.mark.parametrize(("query_size", "fill_uniformly"), [(0, False), (5, False), (6, True)])
def test_draw_sharded_accepts(query_size, fill_uniformly):
    indices, _, probabilities = accepts(
        lambda: draw_sharded(
            torch.arange(6), SCORES, _power, query_size, torch.Generator(), Collective(), fill_uniformly=fill_uniformly
        )
    )
    assert indices.numel() == probabilities.numel() == query_size


@pytest.mark.parametrize(
    ("scores", "query_size", "error", "match"),
    [
        (torch.tensor([0.5, float("nan"), 0.2]), 1, ValueError, r"`scores` to hold no NaN, but got 1 of 3"),
        (torch.tensor([0.5, float("-inf"), 0.2]), 1, ValueError, r"`scores` to contain finite values"),
        (torch.tensor([0.5, -1.0, 0.2]), 1, ValueError, r"`scores` to be >= 0 for power sampling, but got -1.0"),
        (torch.tensor([0.5, 0.1, 0.2]), 4, ValueError, r"`query_size` to be an integer in \[0, 3\], but got 4"),
    ],
)
def test_a_streamed_select_sharded_refuses(scores, query_size, error, match):
    heuristic = PowerBALD()
    heuristic.stream_above = 0
    generator = torch.Generator().manual_seed(0)
    shard = ScoredShard(torch.arange(scores.numel()), scores)
    refuses(
        "StochasticHeuristic.select_sharded (streamed)",
        lambda: heuristic.select_sharded(shard, query_size, generator, Collective()),
        error,
        match,
        shard,
        generator,
    )


@pytest.mark.parametrize(
    ("scores", "query_size", "match"),
    [
        (torch.zeros(3), 4, r"`query_size` to be an integer in \[0, 3\], but got 4"),
        (torch.zeros(3), -1, r"`query_size` to be an integer in \[0, 3\], but got -1"),
        (torch.tensor([0.0, float("nan"), 0.0]), 1, r"`scores` to hold no NaN, but got 1 of 3"),
    ],
)
def test_a_streamed_random_draw_refuses(scores, query_size, match):
    heuristic = Random()
    heuristic.stream_above = 0
    generator = torch.Generator().manual_seed(0)
    shard = ScoredShard(torch.arange(scores.numel()), scores)
    refuses(
        "Random.select_sharded (streamed)",
        lambda: heuristic.select_sharded(shard, query_size, generator, Collective()),
        ValueError,
        match,
        shard,
        generator,
    )
