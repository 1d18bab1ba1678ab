import csv
import json

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, TensorDataset

from lightning_bal import ActiveDataModule
from tests.helpers.models import DropoutClassifier, blobs


def make_dm(n: int = 60, **kwargs) -> ActiveDataModule:
    kwargs.setdefault("seed", 0)
    return ActiveDataModule(blobs(n), **kwargs)


def snapshot(dm: ActiveDataModule) -> dict:
    state = dm.state_dict()
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def assert_state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True, msg=key)
        else:
            assert a[key] == b[key], key


def test_label_moves_exactly_those_indices_and_records_step():
    dm = make_dm(20)
    dm.label([3, 7])
    assert dm.labelled_indices.tolist() == [3, 7]
    assert dm.step == 0
    assert dm.acquire(torch.tensor([5])) == 1
    assert dm.labelled_indices.tolist() == [3, 5, 7]
    assert dm.acquired_at[[3, 5, 7]].tolist() == [0, 1, 0]
    assert dm.num_labelled + dm.num_pool == 20
    assert set(dm.pool_indices.tolist()).isdisjoint(dm.labelled_indices.tolist())


@pytest.mark.parametrize("indices", [4, [4], np.array([4]), torch.tensor([4])])
def test_label_accepts_common_index_types(indices):
    dm = make_dm(10)
    dm.label(indices)
    assert dm.labelled_indices.tolist() == [4]


@pytest.mark.parametrize("per_class", [1, 3, 5])
def test_label_balanced_gives_exactly_per_class(per_class):
    dm = make_dm(60)
    chosen = dm.label_balanced(per_class)
    counts = torch.bincount(dm.train_dataset.targets[chosen], minlength=3)
    assert counts.tolist() == [per_class] * 3
    assert dm.num_labelled == 3 * per_class


def test_initial_labels_balanced_and_random():
    balanced = make_dm(60, initial_labels=6, balanced_initial=True)
    assert torch.bincount(balanced.labelled_targets(), minlength=3).tolist() == [2, 2, 2]
    random = make_dm(60, initial_labels=7)
    assert random.num_labelled == 7
    assert (random.acquired_at[random.labelled_indices] == 0).all()


def test_label_randomly_is_seeded():
    a, b = make_dm(50, seed=3), make_dm(50, seed=3)
    assert torch.equal(a.label_randomly(5), b.label_randomly(5))
    assert torch.equal(
        a.label_randomly(5, torch.Generator().manual_seed(1)), b.label_randomly(5, torch.Generator().manual_seed(1))
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda dm: dm.label([100]), ValueError, r"in \[0, 20\).*\[100\]"),
        (lambda dm: dm.label([-1]), ValueError, r"in \[0, 20\)"),
        (lambda dm: dm.label([1, 2]), ValueError, r"\[1\] are already labelled"),
        (lambda dm: dm.label([4, 4, 5]), ValueError, r"duplicates \[4\]"),
        (lambda dm: dm.label([4, 5], labels=[0]), ValueError, r"`labels` to have one label per index \(2\), but got 1"),
        (lambda dm: dm.label([4], labels="a"), TypeError, r"`labels` to be a sequence"),
        (lambda dm: dm.label([4], labels=["cat"]), TypeError, r"`labels` to hold numbers"),
        (lambda dm: dm.label([1.5]), TypeError, r"integer dataset indices"),
        (lambda dm: dm.label(True), TypeError, r"integer dataset indices"),
        (lambda dm: dm.label_randomly(20), ValueError, r"at most the pool size 19, but got 20"),
        (lambda dm: dm.label_randomly(0), ValueError, r"`n` to be a positive integer, but got 0"),
        (lambda dm: dm.label_balanced(10), ValueError, r"`per_class` to be at most"),
        (lambda dm: dm.query([1]), ValueError, r"already labelled"),
        (lambda dm: dm.load_state_dict(make_dm(21).state_dict()), ValueError, r"dataset of 20 samples.*size 21"),
    ],
)
def test_bad_input_raises_and_changes_nothing(call, error, match):
    dm = make_dm(20)
    dm.label([1])
    before = snapshot(dm)
    with pytest.raises(error, match=match):
        call(dm)
    assert_state_equal(before, snapshot(dm))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "`batch_size` to be a positive integer"),
        ({"max_pool_size": -3}, "`max_pool_size` to be a positive integer"),
        ({"initial_labels": 7, "balanced_initial": True}, "divisible by the 3 classes"),
        ({"targets": [0, 1]}, r"one label per sample \(60\)"),
        ({"pool_overrides": {"no_such_attribute": 1}}, "no attribute 'no_such_attribute'"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make_dm(60, **kwargs)


def test_balanced_without_targets_names_the_argument():
    data = TensorDataset(torch.randn(10, 2), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="`targets`"):
        ActiveDataModule(data, seed=0).label_balanced(1)


def test_train_loader_uses_annotator_labels_and_pool_loader_yields_indices():
    dm = make_dm(12, pool_batch_size=5)
    dm.label([0, 1], labels=[2, 2])
    dm.label([2])
    seen = {}
    for x, y in dm.train_dataloader():
        for row, target in zip(x, y, strict=True):
            seen[int(torch.nonzero((dm.train_dataset.tensors[0] == row).all(1))[0])] = int(target)
    assert seen == {0: 2, 1: 2, 2: int(dm.train_dataset.targets[2])}
    indices = torch.cat([idx for _, idx in dm.pool_dataloader()])
    assert indices.tolist() == list(range(3, 12))
    inputs = torch.cat([x for x, _ in dm.pool_dataloader()])
    assert torch.equal(inputs, dm.train_dataset.tensors[0][3:])


class _Augmented(Dataset):
    def __init__(self, n: int = 10):
        self.data = torch.randn(n, 2)
        self.noise = 1.0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i] + self.noise * torch.randn(2), 0


