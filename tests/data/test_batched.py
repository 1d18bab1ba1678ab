"""Batched pool reading: one indexing op per batch for TensorDataset, numpy array and memmap pools."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.data.views import BatchedPoolView, PoolView, default_input_fn
from tests.helpers.models import DropoutClassifier, blobs
from tests.helpers.runs import make_trainer


def _batches(loader):
    return [(inputs.clone(), indices.clone()) for inputs, indices in loader]


def _item_by_item(dataset, indices, batch_size):
    return _batches(DataLoader(PoolView(dataset, indices, default_input_fn), batch_size=batch_size))


@pytest.fixture
def memmap(tmp_path):
    array = np.lib.format.open_memmap(tmp_path / "pool.npy", mode="w+", dtype=np.float32, shape=(50, 3))
    array[:] = np.arange(150, dtype=np.float32).reshape(50, 3)
    array.flush()
    return np.load(tmp_path / "pool.npy", mmap_mode="r")


@pytest.mark.parametrize("kind", ["tensor_dataset", "array", "memmap"])
def test_batched_pool_loader_yields_what_the_item_by_item_loader_yields(kind, memmap):
    data = {
        "tensor_dataset": TensorDataset(torch.randn(50, 3), torch.arange(50) % 2),
        "array": np.asarray(memmap).copy(),
        "memmap": memmap,
    }[kind]
    dm = ActiveDataModule(data, initial_labels=7, pool_batch_size=8, seed=0)
    loader = dm.pool_dataloader()
    assert isinstance(loader.dataset, BatchedPoolView)
    got, expected = _batches(loader), _item_by_item(data, dm.pool_indices, 8)
    assert len(got) == len(expected) == len(loader) == 6  # 43 pool items in batches of 8
    for (inputs, indices), (inputs_ref, indices_ref) in zip(got, expected, strict=True):
        assert torch.equal(indices, indices_ref)
        assert torch.equal(inputs, inputs_ref.to(inputs.dtype))


def test_a_custom_input_fn_reads_item_by_item():
    dm = ActiveDataModule(blobs(20), initial_labels=2, input_fn=lambda item: item[0] * 2, seed=0)
    assert isinstance(dm.pool_dataloader().dataset, PoolView)


def test_inputs_dataloader_reads_a_tensor_dataset_in_batches():
    dm = ActiveDataModule(blobs(20), initial_labels=2, eval_batch_size=16, seed=0)
    test = blobs(20, seed=3)
    loader = dm.inputs_dataloader(test)
    assert [indices.tolist() for _, indices in loader] == [list(range(16)), list(range(16, 20))]
    assert torch.equal(next(iter(loader))[0], test.tensors[0][:16])


class _MemmapClassifier(DropoutClassifier):
    """Trains on a pool of bare inputs (no labels in the memmap): a loss that reads the inputs only."""

    def training_step(self, batch, batch_idx):
        return self(torch.as_tensor(batch).float()).logsumexp(1).mean()


def test_a_memmap_pool_is_scored_by_the_callback(tmp_path, memmap):
    dm = ActiveDataModule(memmap, initial_labels=5, pool_batch_size=16, batch_size=5, seed=0)
    callback = ActiveLearningCallback("bald", query_size=3, iterations=4, seed=0)
    trainer = make_trainer(tmp_path, [callback], max_epochs=2)
    trainer.fit(_MemmapClassifier(features=3), datamodule=dm)
    assert dm.num_labelled == 5 + 2 * 3
    assert callback.history[0]["active/num_scored"] == 45.0
