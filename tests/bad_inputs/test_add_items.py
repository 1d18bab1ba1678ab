"""Bad inputs to ActiveDataModule.add_items: a growing pool refuses data that would break training later.

Each refusal is checked against the module's whole attribute dict too (datasets, targets, ids), not only its state
dict: a refused call must not have swapped in the grown datasets.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_bal import ActiveDataModule
from tests.bad_inputs.harness import accepts, refuses
from tests.bad_inputs.test_datamodule import make_dm
from tests.helpers.models import blobs


def plain(inputs: torch.Tensor, targets: torch.Tensor) -> TensorDataset:
    """A dataset without a `targets` attribute."""
    return TensorDataset(inputs, targets)


def with_targets(inputs: torch.Tensor, targets: torch.Tensor) -> TensorDataset:
    dataset = TensorDataset(inputs, targets)
    dataset.targets = targets  # type: ignore[attr-defined]
    return dataset


X3, Y3 = torch.randn(3, 4), torch.tensor([0, 1, 2])

# (dataset, keyword arguments, error, message pattern); the module: 30 blobs of 4 features, 3 classes, with targets.
BAD = [
    # items that would not collate with the old ones
    (with_targets(torch.randn(3, 5), Y3), {}, ValueError, r"`dataset`.*tensor\[5\] torch.float32.*tensor\[4\]"),
    (with_targets(torch.randn(3, 2, 2), Y3), {}, ValueError, r"`dataset`.*tensor\[2, 2\].*tensor\[4\]"),
    (with_targets(X3.double(), Y3), {}, ValueError, r"`dataset`.*torch.float64.*torch.float32"),
    (with_targets(X3.half(), Y3), {}, ValueError, r"`dataset`.*torch.float16.*torch.float32"),
    (with_targets(X3, Y3.int()), {}, ValueError, r"`dataset`.*tensor\[\] torch.int32.*tensor\[\] torch.int64"),
    (with_targets(X3, Y3.float()), {"targets": Y3}, ValueError, r"`dataset`.*tensor\[\] torch.float32"),
    (TensorDataset(X3), {"targets": Y3}, ValueError, r"`dataset`.*is \(tensor\[4\] torch.float32\) where"),
    ([(x, int(y)) for x, y in zip(X3, Y3, strict=True)], {"targets": Y3}, ValueError, r"`dataset`.*, int\) where"),
    ([(x.numpy(), y) for x, y in zip(X3, Y3, strict=True)], {"targets": Y3}, ValueError, r"`dataset`.*ndarray\[4\]"),
    (
        [{"input": x, "target": y} for x, y in zip(X3, Y3, strict=True)],
        {"targets": Y3},
        ValueError,
        r"`dataset`.*is \{'input': tensor\[4\] torch.float32, 'target': tensor\[\] torch.int64\} where",
    ),
    # targets: required, one per item, integer classes below num_classes
    (plain(X3, Y3), {}, ValueError, r"`targets`.*`dataset.targets`.*knows the labels.*None"),
    (with_targets(X3, torch.tensor([0, 9, 1])), {}, ValueError, r"`targets`.*`num_classes` \(3\).*class 9"),
    (plain(X3, Y3), {"targets": [0, 1, 3]}, ValueError, r"`targets`.*`num_classes` \(3\).*class 3"),
    (plain(X3, Y3), {"targets": [0, 1]}, ValueError, r"`targets`.*one label per sample \(3\).*2"),
    (plain(X3, Y3), {"targets": torch.rand(3)}, TypeError, r"`targets`.*integer class labels.*float"),
    (plain(X3, Y3), {"targets": [0, -1, 2]}, ValueError, r"`targets`.*non-negative.*-1"),
    (plain(X3, Y3), {"targets": ["a", "b", "c"]}, TypeError, r"`targets`.*integer class labels"),
    # ids: non-empty (an answer file names items by them), distinct, new
    (blobs(3), {"ids": [30, "", 32]}, ValueError, r"`ids`.*non-empty.*''"),
    (blobs(3), {"ids": [30, "  ", 32]}, ValueError, r"`ids`.*non-empty.*'  '"),
    (blobs(3), {"ids": ["a", "b", "a"]}, ValueError, r"`ids`.*distinct ids.*'a'"),
    (blobs(3), {"ids": [30, 31, "30"]}, ValueError, r"`ids`.*distinct ids.*'30'"),
    (blobs(3), {"ids": [29, 30, 31]}, ValueError, r"`ids`.*new ids.*\[29\].*already in the dataset"),
    (blobs(3), {"ids": ["7", "x", "y"]}, ValueError, r"`ids`.*new ids.*\['7'\].*already in the dataset"),
    (blobs(3), {"ids": [30, 31, None]}, TypeError, r"`ids`.*ints or strings.*None"),
    (blobs(3), {"ids": "abc"}, TypeError, r"`ids`.*sequence of ints or strings"),
    # the pool's reading of the new items
    (blobs(3), {"pool_dataset": TensorDataset(torch.zeros(2, 4))}, ValueError, r"`pool_dataset`.*same 3 samples.*2"),
    (blobs(3), {"pool_dataset": 5}, TypeError, r"`pool_dataset`.*map-style dataset.*int"),
    (
        blobs(3),
        {"pool_dataset": TensorDataset(torch.zeros(3, 6))},
        ValueError,
        r"`dataset`.*pool input is tensor\[6\].*the pool's is tensor\[4\]",
    ),
]


@pytest.mark.parametrize(("dataset", "kwargs", "error", "match"), BAD, ids=[c[3] for c in BAD])
def test_add_items_refuses(dataset, kwargs, error, match):
    dm = make_dm()
    refuses("ActiveDataModule.add_items", lambda: dm.add_items(dataset, **kwargs), error, match, dm, vars(dm))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((5,), TypeError, r"`dataset`.*map-style dataset.*int"),
        (("abc",), TypeError, r"`dataset`.*map-style dataset.*str"),
        ((iter([1, 2]),), TypeError, r"`dataset`.*map-style dataset"),
        ((blobs(3), [1, 2]), ValueError, r"`ids`.*one id per item \(3\).*2"),
        ((blobs(3), [0, 1, 2]), ValueError, r"`ids`.*new ids.*already in the dataset"),
        ((blobs(2), ["a", "a"]), ValueError, r"`ids`.*distinct ids.*'a'"),
        ((blobs(2), [1.5, 2.5]), TypeError, r"`ids`.*ints or strings"),
    ],
)
def test_add_items_refuses_positional_arguments(args, error, match):
    dm = make_dm()
    refuses("ActiveDataModule.add_items", lambda: dm.add_items(*args), error, match, dm, vars(dm))


def named_dm() -> ActiveDataModule:
    return ActiveDataModule(blobs(6), ids=[f"img{i}.png" for i in range(6)], initial_labels=3, seed=0)


@pytest.mark.parametrize(
    ("ids", "error", "match"),
    [
        (None, ValueError, r"`ids`.*names its items by `ids`.*None"),
        (["img5.png", "new.png"], ValueError, r"`ids`.*new ids.*\['img5.png'\].*already"),
        (["", "new.png"], ValueError, r"`ids`.*non-empty"),
        (["new.png"], ValueError, r"`ids`.*one id per item \(2\).*1"),
    ],
)
def test_add_items_to_a_module_with_named_ids_refuses(ids, error, match):
    dm = named_dm()
    refuses("ActiveDataModule.add_items", lambda: dm.add_items(blobs(2), ids=ids), error, match, dm, vars(dm))


def test_targets_for_a_module_without_targets_are_refused():
    dm = ActiveDataModule(TensorDataset(torch.randn(10, 4)), initial_labels=2, seed=0)
    call = lambda: dm.add_items(TensorDataset(X3), targets=Y3)  # noqa: E731
    refuses("ActiveDataModule.add_items", call, ValueError, r"`targets`.*only when the datamodule knows", dm, vars(dm))


def test_a_custom_collate_fn_relaxes_shapes_but_not_dtypes():
    dm = ActiveDataModule(blobs(30), initial_labels=6, seed=0, collate_fn=lambda items: items)
    accepts(lambda: dm.add_items(with_targets(torch.randn(3, 7), Y3)))
    assert len(dm) == 33
    call = lambda: dm.add_items(with_targets(torch.randn(3, 7).double(), Y3))  # noqa: E731
    refuses("ActiveDataModule.add_items", call, ValueError, r"`dataset`.*tensor torch.float64.*torch.float32", dm)


@pytest.mark.parametrize(
    ("dataset", "kwargs"),
    [
        (blobs(3), {}),
        (blobs(3), {"ids": [30, 31, 32]}),
        (blobs(3), {"ids": ["a b.png", "c", 99]}),
        (plain(X3, Y3), {"targets": Y3}),
        (plain(X3, Y3), {"targets": np.array([2, 2, 0])}),
        (plain(X3, Y3), {"targets": [0, 1, 2]}),
        (with_targets(X3, torch.tensor([9, 9, 9])), {"targets": Y3}),  # the argument wins over the attribute
        (blobs(3), {"pool_dataset": TensorDataset(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))}),
        (blobs(0), {}),
    ],
)
def test_add_items_accepts_valid_neighbours(dataset, kwargs):
    dm = make_dm()
    added = accepts(lambda: dm.add_items(dataset, **kwargs))
    assert added.tolist() == list(range(30, 30 + len(dataset)))
    assert len(dm) == dm.labelled_targets().numel() + dm.num_pool == 30 + len(dataset)
    batch = next(iter(DataLoader(dm.train_dataset, batch_size=len(dm), shuffle=False)))
    assert batch[0].shape == (len(dm), 4)


def test_what_the_default_collate_batches_together_is_not_refused():
    """A numpy integer target next to a Python one, a list item next to a tuple one: they collate."""
    old = [(torch.zeros(2), i % 2) for i in range(6)]
    dm = ActiveDataModule(old, initial_labels=2, seed=0)
    accepts(lambda: dm.add_items([(torch.ones(2), np.int64(1))] * 3))
    accepts(lambda: dm.add_items([[torch.ones(2), 0]] * 2))
    inputs, targets = next(iter(DataLoader(dm.train_dataset, batch_size=len(dm))))
    assert inputs.shape == (11, 2)
    assert targets.dtype == torch.int64