def test_pool_warns_once_when_augmented_and_overrides_remove_it():
    dm = ActiveDataModule(_Augmented(), seed=0)
    with pytest.warns(UserWarning, match="different inputs"):
        dm.pool_dataloader()
    clean = ActiveDataModule(_Augmented(), pool_overrides={"noise": 0.0}, seed=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean.pool_dataloader()
    assert clean.train_dataset.noise == 1.0, "the training view keeps its augmentation"


def test_max_pool_size_draws_a_recorded_subset_per_step():
    dm = make_dm(100, max_pool_size=10, seed=1)
    first = dm.scoring_indices()
    assert first.numel() == 10
    assert torch.equal(first, dm.scoring_indices()), "stable within a step"
    assert torch.equal(dm.state_dict()["pool_subset"], first)
    dm.label(first[:2])
    assert dm.scoring_indices().tolist() == first[2:].tolist()
    dm.acquire(first[2:3])
    assert not torch.equal(dm.scoring_indices(), first[3:])
    assert torch.isin(dm.scoring_indices(), dm.pool_indices).all()


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_export_import_round_trip(tmp_path, suffix):
    dm = make_dm(30)
    dm.acquire([0])
    dm.query([5, 9, 11])
    path = dm.export_queries(tmp_path / f"queries{suffix}")
    # The annotator answers two of three queries.
    if suffix == ".json":
        rows = json.loads(path.read_text())
        assert [(r["index"], r["step"]) for r in rows] == [(5, 1), (9, 1), (11, 1)]
        rows[0]["label"], rows[2]["label"] = 2, 0
        path.write_text(json.dumps(rows))
    else:
        rows = list(csv.DictReader(path.open()))
        assert [(r["index"], r["step"]) for r in rows] == [("5", "1"), ("9", "1"), ("11", "1")]
        rows[0]["label"], rows[2]["label"] = "2", "0"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["id", "index", "step", "score", "label"])
            writer.writeheader()
            writer.writerows(rows)
    assert dm.import_labels(path).tolist() == [5, 11]
    assert dm.annotations == {5: 2, 11: 0}
    assert dm.acquired_at[[5, 9, 11]].tolist() == [1, -1, 1]
    assert dm.pending_query.tolist() == [9], "the unanswered query stays pending and in the pool"


def test_import_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="`.json` or `.csv`"):
        make_dm().export_queries(tmp_path / "q.txt")


def test_state_dict_round_trip_restores_everything():
    dm = make_dm(40, max_pool_size=5)
    dm.label_randomly(4)
    dm.acquire([int(dm.pool_indices[0])], labels=[1])
    dm.scoring_indices()
    dm.query(dm.pool_indices[:2])
    other = make_dm(40, seed=99, max_pool_size=5)
    other.load_state_dict(dm.state_dict())
    assert_state_equal(snapshot(dm), snapshot(other))
    assert other.annotations == dm.annotations
    assert torch.equal(dm.label_randomly(3), other.label_randomly(3)), "generator state restored"


