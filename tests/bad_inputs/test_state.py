"""LabelLedger's arguments, and corrupted state dicts for the ledger and the datamodule (tables and hypothesis)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightning_bal import ActiveDataModule
from lightning_bal.data.ledger import LabelLedger
from tests.bad_inputs.harness import accepts, refuses
from tests.helpers.models import blobs

N = 30
ERRORS = (ValueError, TypeError, KeyError)


def make_dm() -> ActiveDataModule:
    """A datamodule with every state entry non-trivial: steps, annotations, drawing probabilities, a query, a subset."""
    dm = ActiveDataModule(blobs(N), initial_labels=6, seed=0, max_pool_size=10)
    dm.scoring_indices()
    pool = dm.pool_indices.tolist()
    dm.acquire(pool[:2], labels=[2, 0], probabilities=[0.5, 0.25])
    dm.query(pool[2:4])
    return dm


def make_ledger() -> LabelLedger:
    ledger = LabelLedger(N, "classification", 3)
    ledger.label([0, 1, 2])
    ledger.acquire([3, 4], labels=[1, 2])
    ledger.query([5, 6])
    return ledger


# ---------------------------------------------------------------------------------------------- LabelLedger arguments
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"size": -1}, ValueError, r"`size`.*non-negative integer"),
        ({"size": 2.5}, TypeError, r"`size`.*non-negative integer"),
        ({"size": "10"}, TypeError, r"`size`.*non-negative integer"),
        ({"size": None}, TypeError, r"`size`.*non-negative integer"),
        ({"size": True}, TypeError, r"`size`.*non-negative integer"),
        ({"size": 5, "task": "segmentation"}, ValueError, r"`task`.*'classification', 'regression'.* or None"),
        ({"size": 5, "num_classes": 0}, ValueError, r"`num_classes`.*positive integer"),
        ({"size": 5, "num_classes": "3"}, TypeError, r"`num_classes`.*positive integer"),
        ({"size": 5, "task": "regression", "num_classes": 2}, ValueError, r"`num_classes`.*classification"),
    ],
)
def test_ledger_constructor_refuses(kwargs, error, match):
    refuses("LabelLedger()", lambda: LabelLedger(**kwargs), error, match)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda led: led.answer([7], [1]), ValueError, r"pending query only.*\[7\].*not queried"),
        (lambda led: led.answer([5, 5], [1, 1]), ValueError, r"`indices`.*distinct"),
        (lambda led: led.answer([5], [3]), ValueError, r"`labels`.*classes in \[0, 3\)"),
        (lambda led: led.answer([5], []), ValueError, r"`labels`.*one label per index"),
        (lambda led: led.answer(5.0, [1]), TypeError, r"`indices`.*integer dataset indices"),
        (
            lambda led: led.label_balanced(1, torch.arange(N - 1) % 3, torch.Generator()),
            ValueError,
            r"`targets`.*\[30\]",
        ),
        (lambda led: led.label_balanced(1, torch.rand(N), torch.Generator()), TypeError, r"`targets`.*integer"),
        (lambda led: led.label_balanced(1, [0] * N, torch.Generator()), TypeError, r"`targets`.*tensor"),
        (lambda led: led.label_randomly(1, None), TypeError, r"`generator`.*torch.Generator"),
        (lambda led: led.label_randomly(99, torch.Generator()), ValueError, r"`n`.*pool size"),
        (lambda led: led.risk_weights("lure"), ValueError, r"recorded drawing probability"),
        (lambda led: led.risk_weights("unbiased"), ValueError, r"`estimator`.*'lure' or 'pure'"),
        (lambda led: led.relabel([10], [1]), ValueError, r"`indices`.*labelled indices.*\[10\]"),
        (lambda led: led.unlabel([3, 99]), ValueError, r"`indices`.*\[0, 30\).*99"),
        (lambda led: led.check_labels(None, 1), TypeError, r"`labels`.*sequence"),
    ],
)
def test_ledger_methods_refuse(call, error, match):
    ledger = make_ledger()
    refuses("LabelLedger methods", lambda: call(ledger), error, match, ledger)


def test_ledger_methods_accept_valid_neighbours():
    ledger = make_ledger()
    assert accepts(lambda: ledger.answer([5], [np.int64(1)])).tolist() == [5]
    assert accepts(lambda: ledger.label_balanced(1, torch.arange(N) % 3, torch.Generator())).numel() == 3
    assert accepts(lambda: ledger.label_randomly(2, torch.Generator())).numel() == 2
    ledger.relabel([3], [0])
    ledger.unlabel([3])
    assert ledger.annotations == {4: 2, 5: 1}


# ---------------------------------------------------------------------------------------------- corrupted state dicts
def corrupt(state: dict, key: str, value) -> dict:
    bad = {k: v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v) for k, v in state.items()}
    if value is DELETE:
        del bad[key]
    else:
        bad[key] = value(bad[key]) if callable(value) else value
    return bad


DELETE = object()


def with_entry(index: int, value):
    def change(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        tensor[index] = value
        return tensor

    return change


# (key, bad value or a function of the valid value, pattern): the pattern names the key and the problem.
STATE_CASES = [
    ("acquired_at", DELETE, r"hold \['acquired_at'\]"),
    ("step", DELETE, r"hold \['step'\]"),
    ("acquisition_order", DELETE, r"hold \['acquisition_order'\]"),
    ("acquisition_probability", DELETE, r"hold \['acquisition_probability'\]"),
    ("annotation_indices", DELETE, r"hold \['annotation_indices'\]"),
    ("annotation_values", DELETE, r"hold \['annotation_values'\]"),
    ("pending_query", DELETE, r"hold \['pending_query'\]"),
    ("acquired_at", torch.zeros(5, 10, dtype=torch.long), r"`acquired_at` of size 50, shape \(5, 10\)"),
    ("acquired_at", torch.zeros(N + 1, dtype=torch.long), r"`acquired_at` of size 31"),
    ("acquired_at", lambda t: t.float(), r"`acquired_at`.*integer tensor.*float32"),
    ("acquired_at", lambda t: t >= 0, r"`acquired_at`.*integer tensor.*bool"),
    ("acquired_at", lambda t: t.tolist(), r"`acquired_at` of list"),
    ("acquired_at", None, r"`acquired_at` of NoneType"),
    ("acquired_at", with_entry(10, -5), r"`acquired_at`.*-1 or a step in \[0, 1\]"),
    ("acquired_at", with_entry(10, 7), r"`acquired_at`.*-1 or a step in \[0, 1\]"),
    ("step", -1, r"`step`.*non-negative integer.*-1"),
    ("step", 1.5, r"`step`.*non-negative integer.*1.5"),
    ("step", "1", r"`step`.*non-negative integer"),
    ("step", True, r"`step`.*non-negative integer"),
    ("step", None, r"`step`.*non-negative integer"),
    ("step", 0, r"`acquired_at`.*-1 or a step in \[0, 0\]"),
    ("acquisition_order", torch.zeros(3, dtype=torch.long), r"`acquisition_order` of size 3"),
    ("acquisition_order", lambda t: t.double(), r"`acquisition_order`.*integer tensor"),
    ("acquisition_order", lambda t: torch.full_like(t, 2), r"`acquisition_order`.*-1 exactly in the pool"),
    ("acquisition_order", lambda t: t.clamp_max(-5), r"`acquisition_order`.*-1 exactly in the pool"),
    ("acquisition_probability", torch.zeros(N), r"`acquisition_probability`.*\(0, 1\] or be NaN"),
    ("acquisition_probability", lambda t: t.nan_to_num(0.5) * 3, r"`acquisition_probability`.*\(0, 1\] or be NaN"),
    ("acquisition_probability", torch.ones(N, dtype=torch.long), r"`acquisition_probability`.*float tensor"),
    ("acquisition_probability", torch.ones(N + 2), r"`acquisition_probability`.*shape \[30\]"),
    ("acquisition_probability", [0.5] * N, r"`acquisition_probability`.*float tensor"),
    ("annotation_indices", lambda t: t + 100, r"`annotation_indices`.*in \[0, 30\)"),
    ("annotation_indices", lambda t: t.float(), r"`annotation_indices`.*integer dataset indices"),
    ("annotation_indices", lambda t: t[:1], r"`annotation_indices` and `annotation_values` of one length"),
    ("annotation_values", lambda t: t.fill_(float("nan")), r"`annotation_values`.*finite"),
    ("annotation_values", lambda t: t.fill_(7.0), r"`annotation_values`.*classes in \[0, 3\)"),
    ("annotation_values", lambda t: t + 0.5, r"`annotation_values`.*integer classes"),
    ("annotation_values", [1.0, 2.0], r"`annotation_values`.*one length"),
    ("pending_query", torch.tensor([0]), r"`pending_query`.*pool indices"),
    ("pending_query", torch.tensor([N]), r"`pending_query`.*in \[0, 30\)"),
    ("pending_query", torch.tensor([0.5]), r"`pending_query`.*integer dataset indices"),
    ("pending_query", "abc", r"`pending_query`.*integer dataset indices"),
]
DATAMODULE_CASES = [
    ("generator_state", DELETE, r"hold \['generator_state'\]"),
    ("pool_subset", DELETE, r"hold \['pool_subset'\]"),
    ("pool_subset_step", DELETE, r"hold \['pool_subset_step'\]"),
    ("generator_state", torch.zeros(10, dtype=torch.uint8), r"`generator_state`.*torch.Generator state"),
    ("generator_state", lambda t: t.float(), r"`generator_state`.*torch.Generator state"),
    ("generator_state", None, r"`generator_state`.*torch.Generator state"),
    ("seed", DELETE, r"hold \['seed'\]"),
    ("ids", DELETE, r"hold \['ids'\]"),
    ("seed", "abc", r"`seed`.*integer"),
    ("seed", 2.5, r"`seed`.*integer"),
    ("seed", None, r"`seed`.*integer.*None"),
    ("seed", True, r"`seed`.*integer.*True"),
    ("pool_subset", torch.tensor([N + 4]), r"`pool_subset`.*in \[0, 30\)"),
    ("pool_subset", torch.tensor([1.0]), r"`pool_subset`.*integer dataset indices"),
    ("pool_subset", torch.tensor([2, 2]), r"`pool_subset`.*distinct"),
    ("pool_subset_step", -2, r"`pool_subset_step`.*integer >= -1"),
    ("pool_subset_step", 0.5, r"`pool_subset_step`.*integer >= -1"),
    ("pool_subset_step", False, r"`pool_subset_step`.*integer >= -1"),
]


@pytest.mark.parametrize(("key", "value", "match"), STATE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(STATE_CASES)])
def test_ledger_state_refused(key, value, match):
    ledger = make_ledger()
    bad = corrupt(ledger.state_dict(), key, value)
    refuses("LabelLedger.load_state_dict", lambda: ledger.load_state_dict(bad), ERRORS, match, ledger)


CASES = STATE_CASES + DATAMODULE_CASES


@pytest.mark.parametrize(("key", "value", "match"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_datamodule_state_refused(key, value, match):
    dm = make_dm()
    bad = corrupt(dm.state_dict(), key, value)
    refuses("ActiveDataModule.load_state_dict", lambda: dm.load_state_dict(bad), ERRORS, match, dm)


@pytest.mark.parametrize("state", [None, [], "state", 5, (("step", 0),)])
def test_state_that_is_not_a_dict_is_refused(state):
    dm, ledger = make_dm(), make_ledger()
    refuses("ActiveDataModule.load_state_dict", lambda: dm.load_state_dict(state), TypeError, r"`state_dict`.*dict", dm)
    refuses(
        "LabelLedger.load_state_dict", lambda: ledger.load_state_dict(state), TypeError, r"`state_dict`.*dict", ledger
    )


def test_a_state_of_another_dataset_size_is_refused():
    dm = make_dm()
    other = ActiveDataModule(blobs(N + 10), initial_labels=3, seed=1).state_dict()
    refuses("ActiveDataModule.load_state_dict", lambda: dm.load_state_dict(other), ValueError, r"30 samples", dm)


def test_valid_states_load():
    """The valid neighbours: a round trip, another run's state of the same size, a numpy step."""
    dm = make_dm()
    state = dm.state_dict()
    other = ActiveDataModule(blobs(N), initial_labels=9, seed=5)
    accepts(lambda: other.load_state_dict(state))
    assert other.labelled_indices.tolist() == dm.labelled_indices.tolist()
    assert other.annotations == dm.annotations
    assert other.pending_query.tolist() == dm.pending_query.tolist()
    assert torch.equal(other.generator.get_state(), dm.generator.get_state())
    accepts(lambda: other.load_state_dict({**state, "step": np.int64(1), "seed": np.int64(7)}))
    assert other.step == 1
    assert other.seed == 7
    ledger = LabelLedger(N, "classification", 3)
    accepts(lambda: ledger.load_state_dict(make_ledger().state_dict()))
    assert ledger.annotations == {3: 1, 4: 2}


