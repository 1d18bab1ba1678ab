"""Two gloo processes draw a streamed selection that picks what one process's in-memory draw picks."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_bal.heuristics import BALD, PowerBALD, Random, SoftmaxEntropy
from lightning_bal.heuristics import streaming_selection as streaming
from lightning_bal.heuristics.base import ScoredShard
from lightning_bal.utilities.collective import Collective
from lightning_bal.utilities.distributed import shard

N, SEED = 2_011, 3
CASES = {
    "power": (PowerBALD(beta=2.0), 15),
    "softmax": (SoftmaxEntropy(beta=3.0), 15),
    "random": (Random(), 15),
    "fill": (PowerBALD(), N - 100),  # the uniform fill of zero-weight items crosses ranks too
    "bald": (BALD(), 15),
}


def _scores():
    generator = torch.Generator().manual_seed(0)
    scores = (torch.rand(N, generator=generator) * 20).round() / 10
    scores[::5] = 0.0
    return scores


class _Gloo:
    def __init__(self, world_size):
        self.world_size = world_size

    def all_gather(self, tensor):
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)


def _select(name, rank, world_size, strategy):
    heuristic, query_size = CASES[name]
    heuristic.stream_above = 0
    local = shard(torch.arange(N), rank, world_size)
    scores = torch.zeros(N) if name == "random" else _scores()
    collective = Collective(strategy, rank, world_size)
    generator = torch.Generator().manual_seed(SEED)
    return tuple(heuristic.select_sharded(ScoredShard(local, scores[local]), query_size, generator, collective))


def _run(rank, world_size, port, path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        streaming.CHUNK = 64  # many chunks per rank
        torch.save({name: _select(name, rank, world_size, _Gloo(world_size)) for name in CASES}, f"{path}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    path = tmp_path_factory.mktemp("streamed") / "result"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(_run, args=(2, port, str(path)), nprocs=2, start_method="spawn")
    return [torch.load(f"{path}.{rank}", weights_only=True) for rank in range(2)]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_two_gloo_ranks_stream_the_draw_of_one_process_in_memory(two_processes, name):
    heuristic, query_size = CASES[name]
    scores = torch.zeros(N) if name == "random" else _scores()
    expected = heuristic.select_from_scores(scores, query_size, torch.Generator().manual_seed(SEED))
    for rank in range(2):
        indices, chosen_scores, probabilities = two_processes[rank][name][:3]
        assert torch.equal(indices, expected.indices), "other items selected"
        assert torch.equal(chosen_scores, expected.scores)
        if expected.probabilities is None:
            assert probabilities is None
        else:
            torch.testing.assert_close(probabilities, expected.probabilities, rtol=1e-12, atol=0)
