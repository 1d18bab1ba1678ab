"""Stable item ids and a growing pool: labels follow their items through re-ordering, growth and checkpoints."""

import json

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from lightning_bal import ActiveDataModule
from lightning_bal.data.ids import check_ids, remap_state
from tests.data.test_ledger import assert_unchanged, snapshot
from tests.helpers.models import blobs

NAMES = [f"img{i:02d}.png" for i in range(20)]


def make_dm(ids=NAMES, data=None, **kwargs) -> ActiveDataModule:
    return ActiveDataModule(blobs(20) if data is None else data, ids=ids, seed=0, **kwargs)


def labelled_state() -> dict:
    dm = make_dm()
    dm.label([1, 2], labels=[0, 1])
    dm.acquire([5], probabilities=[0.5])
    dm.query([7, 9], new_step=True)
    return dm.state_dict()


@pytest.mark.parametrize(
    ("ids", "error", "match"),
    [
        (["a", "a"], ValueError, "distinct"),
        ([1, "1"], ValueError, "distinct"),  # the same id once written to a CSV file
        (["a"], ValueError, "one id per item"),
        ([True, False], TypeError, "ints or strings"),
        ([1.5, 2.5], TypeError, "ints or strings"),
        ("ab", TypeError, "sequence"),
    ],
)
def test_bad_ids_are_refused(ids, error, match):
    with pytest.raises(error, match=match):
        check_ids("ids", ids, 2)
    with pytest.raises(error, match=match):
        ActiveDataModule(TensorDataset(torch.zeros(2, 1)), ids=ids)


def test_ids_are_read_from_the_dataset():
    data = blobs(20)
    data.ids = NAMES
    dm = ActiveDataModule(data, seed=0)
    assert dm.ids == NAMES
    assert dm.indices_of(["img03.png", "img00.png"]).tolist() == [3, 0]
    with pytest.raises(ValueError, match=r"unknown ids \['nope.png'\]"):
        dm.indices_of(["img03.png", "nope.png"])


def test_a_reordered_dataset_keeps_every_label_on_its_item():
    state = labelled_state()
    order = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    data = blobs(20)
    shuffled = ActiveDataModule(Subset(data, order.tolist()), ids=[NAMES[i] for i in order], seed=0, num_classes=3)
    shuffled.load_state_dict(state)
    position = {NAMES[int(old)]: new for new, old in enumerate(order)}
    where = {name: position[name] for name in NAMES}
    assert {shuffled.ids[i] for i in shuffled.labelled_indices.tolist()} == {"img01.png", "img02.png", "img05.png"}
    assert shuffled.annotations == {where["img01.png"]: 0, where["img02.png"]: 1}
    assert shuffled.acquired_at[where["img05.png"]] == 1
    assert shuffled.acquisition_probability[where["img05.png"]] == 0.5
    assert [shuffled.ids[i] for i in shuffled.pending_query.tolist()] == ["img07.png", "img09.png"]
    assert shuffled.step == 2


def test_answers_map_by_id_after_a_reorder(tmp_path):
    dm = make_dm()
    dm.query([7, 9], new_step=True)
    path = dm.export_queries(tmp_path / "query.json")
    rows = json.loads(path.read_text())
    assert [(r["id"], r["index"], r["step"]) for r in rows] == [("img07.png", 7, 1), ("img09.png", 9, 1)]
    rows[1]["label"] = 2
    path.write_text(json.dumps(rows))
    # The dataset is re-ordered before the answers come back: item img09.png now sits at position 0.
    order = [9, *[i for i in range(20) if i != 9]]
    moved = ActiveDataModule(Subset(blobs(20), order), ids=[NAMES[i] for i in order], seed=0, num_classes=3)
    moved.load_state_dict(dm.state_dict())
    assert moved.import_labels(path).tolist() == [0]
    assert moved.annotations == {0: 2}
    assert moved.train_dataloader().dataset[0][1] == 2


def test_losing_a_labelled_item_is_an_error_but_pool_items_may_go():
    state = labelled_state()
    kept = [name for name in NAMES if name != "img11.png"]  # a pool item removed
    dm = make_dm(kept, data=Subset(blobs(20), [i for i in range(20) if i != 11]), num_classes=3)
    dm.load_state_dict(state)
    assert dm.num_labelled == 3
    assert len(dm) == 19
    gone = [name for name in NAMES if name != "img05.png"]  # a labelled item removed
    dm = make_dm(gone, data=Subset(blobs(20), [i for i in range(20) if i != 5]), num_classes=3)
    before = snapshot(dm)
    with pytest.raises(ValueError, match=r"ids \['img05.png'\] are missing"):
        dm.load_state_dict(state)
    assert_unchanged(before, dm)


