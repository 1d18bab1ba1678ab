"""Long-tailed and duplicated pools: class counts, seeds, copies and their noise, and an ActiveDataModule over them."""

import math

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule
from lightning_bal.experiments import check_pool, duplicated_pool, long_tailed_pool, make_pool


def _dataset(per_class=(60, 50, 70, 55, 65), size=4):
    targets = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    data = TensorDataset(torch.randn(len(targets), 1, size, size, generator=torch.Generator().manual_seed(0)), targets)
    data.targets = targets
    return data


@pytest.mark.parametrize("ratio", [1.0, 2.0, 10.0])
def test_long_tail_counts_fall_geometrically_from_the_smallest_class(ratio):
    pool = long_tailed_pool(_dataset(), ratio=ratio)
    expected = [max(1, math.floor(50 * ratio ** (-c / 4) + 1e-9)) for c in range(5)]
    assert torch.bincount(pool.targets).tolist() == expected
    assert expected[0] / expected[-1] == pytest.approx(ratio, rel=0.05)
    # Every item is one of the dataset's, once, with its own target.
    assert len(set(pool.indices.tolist())) == len(pool)
    assert all(pool[i][1] == pool.targets[i] for i in range(len(pool)))


def test_long_tail_is_seeded():
    data = _dataset()
    assert torch.equal(long_tailed_pool(data, seed=1).indices, long_tailed_pool(data, seed=1).indices)
    assert not torch.equal(long_tailed_pool(data, seed=1).indices, long_tailed_pool(data, seed=2).indices)


@pytest.mark.parametrize("copies", [1, 3])
def test_duplicates_repeat_every_item(copies):
    data = _dataset()
    pool = duplicated_pool(data, copies=copies)
    n = len(data)
    assert len(pool) == copies * n
    assert torch.equal(pool.targets, data.targets.repeat(copies))
    for i in (0, n - 1):
        for copy in range(copies):
            assert torch.equal(pool[i + copy * n][0], data[i][0])


def test_noisy_duplicates_keep_the_first_copy_and_draw_the_same_noise_each_time():
    data = _dataset()
    n = len(data)
    pool = duplicated_pool(data, copies=3, noise=0.1, seed=5)
    assert torch.equal(pool[7][0], data[7][0])
    second, third = pool[7 + n][0], pool[7 + 2 * n][0]
    assert torch.equal(second, pool[7 + n][0])
    assert not torch.equal(second, data[7][0])
    assert not torch.equal(second, third)
    assert (second - data[7][0]).std() == pytest.approx(0.1, rel=0.5)
    assert not torch.equal(duplicated_pool(data, copies=3, noise=0.1, seed=6)[7 + n][0], second)


@pytest.mark.parametrize("pool", ["long_tail", "duplicates"])
def test_an_active_datamodule_draws_balanced_initial_labels_from_them(pool):
    data = _dataset()
    train = long_tailed_pool(data, ratio=10) if pool == "long_tail" else duplicated_pool(data, copies=2)
    dm = ActiveDataModule(train, initial_labels=10, balanced_initial=True, seed=0)
    assert torch.bincount(dm.labelled_targets(), minlength=5).tolist() == [2, 2, 2, 2, 2]


def test_duplicates_of_a_seeded_subset():
    data = _dataset()
    pool = duplicated_pool(data, copies=3, unique=20, seed=1)
    assert len(pool) == 60
    assert len(set(pool.indices.tolist())) == 20
    assert torch.equal(pool.indices[:20], pool.indices[40:])
    assert torch.equal(pool.indices, duplicated_pool(data, copies=3, unique=20, seed=1).indices)


@pytest.mark.parametrize(
    "spec",
    [{"kind": "long_tail", "ratio": 10}, {"kind": "duplicated", "copies": 2, "noise": 0.1, "unique": 10, "seed": 3}],
)
def test_a_pool_entry_is_checked_and_made(spec):
    assert check_pool(spec) == spec
    data = _dataset()
    made = make_pool(data, spec)
    options = {k: v for k, v in spec.items() if k != "kind"}
    direct = long_tailed_pool(data, **options) if spec["kind"] == "long_tail" else duplicated_pool(data, **options)
    # The same items, noise included, copied into tensors.
    assert len(made) == len(direct)
    assert torch.equal(made.targets, direct.targets)
    assert all(torch.equal(made[i][0], direct[i][0]) and made[i][1] == direct[i][1] for i in range(len(made)))


def test_a_study_with_a_pool_builds_its_runs_on_it():
    from lightning_bal.experiments import Study

    study = Study.from_mapping(
        {
            "dataset": {"name": "digits", "pool": {"kind": "duplicated", "copies": 2, "unique": 50}},
            "model": {"network": "digits"},
            "protocol": {"budget": 30, "initial_labels": 10, "val_size": 10},
            "grid": {"heuristics": ["bald", "random"], "seeds": [0, 1]},
        }
    )
    assert study.dataset["pool"] == {"kind": "duplicated", "copies": 2, "unique": 50}
    datamodule = study.experiment({}).datamodule(0)
    # 10 of the 100 pool items are held out for validation.
    assert len(datamodule.train_dataset) == 90