# ---------------------------------------------------------------------------------------------- generated corruptions
def bad_values(key: str, state: dict) -> st.SearchStrategy:
    """Values that must be refused for ``key`` of a valid ``state`` (with N=30 samples, step 1, 3 classes)."""
    junk = st.one_of(st.none(), st.text(max_size=3), st.floats(allow_nan=True), st.booleans(), st.just([1.5]))
    labelled = torch.nonzero(state["acquired_at"] >= 0).reshape(-1).tolist()
    pool = torch.nonzero(state["acquired_at"] < 0).reshape(-1).tolist()
    wrong_size = st.integers(0, 2 * N).filter(lambda n: n != N)
    if key == "acquired_at":
        return st.one_of(
            junk,
            wrong_size.map(lambda n: torch.zeros(n, dtype=torch.long)),
            st.tuples(st.integers(0, N - 1), st.one_of(st.integers(-(2**40), -2), st.integers(2, 2**40))).map(
                lambda iv: with_entry(*iv)(state[key])
            ),
            st.sampled_from([torch.float32, torch.float64, torch.bool]).map(lambda d: state[key].to(d)),
        )
    if key == "step":
        return st.one_of(junk.filter(lambda v: not isinstance(v, int)), st.integers(-(2**40), -1), st.just(0))
    if key == "acquisition_order":
        return st.one_of(
            junk,
            wrong_size.map(lambda n: torch.full((n,), -1, dtype=torch.long)),
            st.tuples(st.sampled_from(pool), st.integers(0, 2**40)).map(lambda iv: with_entry(*iv)(state[key])),
            st.tuples(st.sampled_from(labelled), st.integers(-(2**40), -2)).map(lambda iv: with_entry(*iv)(state[key])),
        )
    if key == "acquisition_probability":
        outside = st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True))
        return st.one_of(
            junk,
            wrong_size.map(lambda n: torch.full((n,), float("nan"), dtype=torch.float64)),
            st.tuples(st.integers(0, N - 1), outside.filter(lambda v: v == v)).map(
                lambda iv: with_entry(*iv)(state[key])
            ),
        )
    if key == "annotation_indices":
        return st.one_of(
            st.lists(st.integers(N, 2**40) | st.integers(-(2**40), -1), min_size=2, max_size=2).map(torch.tensor),
            st.lists(st.sampled_from(pool), min_size=2, max_size=2, unique=True).map(torch.tensor),
            st.lists(st.floats(allow_nan=False), min_size=2, max_size=2).map(torch.tensor),
            st.integers(0, 5).filter(lambda n: n != 2).map(lambda n: torch.arange(n)),
        )
    if key == "annotation_values":
        classless = st.floats().filter(lambda v: not (v == v and v.is_integer() and 0 <= v < 3))
        return st.one_of(
            st.lists(classless, min_size=2, max_size=2).map(lambda v: torch.tensor(v, dtype=torch.float64)),
            st.integers(0, 5).filter(lambda n: n != 2).map(lambda n: torch.ones(n, dtype=torch.float64)),
        )
    if key == "pending_query":
        return st.one_of(
            st.lists(st.sampled_from(labelled), min_size=1, max_size=3).map(torch.tensor),
            st.lists(st.integers(N, 2**40), min_size=1, max_size=3).map(torch.tensor),
            st.lists(st.floats(allow_nan=False), min_size=1, max_size=3).map(torch.tensor),
            st.text(min_size=1, max_size=3),
        )
    if key == "generator_state":
        return st.one_of(
            st.none(),
            st.binary(max_size=64).map(lambda b: torch.tensor(list(b), dtype=torch.uint8)),
            st.just(state[key].float()),
        )
    if key == "pool_subset":
        return st.one_of(
            st.lists(st.integers(N, 2**40) | st.integers(-(2**40), -1), min_size=1, max_size=3).map(torch.tensor),
            st.lists(st.floats(allow_nan=False), min_size=1, max_size=3).map(torch.tensor),
        )
    assert key == "pool_subset_step"
    return st.one_of(st.integers(max_value=-2), junk.filter(lambda v: v is not None))


