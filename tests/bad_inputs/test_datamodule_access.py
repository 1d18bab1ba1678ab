"""Bad inputs to the ActiveDataModule methods that read data: ids to indices, input and evaluation loaders."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from torch.utils.data import IterableDataset, TensorDataset

from lightning_bal import ActiveDataModule
from tests.bad_inputs.harness import accepts, refuses
from tests.bad_inputs.test_datamodule import make_dm
from tests.helpers.models import blobs


def named_dm() -> ActiveDataModule:
    return ActiveDataModule(blobs(6), ids=[f"img{i}.png" for i in range(6)], initial_labels=2, seed=0)


class Stream(IterableDataset):
    def __iter__(self):
        return iter([(torch.zeros(4), 0)])


@pytest.mark.parametrize(
    ("ids", "error", "match"),
    [
        ("img1.png", TypeError, r"`ids`.*sequence of ids.*str"),
        (b"img1.png", TypeError, r"`ids`.*sequence of ids.*bytes"),
        (None, TypeError, r"`ids`.*sequence of ids.*NoneType"),
        (3, TypeError, r"`ids`.*sequence of ids.*int"),
        ({"img1.png"}, TypeError, r"`ids`.*sequence of ids.*set"),
        (["img1.png", "img9.png"], ValueError, r"ids of items of the training dataset.*\['img9.png'\]"),
        ([""], ValueError, r"ids of items of the training dataset.*\[''\]"),
        ([1], ValueError, r"ids of items of the training dataset.*\[1\]"),
    ],
)
def test_indices_of_refuses(ids, error, match):
    dm = named_dm()
    dm.indices_of([])  # builds the id lookup, a cache that a refused call may build too
    refuses("ActiveDataModule.indices_of", lambda: dm.indices_of(ids), error, match, dm, vars(dm))


def test_indices_of_accepts_valid_neighbours():
    dm = named_dm()
    assert accepts(lambda: dm.indices_of(("img3.png", "img0.png"))).tolist() == [3, 0]
    assert accepts(lambda: dm.indices_of(np.array(["img5.png"]))).tolist() == [5]
    assert accepts(lambda: dm.indices_of([])).tolist() == []
    default = make_dm()
    assert accepts(lambda: default.indices_of(torch.tensor([4, 2]))).tolist() == [4, 2]
    assert accepts(lambda: default.indices_of(["7", 8])).tolist() == [7, 8]


@pytest.mark.parametrize(
    ("dataset", "indices", "error", "match"),
    [
        (5, None, TypeError, r"`dataset`.*map-style dataset.*int"),
        ("abc", None, TypeError, r"`dataset`.*map-style dataset.*str"),
        (Stream(), None, TypeError, r"`dataset`.*map-style dataset.*Stream"),
        (blobs(5), [0, 5], ValueError, r"`indices`.*in \[0, 5\) of `dataset`.*5"),
        (blobs(5), torch.tensor([-1]), ValueError, r"`indices`.*in \[0, 5\) of `dataset`.*-1"),
        (blobs(5), [0.5], TypeError, r"`indices`.*integer dataset indices"),
        (blobs(5), torch.tensor([1.0]), TypeError, r"`indices`.*integer dataset indices.*float32"),
        (blobs(5), "0", TypeError, r"`indices`.*integer dataset indices"),
    ],
)
def test_inputs_dataloader_refuses(dataset, indices, error, match):
    dm = make_dm()
    refuses("ActiveDataModule.inputs_dataloader", lambda: dm.inputs_dataloader(dataset, indices), error, match, dm)


@pytest.mark.parametrize(
    ("dataset", "indices", "expected"),
    [
        (blobs(5), None, [0, 1, 2, 3, 4]),
        (blobs(5), [4, 4, 0], [4, 4, 0]),
        (blobs(5), np.int64(2), [2]),
        (blobs(5), [], []),
        ([(torch.zeros(4), 0)] * 3, torch.tensor([2, 1], dtype=torch.int32), [2, 1]),
        (TensorDataset(torch.zeros(0, 4)), None, []),
    ],
)
def test_inputs_dataloader_accepts_valid_neighbours(dataset, indices, expected):
    dm = make_dm()
    loader = accepts(lambda: dm.inputs_dataloader(dataset, indices))
    assert [int(i) for _, batch in loader for i in batch] == expected


@pytest.mark.parametrize("method", ["eval_dataset", "eval_targets"])
@pytest.mark.parametrize("split", ["train", "validation", "", None, 0])
def test_eval_split_refused(method, split):
    dm = ActiveDataModule(blobs(30), blobs(6), blobs(6), seed=0)
    call = lambda: getattr(dm, method)(split)  # noqa: E731
    refuses(f"ActiveDataModule.{method}", call, ValueError, rf"`split`.*'val' or 'test'.*{split!r}", dm, vars(dm))


@pytest.mark.parametrize("method", ["eval_dataset", "eval_targets"])
def test_eval_split_without_its_dataset_refused(method):
    dm = ActiveDataModule(blobs(30), blobs(6), seed=0)
    call = lambda: getattr(dm, method)("test")  # noqa: E731
    refuses(f"ActiveDataModule.{method}", call, RuntimeError, r"`test_dataset`.*none was given", dm, vars(dm))


@pytest.mark.parametrize("split", ["val", "test"])
def test_eval_split_accepts_valid_neighbours(split):
    dm = ActiveDataModule(blobs(30), blobs(6), blobs(9), seed=0)
    assert len(accepts(lambda: dm.eval_dataset(split))) == {"val": 6, "test": 9}[split]
    assert accepts(lambda: dm.eval_targets(split)).tolist() == [i % 3 for i in range({"val": 6, "test": 9}[split])]


def test_train_dataloader_of_an_empty_labelled_set_refused():
    dm = ActiveDataModule(blobs(30), seed=0)
    refuses("ActiveDataModule.train_dataloader", dm.train_dataloader, RuntimeError, r"labelled set is empty", dm)
    dm.label([3])
    assert len(accepts(dm.train_dataloader).dataset) == 1


@pytest.mark.parametrize(
    ("scores", "error", "match"),
    [
        ([0.5], ValueError, r"`scores`.*one score per queried item \(2\).*1"),
        ([0.5, 0.1, 0.2], ValueError, r"`scores`.*one score per queried item \(2\).*3"),
        ([0.5, float("nan")], ValueError, r"`scores`.*finite.*nan"),
        ([float("inf"), 0.5], ValueError, r"`scores`.*finite.*inf"),
        (torch.tensor([0.5, -float("inf")]), ValueError, r"`scores`.*finite.*-inf"),
        ([0.5, "high"], TypeError, r"`scores`.*numbers or None.*'high'"),
        ([True, 0.5], TypeError, r"`scores`.*numbers or None.*True"),
        ([1 + 2j, 0.5], TypeError, r"`scores`.*numbers or None"),
        ("0.5", TypeError, r"`scores`.*sequence of numbers"),
        (0.5, TypeError, r"`scores`.*sequence of numbers"),
    ],
)
def test_export_queries_scores_refused(tmp_path, scores, error, match):
    dm = make_dm()  # two items queried
    path = tmp_path / "queries.json"
    call = lambda: dm.export_queries(path, scores=scores)  # noqa: E731
    refuses("ActiveDataModule.export_queries", call, error, match, dm, vars(dm))
    assert not path.exists()


@pytest.mark.parametrize("suffix", [".json", ".csv"])
@pytest.mark.parametrize("scores", [[0.5, None], np.array([1.0, -2.0]), torch.tensor([3, 4]), (np.float32(0.25), 0)])
def test_export_queries_scores_accept_valid_neighbours(tmp_path, scores, suffix):
    dm = make_dm()
    path = accepts(lambda: dm.export_queries(tmp_path / f"queries{suffix}", scores=scores))
    if suffix == ".json":
        written = [row["score"] for row in json.loads(path.read_text())]
    else:
        written = [float(row["score"]) if row["score"] else None for row in csv.DictReader(path.open())]
    assert written == [None if value is None else float(value) for value in scores]