def test_checkpoint_round_trip_through_trainer(tmp_path):
    pl.seed_everything(0)
    dm = make_dm(60, initial_labels=6, balanced_initial=True, val_dataset=blobs(30, seed=1))
    dm.acquire(dm.pool_indices[:3], labels=[0, 1, 2])
    trainer = pl.Trainer(
        max_epochs=1, default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(DropoutClassifier(), datamodule=dm)
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)

    checkpoint = torch.load(path, weights_only=True)
    assert torch.equal(checkpoint["ActiveDataModule"]["acquired_at"], dm.acquired_at)

    resumed = make_dm(60, seed=123, val_dataset=blobs(30, seed=1))
    trainer = pl.Trainer(
        max_epochs=2, default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(DropoutClassifier(), datamodule=resumed, ckpt_path=path)
    assert torch.equal(resumed.acquired_at, dm.acquired_at)
    assert resumed.annotations == dm.annotations
    assert resumed.step == dm.step
    assert torch.equal(resumed.generator.get_state(), dm.generator.get_state())


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    calls=st.lists(st.tuples(st.sampled_from(["label", "random", "step"]), st.integers(0, 10**6)), max_size=12),
)
def test_property_labelled_and_pool_stay_disjoint_and_complete(n, calls):
    dm = ActiveDataModule(TensorDataset(torch.zeros(n, 1)), seed=0)
    for kind, value in calls:
        if dm.num_pool == 0:
            break
        if kind == "step":
            dm.acquire(dm.pool_indices[value % dm.num_pool])
        elif kind == "random":
            dm.label_randomly(1 + value % dm.num_pool)
        else:
            pool = dm.pool_indices
            take = pool[torch.randperm(pool.numel(), generator=torch.Generator().manual_seed(value))[: 1 + value % 3]]
            dm.label(take)
        labelled, pool = set(dm.labelled_indices.tolist()), set(dm.pool_indices.tolist())
        assert labelled.isdisjoint(pool)
        assert labelled | pool == set(range(n))
        assert dm.num_labelled + dm.num_pool == n
        assert int(dm.acquired_at.max()) <= dm.step


@pytest.mark.parametrize(
    ("samples_per_epoch", "expected"), [(None, [1, 1, 1, 1, 1]), (3, [1, 1, 1, 1, 1]), (12, [2, 2, 2, 3, 3])]
)
def test_train_samples_per_epoch_repeats_a_small_labelled_set(samples_per_epoch, expected):
    data = TensorDataset(torch.arange(40), torch.zeros(40, dtype=torch.long))
    dm = ActiveDataModule(data, train_samples_per_epoch=samples_per_epoch, seed=0)
    dm.label([1, 2, 3, 4, 5])
    seen = torch.cat([x for x, _ in dm.train_dataloader()])
    assert set(seen.tolist()) == {1, 2, 3, 4, 5}
    assert sorted(torch.bincount(seen)[1:].tolist()) == expected, "whole permutations, then a partial one"


def test_random_draws_record_probabilities_and_need_no_correction():
    dm = make_dm(30)
    dm.label_randomly(5)
    order = dm.labelled_indices[torch.argsort(dm.acquisition_order[dm.labelled_indices])]
    expected = 1.0 / (30 - torch.arange(5, dtype=torch.float64))
    torch.testing.assert_close(dm.acquisition_probability[order], expected)
    for estimator in ("lure", "pure"):
        weights = dm.risk_weights(estimator)
        assert weights[dm.pool_indices].isnan().all()
    torch.testing.assert_close(dm.risk_weights("lure")[dm.labelled_indices], torch.ones(5, dtype=torch.float64))


def test_stochastic_acquisition_weights_follow_lure():
    from lightning_bal.functional import lure_weights

    dm = make_dm(20)
    dm.label_randomly(2)
    dm.acquire([dm.pool_indices[0].item(), dm.pool_indices[1].item()], probabilities=[0.5, 0.25])
    order = dm.labelled_indices[torch.argsort(dm.acquisition_order[dm.labelled_indices])]
    probabilities = torch.cat([1.0 / torch.tensor([20.0, 19.0], dtype=torch.float64), torch.tensor([0.5, 0.25])])
    torch.testing.assert_close(dm.risk_weights()[order], lure_weights(probabilities.double(), 20))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda dm: dm.label(dm.pool_indices[:1], probabilities=[0.0]), r"`probabilities` to lie in \(0, 1\]"),
        (lambda dm: dm.acquire(dm.pool_indices[:2], probabilities=[0.5]), r"one value per index \(2\), but got 1"),
        (lambda dm: dm.risk_weights("mean"), "'lure' or 'pure'"),
    ],
)
def test_bad_probabilities_change_nothing(call, match):
    dm = make_dm(20)
    dm.label_randomly(2)
    before = snapshot(dm)
    with pytest.raises(ValueError, match=match):
        call(dm)
    assert_state_equal(before, snapshot(dm))


def test_deterministic_labels_cannot_be_reweighted():
    dm = make_dm(20)
    dm.label([1, 2])
    with pytest.raises(ValueError, match=r"\[1, 2\] have none"):
        dm.risk_weights()


def test_train_loader_yields_weights_when_asked():
    dm = make_dm(20, return_weights="lure")
    dm.label_randomly(4)
    dm.acquire(dm.pool_indices[:2], probabilities=[0.3, 0.2])
    batches = list(dm.train_dataloader())
    x, y, w = (torch.cat(parts) for parts in zip(*batches, strict=True))
    assert x.shape == (6, 4)
    assert sorted(w.tolist()) == pytest.approx(sorted(dm.risk_weights()[dm.labelled_indices].float().tolist()))