LEDGER_KEYS = [
    "acquired_at",
    "step",
    "acquisition_order",
    "acquisition_probability",
    "annotation_indices",
    "annotation_values",
    "pending_query",
]
DM_KEYS = [*LEDGER_KEYS, "generator_state", "pool_subset", "pool_subset_step"]
FAST = settings(
    max_examples=120, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
DM, DM_STATE = make_dm(), make_dm().state_dict()
LEDGER, LEDGER_STATE = make_ledger(), make_ledger().state_dict()


@FAST
@given(st.data())
def test_generated_corrupt_datamodule_state_refused(data):
    key = data.draw(st.sampled_from(DM_KEYS), label="key")
    value = data.draw(bad_values(key, DM_STATE), label="value")
    bad = corrupt(DM_STATE, key, lambda _: value)
    refuses("ActiveDataModule.load_state_dict", lambda: DM.load_state_dict(bad), ERRORS, rf"`{key}`|'{key}'", DM)


@FAST
@given(st.data())
def test_generated_corrupt_ledger_state_refused(data):
    key = data.draw(st.sampled_from(LEDGER_KEYS), label="key")
    value = data.draw(bad_values(key, LEDGER_STATE), label="value")
    bad = corrupt(LEDGER_STATE, key, lambda _: value)
    refuses("LabelLedger.load_state_dict", lambda: LEDGER.load_state_dict(bad), ERRORS, rf"`{key}`|'{key}'", LEDGER)
