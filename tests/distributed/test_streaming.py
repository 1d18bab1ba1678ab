"""A pool streamed from litdata chunks labels what the same pool in memory labels, on one and on two processes."""

from datetime import timedelta

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.data.streaming import StreamedDataset, chunk_shard
from lightning_bal.utilities.distributed import shard
from tests.helpers.models import DropoutClassifier, blobs

litdata = pytest.importorskip("litdata")

N, CHUNK = 91, 10  # ten chunks, the last one short


def write_chunks(dataset, root, chunk_size=CHUNK):
    """``dataset``'s ``(input, target)`` items as litdata chunks of ``chunk_size`` items under ``root``."""
    from litdata.streaming.writer import BinaryWriter

    writer = BinaryWriter(str(root), chunk_size=chunk_size)
    for index in range(len(dataset)):
        inputs, target = dataset[index]
        writer[index] = (inputs, int(target))
    writer.done()
    writer.merge()
    return str(root)


@pytest.fixture(scope="module")
def chunks(tmp_path_factory):
    return write_chunks(blobs(N), tmp_path_factory.mktemp("chunks"))


class RecordingStream(litdata.StreamingDataset):
    """Remembers the index of every item read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads = []

    def __getitem__(self, index):
        self.reads.append(int(index))
        return super().__getitem__(index)


class AssertChunkShards(Callback):
    """After each step, the ranks scored contiguous blocks of the pool: rank 0's chunks all precede rank 1's."""

    def on_train_epoch_start(self, trainer, pl_module):
        al = next(c for c in trainer.callbacks if isinstance(c, ActiveLearningCallback))
        if al.last_shard is None or not al.last_shard.numel():
            return
        ends = trainer.strategy.all_gather(torch.stack([al.last_shard.min(), al.last_shard.max()])).reshape(-1, 2)
        assert ends[0, 1] < ends[1, 0], f"the ranks' shards interleave: {ends.tolist()}"


class WriteLabels(Callback):
    def __init__(self, path):
        self.path = path

    def on_fit_end(self, trainer, pl_module):
        acquired = trainer.strategy.all_gather(trainer.datamodule.acquired_at).reshape(-1, N)
        assert all(torch.equal(row, acquired[0]) for row in acquired), "ranks disagree on the labelled set"
        if trainer.is_global_zero:
            torch.save(acquired[0].clone(), self.path)


def _fit(tmp_path, train_dataset, devices, name):
    pl.seed_everything(0)
    dm = ActiveDataModule(
        train_dataset,
        val_dataset=blobs(30, seed=1),
        initial_labels=6,
        targets=blobs(N).targets,
        batch_size=8,
        pool_batch_size=16,
        seed=0,
    )
    callbacks = [ActiveLearningCallback("bald", query_size=4, iterations=6, seed=7), WriteLabels(tmp_path / name)]
    if devices > 1 and not isinstance(train_dataset, torch.utils.data.TensorDataset):
        callbacks.append(AssertChunkShards())
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=DDPStrategy(start_method="spawn", timeout=timedelta(seconds=120)) if devices > 1 else "auto",
        max_epochs=2,  # a step after each epoch: two steps
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(DropoutClassifier(), datamodule=dm)
    return torch.load(tmp_path / name, weights_only=True)


@pytest.mark.slow
@pytest.mark.flaky(reruns=2, only_rerun=["terminated with signal SIGABRT"])
@pytest.mark.parametrize("devices", [1, 2])
def test_a_streamed_pool_labels_what_the_pool_in_memory_labels(tmp_path, chunks, devices):
    in_memory = _fit(tmp_path, blobs(N), devices, "memory.pt")
    streamed = _fit(tmp_path, litdata.StreamingDataset(chunks), devices, "streamed.pt")
    assert torch.bincount(streamed[streamed >= 0]).tolist() == [6, 4, 4]
    assert torch.equal(streamed, in_memory)


def test_items_keep_their_global_index_and_chunks_their_ranges(chunks):
    data, streamed = blobs(N), StreamedDataset(chunks)
    assert len(streamed) == N
    assert streamed.chunk_starts.tolist() == [*range(0, N, CHUNK), N]
    for index in (0, 9, 10, 57, N - 1):
        inputs, target = streamed[index]
        assert torch.equal(inputs, data.tensors[0][index])
        assert target == int(data.targets[index])
    assert streamed.chunk_of(torch.tensor([0, 9, 10, 90])).tolist() == [0, 0, 1, 9]


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_chunk_shards_are_contiguous_disjoint_and_sized_as_strided_shards(world_size):
    pool = torch.tensor([1, 2, 5, 11, 12, 13, 20, 33, 40, 41, 57, 90])
    blocks = [chunk_shard(pool, rank, world_size) for rank in range(world_size)]
    assert torch.equal(torch.cat(blocks), pool)
    assert [b.numel() for b in blocks] == [shard(pool, rank, world_size).numel() for rank in range(world_size)]


def test_the_pool_pass_reads_each_rank_s_chunks_in_order(chunks):
    stream = RecordingStream(chunks)
    dm = ActiveDataModule(stream, initial_labels=6, pool_batch_size=16, seed=0)
    candidates = dm.scoring_indices()
    for rank in range(2):
        stream.reads.clear()
        local = dm.pool_shard(candidates, rank, 2)
        read = torch.cat([indices for _, indices in dm.pool_dataloader(local)])
        assert torch.equal(read, local)
        chunks_read = dm.pool_dataset.chunk_of(torch.tensor(stream.reads))
        assert stream.reads == sorted(stream.reads), "the pool was not read in index (chunk) order"
        # Rank 0 reads the first half of the chunks, rank 1 the second: at most one chunk is shared at the seam.
        assert chunks_read.unique().numel() <= 6
    in_memory = ActiveDataModule(blobs(N), initial_labels=6, seed=0)
    assert torch.equal(in_memory.pool_shard(candidates, 1, 2), shard(candidates, 1, 2))
