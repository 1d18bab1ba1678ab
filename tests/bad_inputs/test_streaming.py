"""Bad inputs to streamed pools: StreamedDataset, its items, chunk_shard and ActiveDataModule.pool_shard."""

from __future__ import annotations

import pytest
import torch

from lightning_bal import ActiveDataModule
from lightning_bal.data.streaming import StreamedDataset, chunk_shard
from tests.bad_inputs.harness import accepts, refuses
from tests.distributed.test_streaming import write_chunks
from tests.helpers.models import blobs

litdata = pytest.importorskip("litdata")


@pytest.fixture(scope="module")
def chunks(tmp_path_factory):
    return write_chunks(blobs(25), tmp_path_factory.mktemp("chunks"), chunk_size=10)


@pytest.mark.parametrize(
    ("source", "error", "match"),
    [
        (None, TypeError, r"`source`.*litdata.StreamingDataset.*NoneType"),
        (5, TypeError, r"`source`.*litdata.StreamingDataset.*int"),
        (blobs(5), TypeError, r"`source`.*litdata.StreamingDataset.*TensorDataset"),
        ([1, 2], TypeError, r"`source`.*litdata.StreamingDataset.*list"),
        ("", ValueError, r"`source`.*empty string"),
        ("   ", ValueError, r"`source`.*empty string"),
    ],
    ids=["none", "int", "tensor-dataset", "list", "empty", "blank"],
)
def test_streamed_dataset_refuses_what_is_not_a_stream(source, error, match):
    refuses("StreamedDataset()", lambda: StreamedDataset(source), error, match)


def test_streamed_dataset_refuses_a_folder_without_chunks(tmp_path):
    refuses("StreamedDataset()", lambda: StreamedDataset(str(tmp_path)), FileNotFoundError, r"`source`.*index.json")
    accepts(lambda: StreamedDataset(write_chunks(blobs(3), tmp_path / "chunks")))


def test_streamed_dataset_refuses_a_window_reader(chunks):
    stream = litdata.StreamingDataset(chunks)
    stream.window_direct_io = True
    refuses("StreamedDataset()", lambda: StreamedDataset(stream), ValueError, r"`source`.*window_direct_io")


@pytest.mark.parametrize(
    ("index", "error", "match"),
    [
        (25, IndexError, r"index in \[0, 25\).*25"),
        (-1, IndexError, r"index in \[0, 25\).*-1"),
        (1.0, TypeError, r"item index.*1.0"),
        (True, TypeError, r"item index.*True"),
        ("3", TypeError, r"item index.*'3'"),
    ],
)
def test_streamed_items_are_read_by_valid_index_only(chunks, index, error, match):
    streamed = StreamedDataset(chunks)
    refuses("StreamedDataset[index]", lambda: streamed[index], error, match, streamed.chunk_starts)
    accepts(lambda: streamed[24])


POOL = torch.arange(0, 20, 2)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((POOL, 0, 0), ValueError, r"`world_size`.*positive integer.*0"),
        ((POOL, 0, 2.0), TypeError, r"`world_size`.*positive integer.*2.0"),
        ((POOL, 2, 2), ValueError, r"`rank`.*\[0, 1\].*2"),
        ((POOL, -1, 2), ValueError, r"`rank`.*\[0, 1\].*-1"),
        ((POOL, True, 2), ValueError, r"`rank`.*True"),
        ((POOL.tolist(), 0, 2), TypeError, r"`indices`.*1-D integer tensor.*list"),
        ((POOL.float(), 0, 2), TypeError, r"`indices`.*1-D integer tensor.*float32"),
        ((POOL.reshape(2, 5), 0, 2), TypeError, r"`indices`.*1-D integer tensor.*2-D"),
        ((POOL.flip(0), 0, 2), ValueError, r"`indices`.*ascending"),
    ],
)
def test_chunk_shard_refuses(args, error, match):
    refuses("chunk_shard", lambda: chunk_shard(*args), error, match, args[0])
    accepts(lambda: chunk_shard(POOL, 1, 2))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((POOL, 0, 0), ValueError, r"`world_size`.*positive integer.*0"),
        ((POOL, 3, 3), ValueError, r"`rank`.*\[0, 2\].*3"),
        ((POOL, "0", 2), ValueError, r"`rank`.*'0'"),
        ((POOL.float(), 0, 2), TypeError, r"`candidates`.*integer dataset indices.*float32"),
        (([0.5, 1.5], 0, 2), TypeError, r"`candidates`.*integer dataset indices"),
        ((POOL.flip(0), 0, 2), ValueError, r"`candidates`.*ascending"),
    ],
)
def test_pool_shard_of_a_streamed_pool_refuses(chunks, args, error, match):
    dm = ActiveDataModule(litdata.StreamingDataset(chunks), initial_labels=4, seed=0)
    refuses("ActiveDataModule.pool_shard", lambda: dm.pool_shard(*args), error, match, dm)
    assert accepts(lambda: dm.pool_shard(POOL, 0, 3)).tolist() == [0, 2, 4, 6]


@pytest.mark.parametrize(
    ("indices", "error", "match"),
    [
        (torch.tensor([0, 25]), ValueError, r"`indices`.*\[0, 25\).*25"),
        ([-1], ValueError, r"`indices`.*\[0, 25\).*-1"),
        (torch.tensor([0.5]), TypeError, r"`indices`.*integer dataset indices.*float32"),
        ("3", TypeError, r"`indices`.*integer dataset indices"),
    ],
)
def test_chunk_of_refuses_indices_outside_the_stream(chunks, indices, error, match):
    streamed = StreamedDataset(chunks)
    refuses("StreamedDataset.chunk_of", lambda: streamed.chunk_of(indices), error, match, streamed.chunk_starts)
    assert accepts(lambda: streamed.chunk_of([0, 9, 10, 24])).tolist() == [0, 0, 1, 2]
