"""One process and two gloo processes select what the heuristic's own ``select`` does, from the same scores and seed."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_bal.callbacks.pool_pass import pool_statistics
from lightning_bal.heuristics import BALD, Margin, PowerBALD, Random, SoftmaxEntropy, SoftrankBALD
from lightning_bal.heuristics.base import ScoredShard
from lightning_bal.utilities.collective import Collective
from lightning_bal.utilities.distributed import shard

N, QUERY, SEED = 1_003, 12, 11
CASES = [
    ("bald", BALD()),
    ("margin", Margin()),
    ("power", PowerBALD(beta=2.0)),
    ("softmax", SoftmaxEntropy(beta=3.0)),
    ("softrank", SoftrankBALD(beta=1.0)),
    ("random", Random()),
]


def _scores():
    generator = torch.Generator().manual_seed(0)
    scores = (torch.rand(N, generator=generator) * 20).round() / 10  # many ties
    scores[::7] = 0.0  # zero power weights
    return scores


class _Gloo:
    """The part of a Lightning strategy the selection uses."""

    def __init__(self, rank, world_size):
        self.global_rank, self.world_size = rank, world_size

    def all_gather(self, tensor):
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)


def _select(strategy, world_size, rank, heuristic, query_size=QUERY):
    local = shard(torch.arange(N), rank, world_size)
    collective = Collective(strategy, rank, world_size)
    generator = torch.Generator().manual_seed(SEED)
    return heuristic.select_sharded(ScoredShard(local, _scores()[local]), query_size, generator, collective)


def _run(rank, world_size, port, path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        strategy = _Gloo(rank, world_size)
        results = {}
        for name, heuristic in CASES:
            results[name] = tuple(_select(strategy, world_size, rank, heuristic))
        # More picks than non-zero power weights: the uniform fill crosses ranks too.
        results["fill"] = tuple(_select(strategy, world_size, rank, PowerBALD(), query_size=N - 100))
        local = shard(torch.arange(N), rank, world_size)
        stats = pool_statistics(strategy, world_size, _scores()[local], sample=100)
        results["stats"] = (torch.tensor([stats.mean, stats.max, stats.min], dtype=torch.float64), stats.sample)
        torch.save(results, f"{path}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    path = tmp_path_factory.mktemp("sharded") / "result"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(_run, args=(2, port, str(path)), nprocs=2, start_method="spawn")
    return [torch.load(f"{path}.{rank}", weights_only=True) for rank in range(2)]


def _own_selection(name):
    heuristic = dict(CASES).get(name, PowerBALD())
    query_size = N - 100 if name == "fill" else QUERY
    return heuristic.select_from_scores(_scores(), query_size, torch.Generator().manual_seed(SEED))


def _assert_same(got, expected):
    assert torch.equal(got[0], expected.indices), "other items selected"
    assert torch.equal(got[1], expected.scores)
    if expected.probabilities is None:
        assert got[2] is None
    else:
        assert torch.equal(got[2], expected.probabilities)


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name, _ in CASES] + ["fill"])
def test_two_ranks_select_what_the_heuristic_selects(two_processes, name):
    for rank in range(2):
        _assert_same(two_processes[rank][name], _own_selection(name))


@pytest.mark.parametrize("name", [name for name, _ in CASES] + ["fill"])
def test_one_process_selects_what_the_heuristic_selects(name):
    heuristic = dict(CASES).get(name, PowerBALD())
    _assert_same(tuple(_select(None, 1, 0, heuristic, N - 100 if name == "fill" else QUERY)), _own_selection(name))


@pytest.mark.slow
def test_pool_statistics_are_reduced_over_ranks(two_processes):
    scores = _scores().double()
    for rank in range(2):
        figures, sample = two_processes[rank]["stats"]
        torch.testing.assert_close(figures, torch.stack([scores.mean(), scores.max(), scores.min()]))
        assert sample.numel() <= 102


def test_a_top_k_rank_sends_only_its_best_query_size():
    scores = _scores()
    assert BALD().shard_candidates(scores, QUERY).numel() == QUERY
    assert PowerBALD().shard_candidates(scores, QUERY).numel() == N