def test_states_with_default_ids_load_by_index_and_states_without_ids_are_refused():
    dm = ActiveDataModule(blobs(20), seed=0)
    dm.label([3, 4])
    state = dm.state_dict()
    assert state["ids"] is None
    other = ActiveDataModule(blobs(20), seed=1)
    other.load_state_dict(state)
    assert other.labelled_indices.tolist() == [3, 4]
    # and into a grown dataset with default ids: the new items are in the pool
    grown = ActiveDataModule(blobs(25), seed=1)
    grown.load_state_dict(state)
    assert grown.labelled_indices.tolist() == [3, 4]
    assert grown.num_pool == 23
    # 0.1.0 is the first release: no state it wrote lacks `ids`, so one that does is not a datamodule's state.
    del state["ids"]
    before = snapshot(grown)
    with pytest.raises(KeyError, match=r"hold \['ids'\]"):
        grown.load_state_dict(state)
    assert_unchanged(before, grown)


def test_add_items_grows_the_pool_and_keeps_everything_else():
    dm = make_dm()
    dm.label([1, 2], labels=[0, 1])
    dm.acquire([5], probabilities=[0.5])
    dm.query([7], new_step=True)
    before = dm.state_dict()
    new = blobs(6, seed=4)
    added = dm.add_items(new, ids=[f"new{i}.png" for i in range(6)])
    assert added.tolist() == list(range(20, 26))
    assert len(dm) == 26
    assert dm.num_pool == 23
    assert dm.step == 2
    after = dm.state_dict()
    for key in ("acquired_at", "acquisition_order"):
        assert torch.equal(after[key][:20], before[key])
        assert (after[key][20:] == -1).all()
    assert dm.annotations == {1: 0, 2: 1}
    assert dm.pending_query.tolist() == [7]
    assert torch.isin(added, dm.scoring_indices()).all()
    assert torch.equal(dm.pool_dataloader(added).dataset[0][0], new[0][0])
    assert dm.indices_of(["new3.png"]).tolist() == [23]
    # A checkpoint of the smaller dataset loads into the grown one, with the new items in the pool.
    regrown = make_dm()
    regrown.add_items(blobs(6, seed=4), ids=[f"new{i}.png" for i in range(6)])
    regrown.load_state_dict(before)
    assert torch.equal(regrown.acquired_at, dm.acquired_at)


@pytest.mark.parametrize(
    ("ids", "match"),
    [(None, "Expected argument `ids`"), (["img00.png", "x"], "already in the dataset"), (["x"], "one id per item")],
)
def test_add_items_refuses_bad_ids_and_changes_nothing(ids, match):
    dm = make_dm()
    dm.label([1])
    before = snapshot(dm)
    with pytest.raises(ValueError, match=match):
        dm.add_items(blobs(2, seed=4), ids=ids)
    assert_unchanged(before, dm)
    assert len(dm.train_dataset) == 20


def test_default_ids_grow_with_the_index():
    dm = ActiveDataModule(blobs(10), initial_labels=2, seed=0)
    dm.add_items(blobs(3, seed=4))
    assert dm.ids == list(range(13))
    assert dm.state_dict()["ids"] is None
    assert dm.labelled_targets() is not None, "targets of the new dataset are appended"


def test_pending_query_is_not_scored():
    dm = make_dm()
    dm.query([3, 4], new_step=True)
    scoring = dm.scoring_indices()
    assert not torch.isin(torch.tensor([3, 4]), scoring).any()
    assert scoring.numel() == 18


def test_remap_state_checks_positions():
    state = {"acquired_at": torch.tensor([-1, -1]), "step": 0, "pending_query": torch.tensor([5])}
    with pytest.raises(ValueError, match="pending_query"):
        remap_state(state, ["a", "b"], ["b", "a"])


@pytest.mark.parametrize(
    ("content", "suffix", "match"),
    [
        ('[{"id": "img07.png", "step": 1, "label": 1}, {"id": "img0', ".json", "truncated"),
        ("id,index,step,score,label\nimg07.png,7,1,,1\nimg09.png,9", ".csv", "all columns"),
        ('[{"id": "img07.png", "step": 0, "label": 1}]', ".json", r"stale"),
        ('[{"id": "cat.png", "step": 1, "label": 1}]', ".json", r"unknown ids \['cat.png'\]"),
        ('[{"id": "img03.png", "step": 1, "label": 1}]', ".json", r"not\s+queried"),
        ('[{"id": "img07.png", "step": 1, "label": 5}]', ".json", r"classes in \[0, 3\)"),
    ],
)
def test_bad_answers_import_nothing(tmp_path, content, suffix, match):
    dm = make_dm()
    dm.query([7, 9], new_step=True)
    before = snapshot(dm)
    path = tmp_path / f"answers{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        dm.import_labels(path)
    assert_unchanged(before, dm)