def test_labelled_targets_read_from_items_when_no_targets_are_given():
    data = TensorDataset(torch.randn(10, 2), torch.arange(10) % 3)
    dm = ActiveDataModule(data, seed=0)
    dm.label([4, 1])
    dm.label([7], labels=[2])
    assert dm.labelled_targets().tolist() == [1, 1, 2]
    regression = ActiveDataModule(TensorDataset(torch.randn(5, 2), torch.randn(5)), seed=0)
    regression.label([0])
    assert regression.labelled_targets() is None


@pytest.mark.parametrize(
    ("labelled", "labels", "expected"),
    [
        ([], None, [0, 0, 0]),
        ([0, 3], None, [2, 0, 0]),  # classes 1 and 2 have no label yet: counted 0, not left out
        ([2, 5, 8], None, [0, 0, 3]),
        ([0, 1], [0, 0], [2, 0, 0]),  # the annotator's label counts, not the dataset's target
    ],
)
def test_labelled_class_counts_count_every_class_of_the_dataset(labelled, labels, expected):
    dm = ActiveDataModule(TensorDataset(torch.randn(9, 2), torch.arange(9) % 3), targets=torch.arange(9) % 3, seed=0)
    if labelled:
        dm.label(labelled, labels=labels)
    assert dm.labelled_class_counts().tolist() == expected


def test_labelled_class_counts_without_targets_run_up_to_the_largest_label():
    items = ActiveDataModule(TensorDataset(torch.randn(10, 2), torch.arange(10) % 4), seed=0)
    items.label([1, 2])
    assert items.labelled_class_counts().tolist() == [0, 1, 1]
    regression = ActiveDataModule(TensorDataset(torch.randn(5, 2), torch.randn(5)), seed=0)
    regression.label([0])
    assert regression.labelled_class_counts() is None


def _check_targets_in_child(rank, datamodule, num_classes):
    targets = datamodule.labelled_targets()
    assert targets is not None
    assert 0 <= int(targets.min()) <= int(targets.max()) < num_classes, f"rank {rank} read {targets.tolist()}"


@pytest.mark.slow
@pytest.mark.parametrize("as_numpy", [False, True])
def test_targets_survive_the_trip_to_spawned_processes(as_numpy):
    """`ddp_spawn` sends the datamodule to its processes through shared memory; targets that borrowed the memory of
    the dataset's tensor (or of a numpy array) used to arrive there as garbage."""
    dataset = blobs(91)
    targets = dataset.targets.numpy() if as_numpy else dataset.targets
    dm = ActiveDataModule(dataset, targets=targets, initial_labels=30, seed=0)
    torch.multiprocessing.spawn(_check_targets_in_child, args=(dm, 3), nprocs=2)


def test_added_items_bring_their_targets_and_train_with_the_old_ones():
    dm = make_dm(12, initial_labels=3, balanced_initial=True)
    new = TensorDataset(torch.randn(6, 4), torch.tensor([0, 1, 2, 2, 1, 0]))  # no `targets` attribute
    added = dm.add_items(new, targets=new.tensors[1])
    dm.label(added[:3])
    expected = torch.cat([torch.arange(12) % 3, new.tensors[1]])[dm.labelled_indices]
    assert torch.equal(dm.labelled_targets(), expected)
    assert dm.label_balanced(1).numel() == 3, "balanced labelling still sees the classes of every item"
    inputs, targets = zip(*dm.train_dataloader(), strict=True)
    assert torch.cat(inputs).shape == (dm.num_labelled, 4)
    assert sorted(torch.cat(targets).tolist()) == sorted(dm.labelled_targets().tolist())


def test_added_items_without_targets_keep_the_old_targets():
    dm = make_dm(12, initial_labels=3, balanced_initial=True)
    with pytest.raises(ValueError, match=r"`targets`.*knows the labels"):
        dm.add_items(TensorDataset(torch.randn(6, 4), torch.zeros(6, dtype=torch.long)))
    assert len(dm) == 12
    assert dm.label_balanced(1).numel() == 3


@pytest.mark.parametrize("drop", ["seed", "ids", "pool_subset"])
def test_a_state_without_a_key_of_the_datamodule_is_refused(drop):
    dm = make_dm(20, initial_labels=4)
    state = dm.state_dict()
    del state[drop]
    other = make_dm(20, seed=1)
    before = snapshot(other)
    with pytest.raises(KeyError, match=rf"hold \['{drop}'\]"):
        other.load_state_dict(state)
    assert_state_equal(before, snapshot(other))
