"""Stopping criteria under DDP (2 CPU processes, gloo): one rank's decision ends the run on every rank, at one step."""

import pytest
import torch
import torch.distributed as dist

from lightning_bal.annotation import LowUncertainty, StoppingCriterion
from tests.callbacks.test_ddp import RankNoisyBALD, _fit

pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"])]


class RankOneStops(StoppingCriterion):
    """Stops at ``step`` on rank 1 only, so rank 0 learns of it through the collective."""

    name = "rank_one"

    def __init__(self, step):
        super().__init__()
        self.step = step

    def update(self, context):
        if context.step >= self.step and dist.get_rank() == 1:
            self.stop, self.reason = True, "rank one"
        return {}


class RankOneStopsOnScores(RankOneStops):
    needs_pool_scores = True


@pytest.mark.parametrize("criterion", [RankOneStops, RankOneStopsOnScores])
def test_one_rank_stops_every_rank_at_the_same_step(tmp_path, criterion):
    # A criterion on each side of the pool pass: both decisions are collectives that every rank must join.
    stopping = [criterion(2), LowUncertainty(max_below=-1.0)]
    acquired = _fit(tmp_path, RankNoisyBALD(), 2, "stopped.pt", max_epochs=6, stopping=stopping)
    # 6 initial labels, then two steps of 4; the third step stops and labels nothing (AssertRanksAgree checks ranks).
    assert torch.bincount(acquired[acquired >= 0]).tolist() == [6, 4, 4]
