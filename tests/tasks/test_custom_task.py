"""A task with variable-size outputs, defined here and nowhere in the library: a toy set predictor.

Its model returns one tensor per item, of the item's own length (the size of its predicted set), so its outputs
cannot be stacked as ``[B, K, ...]``: the task keeps them as a list of ``[K, L_i]`` tensors, one per item, and
declares that its K samples cannot run as one forward of ``K * B`` rows. A pointwise heuristic for it, also defined
here, scores the spread of each item's K predictions; the callback runs both by name, on one process and on two.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.heuristics import HEURISTICS, Heuristic, register_heuristic
from lightning_bal.mc import mc_batches, mc_predict
from lightning_bal.tasks import Task
from tests.callbacks.test_ddp import AssertRanksAgree, WriteResult

MAX_SIZE = 4


class ToySets(Task):
    """Each item's output is a set of up to ``MAX_SIZE`` element scores; a label is the size of the true set."""

    name: ClassVar[str | None] = "toy_sets"
    batched_samples: ClassVar[bool] = False

    def check_label(self, value: Any, num_classes: int | None = None) -> int:
        size = super().check_label(value)
        if not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
            raise ValueError(f"Expected argument `labels` to hold set sizes in [0, {MAX_SIZE}], but got {value!r}.")
        return size

    def stack_samples(self, samples: list[list[Tensor]]) -> list[Tensor]:
        # K lists of B tensors [L_i] -> B tensors [K, L_i]: an item's K samples share its length.
        return [torch.stack(item) for item in zip(*samples, strict=True)]

    def cat_items(self, parts: list[list[Tensor]]) -> list[Tensor]:
        return [item for part in parts for item in part]


class SetPredictor(pl.LightningModule):
    """``[B, 4]`` features to B tensors of element scores, item i's of length 1 + (its positive features, max 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(4, 16)
        self.dropout = nn.Dropout(0.5)
        self.out = nn.Linear(16, MAX_SIZE)

    def forward(self, x: Tensor) -> list[Tensor]:
        scores = self.out(self.dropout(torch.relu(self.hidden(x))))
        sizes = 1 + (x[:, :3] > 0).sum(1)
        return [row[:size] for row, size in zip(scores, sizes.tolist(), strict=True)]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, sizes = batch
        predicted = torch.stack([scores.sigmoid().sum() for scores in self(x)])
        return ((predicted - sizes.float()) ** 2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)  # no training: one and two processes score one model


class SetSpread(Heuristic):
    """Mean over an item's elements of the variance of its K scores: a pointwise heuristic for the set task."""

    name: ClassVar[str] = "test_set_spread"
    cost: ClassVar[str] = "O(N·K·L) after the MC pass"
    consumes: ClassVar[str] = "outputs"  # type: ignore[misc]

    def transform(self, outputs: Any) -> Any:
        return outputs

    def score(self, log_probs: Any) -> Tensor:
        return torch.stack([item.float().var(0).mean() for item in log_probs])


def set_data(n: int, seed: int = 0) -> TensorDataset:
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, 1 + (x[:, :3] > 0).sum(1))


@pytest.fixture
def set_spread():
    register_heuristic(SetSpread)
    yield
    del HEURISTICS[SetSpread.name]


def test_the_engine_keeps_each_items_samples_as_the_task_says():
    """Items of different lengths come back as one ``[K, L_i]`` tensor each, in loader order, over two batches."""
    data = set_data(7)
    loader = [(data.tensors[0][:4], torch.arange(4)), (data.tensors[0][4:], torch.arange(4, 7))]
    prediction = mc_predict(SetPredictor(), loader, 5, seed=0, task=ToySets(), output_transform=None)
    sizes = (1 + (data.tensors[0][:, :3] > 0).sum(1)).tolist()
    assert [tuple(item.shape) for item in prediction.log_probs] == [(5, size) for size in sizes]
    assert len(set(sizes)) > 1
    assert all(not torch.equal(item[0], item[1]) for item in prediction.log_probs), "the K samples differ"


def test_k_forwards_draw_the_samples_of_the_batched_forward():
    """A task without ``batched_samples`` gets, sample by sample, the masks the ``K * B``-row forward applies."""

    class PerSample(Task):
        batched_samples: ClassVar[bool] = False

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden, self.dropout, self.out = nn.Linear(4, 16), nn.Dropout(0.5), nn.Linear(16, 3)

        def forward(self, x: Tensor) -> Tensor:
            return self.out(self.dropout(self.hidden(x)))

    torch.manual_seed(0)
    net, x = Net(), torch.randn(6, 4)
    loader = [(x, torch.arange(6))]
    for consistent in (True, False):
        kwargs = {"seed": 3, "consistent_masks": consistent, "output_transform": None}
        batched = next(iter(mc_batches(net, loader, 8, **kwargs)))[1]
        per_sample = next(iter(mc_batches(net, loader, 8, task=PerSample(), **kwargs)))[1]
        torch.testing.assert_close(per_sample, batched)


def test_the_datamodule_checks_labels_with_the_task():
    dm = ActiveDataModule(set_data(10), task=ToySets(), seed=0)
    assert dm.ledger.task == "toy_sets"
    with pytest.raises(ValueError, match=r"`labels`.*set sizes in \[0, 4\], but got 5"):
        dm.label([0], labels=[5])
    dm.label([0, 1], labels=[2, 0])
    assert dm.annotations == {0: 2, 1: 0}


def _fit(tmp_path, devices: int, name: str) -> Tensor:
    pl.seed_everything(0)
    dm = ActiveDataModule(set_data(29), task=ToySets(), initial_labels=4, seed=0, batch_size=4, pool_batch_size=5)
    callback = ActiveLearningCallback("test_set_spread", query_size=3, iterations=4, seed=7)
    callbacks = [callback, WriteResult(tmp_path / name)]
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=120)) if devices > 1 else "auto",
        max_epochs=3,
        callbacks=[AssertRanksAgree(), *callbacks] if devices > 1 else callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(SetPredictor(), datamodule=dm)
    return torch.load(tmp_path / name, weights_only=True)


@pytest.mark.slow
@pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"])
@pytest.mark.usefixtures("set_spread")
def test_a_set_task_labels_the_same_items_on_one_process_and_on_two(tmp_path):
    """No library file knows the task or the heuristic; every rank agrees at each step (``AssertRanksAgree``)."""
    one = _fit(tmp_path, 1, "one.pt")
    two = _fit(tmp_path, 2, "two.pt")
    assert torch.bincount(one[one >= 0]).tolist() == [4, 3, 3, 3]
    assert torch.equal(one, two)
