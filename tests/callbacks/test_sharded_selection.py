"""One process and two gloo processes select identically from the same scores and seed, as the heuristic would."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_bal.callbacks.sharded_selection import (
    gumbel_noise,
    pool_statistics,
    select_stochastic,
    select_top_k,
    selection_rule,
)
from lightning_bal.functional.stochastic import _conditional_probabilities, sampling_log_weights
from lightning_bal.heuristics import BALD, Margin, PowerBALD, SoftmaxEntropy, SoftrankBALD
from lightning_bal.utilities.distributed import shard

N, QUERY, SEED = 1_003, 12, 11
CASES = [
    ("bald", BALD()),
    ("margin", Margin()),
    ("power", PowerBALD(beta=2.0)),
    ("softmax", SoftmaxEntropy(beta=3.0)),
    ("softrank", SoftrankBALD(beta=1.0)),
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
    scores = _scores()
    local = shard(torch.arange(N), rank, world_size)
    if selection_rule(heuristic) == "top_k":
        return select_top_k(strategy, world_size, local, scores[local], query_size, heuristic)
    return select_stochastic(strategy, world_size, local, scores[local], query_size, heuristic, SEED)


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


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name, _ in CASES] + ["fill"])
def test_two_ranks_select_what_one_process_selects(two_processes, name):
    heuristic = dict(CASES).get(name, PowerBALD())
    one = _select(None, 1, 0, heuristic, query_size=N - 100 if name == "fill" else QUERY)
    for rank in range(2):
        got = two_processes[rank][name]
        assert torch.equal(got[0], one.indices), f"rank {rank} selected other items"
        assert torch.equal(got[1], one.scores)
        if one.probabilities is None:
            assert got[2] is None
        else:
            torch.testing.assert_close(got[2], one.probabilities, rtol=1e-12, atol=0)


@pytest.mark.slow
def test_pool_statistics_are_reduced_over_ranks(two_processes):
    scores = _scores().double()
    for rank in range(2):
        figures, sample = two_processes[rank]["stats"]
        torch.testing.assert_close(figures, torch.stack([scores.mean(), scores.max(), scores.min()]))
        assert sample.numel() <= 102


@pytest.mark.parametrize(("name", "heuristic"), CASES[:2])
def test_top_k_equals_the_heuristics_own_selection(name, heuristic):
    expected = heuristic.select_from_scores(_scores(), QUERY)
    got = _select(None, 1, 0, heuristic)
    assert torch.equal(got.indices, expected.indices)
    assert torch.equal(got.scores, expected.scores)


@pytest.mark.parametrize(("name", "heuristic"), CASES[2:])
def test_recorded_probabilities_are_the_one_process_formula(name, heuristic):
    scores = _scores()
    got = _select(None, 1, 0, heuristic)
    log_weights = sampling_log_weights(
        scores, heuristic.mode, heuristic.beta, heuristic.base_heuristic.higher_is_better
    )
    torch.testing.assert_close(
        got.probabilities, _conditional_probabilities(log_weights, got.indices), rtol=1e-12, atol=0
    )
    assert torch.equal(got.scores, scores[got.indices])
    assert got.indices.unique().numel() == QUERY


def test_uniform_fill_records_the_uniform_probabilities():
    scores = _scores()
    got = _select(None, 1, 0, PowerBALD(), query_size=N - 100)
    nonzero = int((scores > 0).sum())
    assert bool((scores[got.indices[:nonzero]] > 0).all())
    assert bool((scores[got.indices[nonzero:]] == 0).all())
    zeros = N - nonzero
    expected = 1.0 / torch.arange(zeros, zeros - (N - 100 - nonzero), -1, dtype=torch.float64)
    torch.testing.assert_close(got.probabilities[nonzero:], expected)


def test_power_sampling_follows_the_weights():
    """Over 2,000 seeds the first draw from weights 1:2:3:4 matches the expected frequencies (seeded, so fixed)."""
    heuristic = PowerBALD()
    firsts = torch.tensor(
        [
            int(select_stochastic(None, 1, torch.arange(4), torch.tensor([1.0, 2, 3, 4]), 1, heuristic, s).indices)
            for s in range(2000)
        ]
    )
    frequencies = torch.bincount(firsts, minlength=4) / 2000
    torch.testing.assert_close(frequencies, torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.03, rtol=0)


def test_gumbel_noise_depends_on_the_index_only():
    ids = torch.tensor([3, 2**33 + 3, 10])
    assert torch.equal(gumbel_noise(5, ids)[[0, 2]], gumbel_noise(5, torch.tensor([3, 10])))
    assert gumbel_noise(5, ids)[0] != gumbel_noise(5, ids)[1]
    assert gumbel_noise(5, ids)[0] != gumbel_noise(6, ids)[0]
