"""Bad inputs to ActiveDataModule: its constructor and every method, each refused clearly with nothing changed."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule
from tests.bad_inputs.harness import accepts, refuses
from tests.helpers.models import blobs

NAN, INF = float("nan"), float("inf")


def make_dm() -> ActiveDataModule:
    """30 samples of 3 classes, 6 labelled at random, one annotated, a pending query of two pool items."""
    dm = ActiveDataModule(blobs(30), initial_labels=6, seed=0, max_pool_size=10)
    pool = dm.pool_indices.tolist()
    dm.label([pool[0]], labels=[1])
    dm.query(pool[1:3])
    dm.scoring_indices()
    return dm


def labelled(dm: ActiveDataModule) -> int:
    return int(dm.labelled_indices[0])


def pool(dm: ActiveDataModule, i: int = 5) -> int:
    return int(dm.pool_indices[i])


# ---------------------------------------------------------------------------------------------- constructor
CONSTRUCTOR = [
    # (kwargs, error, message pattern)
    ({"batch_size": 0}, ValueError, r"`batch_size`.*positive integer"),
    ({"batch_size": -3}, ValueError, r"`batch_size`.*positive integer"),
    ({"batch_size": 1.5}, TypeError, r"`batch_size`.*positive integer"),
    ({"batch_size": True}, TypeError, r"`batch_size`.*positive integer"),
    ({"batch_size": "32"}, TypeError, r"`batch_size`.*positive integer"),
    ({"pool_batch_size": 0}, ValueError, r"`pool_batch_size`.*positive integer"),
    ({"pool_batch_size": None}, TypeError, r"`pool_batch_size`.*positive integer"),
    ({"eval_batch_size": 0}, ValueError, r"`eval_batch_size`.*positive integer"),
    ({"eval_batch_size": -1}, ValueError, r"`eval_batch_size`.*positive integer"),
    ({"eval_batch_size": 2.0}, TypeError, r"`eval_batch_size`.*positive integer"),
    ({"train_samples_per_epoch": 0}, ValueError, r"`train_samples_per_epoch`.*positive integer"),
    ({"train_samples_per_epoch": 10.0}, TypeError, r"`train_samples_per_epoch`.*positive integer"),
    ({"num_workers": -1}, ValueError, r"`num_workers`.*non-negative integer"),
    ({"num_workers": 0.5}, TypeError, r"`num_workers`.*non-negative integer"),
    ({"max_pool_size": 0}, ValueError, r"`max_pool_size`.*positive integer"),
    ({"max_pool_size": 5.5}, TypeError, r"`max_pool_size`.*positive integer"),
    ({"return_weights": "lura"}, ValueError, r"`return_weights`.*'lure' or 'pure'"),
    ({"return_weights": True}, ValueError, r"`return_weights`.*'lure' or 'pure'"),
    ({"initial_labels": -1}, ValueError, r"`initial_labels`.*non-negative integer"),
    ({"initial_labels": 2.0}, TypeError, r"`initial_labels`.*non-negative integer"),
    ({"initial_labels": 31}, ValueError, r"`initial_labels`.*at most.*30"),
    ({"initial_labels": 5, "balanced_initial": True}, ValueError, r"`initial_labels`.*divisible by the 3 classes"),
    ({"initial_labels": 6, "balanced_initial": "false"}, TypeError, r"`balanced_initial`.*bool.*'false'"),
    ({"initial_labels": 6, "balanced_initial": 1}, TypeError, r"`balanced_initial`.*bool.*1"),
    ({"balanced_initial": None}, TypeError, r"`balanced_initial`.*bool.*None"),
    ({"initial_labels": 33, "balanced_initial": True}, ValueError, r"`per_class`|`initial_labels`.*at most"),
    ({"task": "classif"}, ValueError, r"`task`.*'classification', 'regression'"),
    ({"task": 3}, ValueError, r"`task`.*'classification', 'regression'"),
    ({"num_classes": 0}, ValueError, r"`num_classes`.*positive integer"),
    ({"num_classes": 2.0}, TypeError, r"`num_classes`.*positive integer"),
    ({"num_classes": 2}, ValueError, r"`num_classes`.*2.*class 2"),
    ({"num_classes": 3, "task": "regression"}, ValueError, r"`num_classes`.*classification"),
    ({"targets": torch.arange(29) % 3}, ValueError, r"`targets`.*one label per sample \(30\).*29"),
    ({"targets": torch.linspace(0.1, 0.9, 30)}, TypeError, r"`targets`.*integer class labels.*float"),
    ({"targets": torch.full((30,), -1)}, ValueError, r"`targets`.*non-negative.*-1"),
    ({"targets": ["a"] * 30}, TypeError, r"`targets`.*integer class labels"),
    ({"seed": "abc"}, TypeError, r"`seed`.*integer or None"),
    ({"seed": 1.5}, TypeError, r"`seed`.*integer or None"),
    ({"seed": True}, TypeError, r"`seed`.*integer or None"),
    ({"input_fn": 5}, TypeError, r"`input_fn`.*callable"),
    ({"collate_fn": "stack"}, TypeError, r"`collate_fn`.*callable"),
    ({"pool_dataset": TensorDataset(torch.zeros(29, 4))}, ValueError, r"`pool_dataset`.*same 30 samples.*29"),
    ({"pool_dataset": 7}, TypeError, r"`pool_dataset`.*dataset"),
    ({"pool_overrides": {"no_such_attribute": 1}}, ValueError, r"`pool_overrides`.*no attribute 'no_such_attribute'"),
    ({"pool_overrides": [("transform", None)]}, TypeError, r"`pool_overrides`.*mapping"),
    ({"val_dataset": 5}, TypeError, r"`val_dataset`.*dataset"),
    ({"ids": list(range(29))}, ValueError, r"`ids`.*one id per item \(30\).*29"),
    ({"ids": [0] * 30}, ValueError, r"`ids`.*distinct ids"),
    ({"ids": [0.5] * 30}, TypeError, r"`ids`.*ints or strings.*0.5"),
    ({"ids": [None] * 30}, TypeError, r"`ids`.*ints or strings.*None"),
    ({"ids": "abc"}, TypeError, r"`ids`.*sequence of ints or strings"),
    ({"ids": [str(i) for i in range(29)] + ["0"]}, ValueError, r"`ids`.*distinct ids.*'0'"),
    ({"ids": [str(i) for i in range(29)] + [""]}, ValueError, r"`ids`.*non-empty.*''"),
    ({"ids": [str(i) for i in range(29)] + ["\t"]}, ValueError, r"`ids`.*non-empty.*'\\t'"),
    ({"test_dataset": "test"}, TypeError, r"`test_dataset`.*dataset"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), CONSTRUCTOR, ids=[repr(c[0])[:60] for c in CONSTRUCTOR])
def test_constructor_refuses(kwargs, error, match):
    data = blobs(30)
    refuses("ActiveDataModule()", lambda: ActiveDataModule(data, **{"seed": 0, **kwargs}), error, match, data.tensors)


@pytest.mark.parametrize("dataset", [5, None, "abc", iter([1, 2])], ids=["int", "None", "str", "iterator"])
def test_constructor_refuses_a_train_dataset_that_is_not_map_style(dataset):
    refuses("ActiveDataModule()", lambda: ActiveDataModule(dataset), TypeError, r"`train_dataset`.*map-style")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 1, "eval_batch_size": 1, "pool_batch_size": 1, "num_workers": 0},
        {"initial_labels": 30},
        {"initial_labels": 6, "balanced_initial": True},
        {"initial_labels": 6, "balanced_initial": np.bool_(True)},
        {"initial_labels": 5, "balanced_initial": False},
        {"num_classes": 3, "task": "classification"},
        {"num_classes": 5},
        {"task": "regression"},
        {"targets": np.arange(30) % 3, "seed": np.int64(4)},
        {"return_weights": "pure", "max_pool_size": 1, "train_samples_per_epoch": 1},
        {"input_fn": lambda item: item[0], "pool_overrides": {}, "val_dataset": blobs(5), "test_dataset": [1, 2]},
    ],
)
def test_constructor_accepts_valid_neighbours(kwargs):
    dm = accepts(lambda: ActiveDataModule(blobs(30), **{"seed": 0, **kwargs}))
    assert len(dm) == 30


# ---------------------------------------------------------------------------------------------- index arguments
BAD_INDICES = [
    # (make indices from a datamodule, error, message pattern)
    (lambda dm: 30, ValueError, r"`\w*indices`.*in \[0, 30\).*30"),
    (lambda dm: -1, ValueError, r"`\w*indices`.*in \[0, 30\).*-1"),
    (lambda dm: [pool(dm), 99], ValueError, r"`\w*indices`.*in \[0, 30\).*99"),
    (lambda dm: [pool(dm), pool(dm)], ValueError, r"`\w*indices`.*distinct.*duplicates"),
    (lambda dm: 1.5, TypeError, r"`\w*indices`.*integer dataset indices"),
    (lambda dm: [float(pool(dm))], TypeError, r"`\w*indices`.*integer dataset indices"),
    (lambda dm: "3", TypeError, r"`\w*indices`.*integer dataset indices"),
    (lambda dm: [str(pool(dm))], TypeError, r"`\w*indices`.*integer dataset indices"),
    (lambda dm: True, TypeError, r"`\w*indices`.*integer dataset indices"),
    (lambda dm: [True, False], TypeError, r"`\w*indices`.*integer dataset indices"),
    (lambda dm: None, TypeError, r"`\w*indices`.*integer dataset indices"),
    (lambda dm: object(), TypeError, r"`\w*indices`.*integer dataset indices"),
    (lambda dm: torch.tensor([float(pool(dm))]), TypeError, r"`\w*indices`.*dtype torch.float32"),
    (lambda dm: torch.zeros(30, dtype=torch.bool), TypeError, r"`\w*indices`.*dtype torch.bool"),
    (lambda dm: np.array([0.5]), TypeError, r"`\w*indices`.*dtype torch.float64"),
    (lambda dm: torch.tensor([1 + 1j]), TypeError, r"`\w*indices`.*dtype torch.complex"),
    (lambda dm: [[pool(dm)]], TypeError, r"`\w*indices`.*integer dataset indices"),
]
INDEX_METHODS = {
    "label": lambda dm, idx: dm.label(idx),
    "acquire": lambda dm, idx: dm.acquire(idx),
    "query": lambda dm, idx: dm.query(idx),
    "relabel": lambda dm, idx: dm.relabel(idx, labels=[0]),
    "unlabel": lambda dm, idx: dm.unlabel(idx),
    "pool_dataloader": lambda dm, idx: dm.pool_dataloader(idx),
}


@pytest.mark.parametrize("method", sorted(INDEX_METHODS))
@pytest.mark.parametrize(("make", "error", "match"), BAD_INDICES)
def test_index_arguments_refused(method, make, error, match):
    dm = make_dm()
    indices = make(dm)
    if method == "pool_dataloader" and indices is None:
        pytest.skip("`indices=None` is the documented default: the scoring indices")
    if method in ("relabel", "unlabel") and match.endswith("duplicates"):
        indices = [labelled(dm), labelled(dm)]
    refuses(f"ActiveDataModule.{method}", lambda: INDEX_METHODS[method](dm, indices), error, match, dm)


@pytest.mark.parametrize("method", ["label", "acquire", "query"])
def test_labelled_index_is_not_a_pool_index(method):
    dm = make_dm()
    index = labelled(dm)
    refuses(
        f"ActiveDataModule.{method}",
        lambda: INDEX_METHODS[method](dm, [pool(dm), index]),
        ValueError,
        rf"`\w*indices`.*pool indices.*\[{index}\].*already labelled",
        dm,
    )


@pytest.mark.parametrize("method", ["relabel", "unlabel"])
def test_pool_index_is_not_a_labelled_index(method):
    dm = make_dm()
    index = pool(dm)
    refuses(
        f"ActiveDataModule.{method}",
        lambda: INDEX_METHODS[method](dm, [index]),
        ValueError,
        rf"`\w*indices`.*labelled indices.*\[{index}\].*in the pool",
        dm,
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda dm: np.int64(pool(dm)),
        lambda dm: (
            np.argsort(dm.pool_indices.numpy())[::-1][:2] + 0 * pool(dm) if False else dm.pool_indices.numpy()[::-2][:2]
        ),
        lambda dm: [],
        lambda dm: torch.tensor([pool(dm)], dtype=torch.int32),
        lambda dm: (pool(dm), pool(dm, 6)),
        lambda dm: range(pool(dm), pool(dm) + 1),
    ],
    ids=["np-scalar", "negative-stride", "empty", "int32", "tuple", "range"],
)
@pytest.mark.parametrize("method", ["label", "acquire", "query", "pool_dataloader"])
def test_index_arguments_accept_valid_neighbours(method, make):
    dm = make_dm()
    accepts(lambda: INDEX_METHODS[method](dm, make(dm)))


# ---------------------------------------------------------------------------------------------- labels, probabilities
BAD_LABELS = [
    ([NAN], ValueError, r"`labels`.*finite"),
    ([INF], ValueError, r"`labels`.*finite"),
    ([-INF], ValueError, r"`labels`.*finite"),
    ([1e30], ValueError, r"`labels`.*classes in \[0, 3\)"),
    ([-1], ValueError, r"`labels`.*classes in \[0, 3\)"),
    ([3], ValueError, r"`labels`.*classes in \[0, 3\)"),
    ([-100], ValueError, r"`labels`.*classes in \[0, 3\)"),
    ([2.7], ValueError, r"`labels`.*integer classes"),
    ([True], TypeError, r"`labels`.*numbers"),
    ([None], TypeError, r"`labels`.*numbers"),
    (["1"], TypeError, r"`labels`.*numbers"),
    ([1 + 2j], TypeError, r"`labels`.*numbers"),
    ([1, 2], ValueError, r"`labels`.*one label per index \(1\).*2"),
    ([], ValueError, r"`labels`.*one label per index \(1\).*0"),
    ("1", TypeError, r"`labels`.*sequence of numbers"),
    (1, TypeError, r"`labels`.*sequence of numbers"),
    (torch.tensor([[0, 1]]), ValueError, r"`labels`.*one label per index \(1\).*2"),
    (np.array([np.nan]), ValueError, r"`labels`.*finite"),
]


@pytest.mark.parametrize("method", ["label", "acquire", "relabel"])
@pytest.mark.parametrize(("labels", "error", "match"), BAD_LABELS, ids=[repr(c[0]) for c in BAD_LABELS])
def test_labels_refused(method, labels, error, match):
    dm = make_dm()
    index = labelled(dm) if method == "relabel" else pool(dm)
    refuses(f"ActiveDataModule.{method}", lambda: getattr(dm, method)([index], labels=labels), error, match, dm)


@pytest.mark.parametrize("labels", [[0], [2], [np.int64(1)], [2.0], torch.tensor([1]), np.array([0]), (1,)])
@pytest.mark.parametrize("method", ["label", "acquire", "relabel"])
def test_labels_accept_valid_neighbours(method, labels):
    dm = make_dm()
    index = labelled(dm) if method == "relabel" else pool(dm)
    accepts(lambda: getattr(dm, method)([index], labels=labels))
    assert dm.annotations[index] in (0, 1, 2)


BAD_PROBABILITIES = [
    ([0.0], r"`probabilities`.*\(0, 1\]"),
    ([1.5], r"`probabilities`.*\(0, 1\]"),
    ([-0.5], r"`probabilities`.*\(0, 1\]"),
    ([NAN], r"`probabilities`.*\(0, 1\]"),
    ([INF], r"`probabilities`.*\(0, 1\]"),
    ([0.5, 0.5], r"`probabilities`.*one value per index \(1\).*2"),
    ([], r"`probabilities`.*one value per index \(1\).*0"),
    (["a"], r"`probabilities`.*numbers"),
    ([None], r"`probabilities`.*numbers"),
    ("0.5", r"`probabilities`.*numbers"),
]


@pytest.mark.parametrize("method", ["label", "acquire"])
@pytest.mark.parametrize(("probabilities", "match"), BAD_PROBABILITIES, ids=[repr(c[0]) for c in BAD_PROBABILITIES])
def test_probabilities_refused(method, probabilities, match):
    dm = make_dm()
    error = (ValueError, TypeError)
    call = lambda: getattr(dm, method)([pool(dm)], probabilities=probabilities)  # noqa: E731
    refuses(f"ActiveDataModule.{method}", call, error, match, dm)


@pytest.mark.parametrize("probabilities", [[1.0], [1e-300], torch.tensor([0.5]), np.array([0.25]), 0.5])
def test_probabilities_accept_valid_neighbours(probabilities):
    dm = make_dm()
    accepts(lambda: dm.acquire([pool(dm)], probabilities=probabilities))


# ---------------------------------------------------------------------------------------------- random and balanced
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda dm: dm.label_randomly(0), ValueError, r"`n`.*positive integer"),
        (lambda dm: dm.label_randomly(-2), ValueError, r"`n`.*positive integer"),
        (lambda dm: dm.label_randomly(2.0), TypeError, r"`n`.*positive integer"),
        (lambda dm: dm.label_randomly(True), TypeError, r"`n`.*positive integer"),
        (lambda dm: dm.label_randomly(24), ValueError, r"`n`.*at most the pool size 23.*24"),
        (lambda dm: dm.label_randomly(2, generator=5), TypeError, r"`generator`.*torch.Generator"),
        (lambda dm: dm.label_randomly(2, generator="seed"), TypeError, r"`generator`.*torch.Generator"),
        (lambda dm: dm.label_balanced(0), ValueError, r"`per_class`.*positive integer"),
        (lambda dm: dm.label_balanced(1.0), TypeError, r"`per_class`.*positive integer"),
        (lambda dm: dm.label_balanced(9), ValueError, r"`per_class`.*at most the \d+ pool samples of class"),
        (lambda dm: dm.label_balanced(1, targets=[0, 1]), ValueError, r"`targets`.*one label per sample \(30\)"),
        (lambda dm: dm.label_balanced(1, targets=torch.rand(30)), TypeError, r"`targets`.*integer class labels"),
        (lambda dm: dm.label_balanced(1, generator=3), TypeError, r"`generator`.*torch.Generator"),
        (lambda dm: dm.risk_weights("LURE"), ValueError, r"`estimator`.*'lure' or 'pure'"),
        (lambda dm: dm.risk_weights(None), ValueError, r"`estimator`.*'lure' or 'pure'"),
        (lambda dm: dm.risk_weights(), ValueError, r"recorded drawing probability"),
    ],
)
def test_sampling_methods_refused(call, error, match):
    dm = make_dm()
    method = re.search(r"dm\.(\w+)\(", inspect.getsource(call)).group(1)
    refuses(f"ActiveDataModule.{method}", lambda: call(dm), error, match, dm)


def test_label_balanced_without_targets_is_refused():
    dm = ActiveDataModule(TensorDataset(torch.zeros(10, 2)), seed=0)
    refuses("ActiveDataModule.label_balanced", lambda: dm.label_balanced(1), ValueError, r"`targets`.*balanced", dm)


def test_sampling_methods_accept_valid_neighbours():
    dm = make_dm()
    accepts(lambda: dm.label_randomly(1, generator=torch.Generator().manual_seed(1)))
    accepts(lambda: dm.label_balanced(1, targets=torch.arange(30) % 3))
    fresh = ActiveDataModule(blobs(30), initial_labels=6, seed=0)
    assert accepts(lambda: fresh.risk_weights("pure"))[fresh.labelled_indices].isfinite().all()
    assert fresh.label_randomly(24).numel() == 24


# ---------------------------------------------------------------------------------------------- generated inputs
NOT_AN_INDEX = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.booleans(),
    st.none(),
    st.complex_numbers(max_magnitude=10),
)
OUT_OF_RANGE = st.one_of(st.integers(-(2**62), -1), st.integers(min_value=30, max_value=2**62))


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(
    method=st.sampled_from(["label", "acquire", "query", "relabel", "unlabel", "pool_dataloader"]),
    bad=st.one_of(
        st.tuples(st.just("type"), NOT_AN_INDEX),
        st.tuples(st.just("range"), OUT_OF_RANGE),
        st.tuples(st.just("list-type"), st.lists(NOT_AN_INDEX, min_size=1, max_size=3)),
        st.tuples(st.just("list-range"), st.lists(OUT_OF_RANGE, min_size=1, max_size=3)),
    ),
)
def test_generated_bad_indices_refused(method, bad):
    kind, value = bad
    dm = make_dm()
    if method == "pool_dataloader" and value is None:
        return  # `indices=None` is the documented default
    if kind.startswith("list"):
        value = [pool(dm) if method not in ("relabel", "unlabel") else labelled(dm), *value]
    error, match = (
        (TypeError, r"`\w*indices`.*integer dataset indices") if "type" in kind else (ValueError, r"in \[0, 30\)")
    )
    refuses(f"ActiveDataModule.{method}", lambda: INDEX_METHODS[method](dm, value), error, match, dm)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    method=st.sampled_from(["label", "acquire", "relabel"]),
    count=st.integers(1, 4),
    labels=st.one_of(
        st.lists(st.integers(0, 2), max_size=8),
        st.lists(st.one_of(st.integers(-(2**40), -1), st.integers(3, 2**40)), min_size=1, max_size=4),
        st.lists(st.floats().filter(lambda v: not (v == v and v.is_integer())), min_size=1, max_size=4),
    ),
)
def test_generated_bad_labels_refused(method, count, labels):
    dm = make_dm()
    indices = (dm.labelled_indices if method == "relabel" else dm.pool_indices)[:count].tolist()
    if len(labels) == count and all(isinstance(v, int) and 0 <= v < 3 for v in labels):
        labels = [*labels, 0]  # valid labels of the right length: make the length wrong
    refuses(
        f"ActiveDataModule.{method}",
        lambda: getattr(dm, method)(indices, labels=labels),
        (ValueError, TypeError),
        r"`labels`.*(one label per index|classes in \[0, 3\)|integer classes|finite)",
        dm,
    )
