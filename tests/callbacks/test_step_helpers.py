"""The step's small helpers: pool order, query planning, undoing an interrupted step, the convergence state."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule
from lightning_bal.callbacks.checkpointed import undone_if_interrupted
from lightning_bal.callbacks.pool_pass import plan_query, sort_by_index
from lightning_bal.callbacks.state import validated_convergence_state


def test_sort_by_index_orders_the_pool_and_leaves_sorted_input_alone():
    indices, scores = sort_by_index(torch.tensor([3, 1]), torch.tensor([0.5, 0.25]))
    assert torch.equal(indices, torch.tensor([1, 3]))
    assert torch.equal(scores, torch.tensor([0.25, 0.5]))
    ordered, values = torch.tensor([1, 4]), torch.tensor([0.1, 0.2])
    assert sort_by_index(ordered, values)[0] is ordered


@pytest.mark.parametrize(
    ("label_budget", "query_size", "stop_reason"),
    [(None, 10, None), (12, 6, None), (6, 0, "the label budget is spent")],
)
def test_plan_query_labels_within_the_budget(label_budget, query_size, stop_reason):
    data = TensorDataset(torch.randn(30, 2), torch.arange(30) % 3)
    datamodule = ActiveDataModule(data, initial_labels=6, seed=0)
    plan = plan_query(datamodule, query_size=10, label_budget=label_budget)
    assert (plan.query_size, plan.stop_reason) == (query_size, stop_reason)


def test_an_interrupted_block_puts_every_part_back():
    layer = nn.Linear(1, 1, bias=False)
    before = layer.weight.detach().clone()

    def interrupted_write():
        with undone_if_interrupted(layer):
            layer.weight.data.fill_(5.0)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_write()
    assert torch.equal(layer.weight, before)


def test_a_convergence_state_is_read_with_its_defaults():
    assert validated_convergence_state({"best_score": 0.5, "wait": 2})["wait"] == 2
    fresh = {"best_score": None, "wait": 0, "best_weights": None, "best_val_metrics": None}
    assert validated_convergence_state({}) == fresh
