"""Bad inputs to the experiments' pools: long_tailed_pool and duplicated_pool."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_bal.experiments import IndexedPool, Study, check_pool, duplicated_pool, long_tailed_pool, make_pool
from tests.bad_inputs.harness import accepts, refuses

NAN = float("nan")


def dataset(targets: torch.Tensor | None = None) -> TensorDataset:
    targets = torch.arange(3).repeat(4) if targets is None else targets
    data = TensorDataset(torch.zeros(len(targets), 1), targets)
    data.targets = targets
    return data


def _plain() -> TensorDataset:
    return TensorDataset(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize(
    ("data", "kwargs", "error", "match"),
    [
        (_plain(), {}, TypeError, r"`dataset`.*`targets`.*NoneType"),
        (dataset(torch.tensor([0.0, 1.0])), {}, TypeError, r"`dataset`.*`targets`.*class indices"),
        (dataset(torch.zeros(0, dtype=torch.long)), {}, ValueError, r"`dataset`.*at least one item"),
        (dataset(torch.tensor([0, 2, 2])), {}, ValueError, r"`dataset`.*every class.*\[1, 0, 2\]"),
        (dataset(torch.tensor([0, 0])), {}, ValueError, r"`dataset`.*at least 2.*\[2\]"),
        (dataset(), {"ratio": 0.5}, ValueError, r"`ratio`.*>= 1.*0.5"),
        (dataset(), {"ratio": NAN}, ValueError, r"`ratio`.*finite number"),
        (dataset(), {"ratio": "10"}, ValueError, r"`ratio`.*finite number.*'10'"),
        (dataset(), {"seed": -1}, ValueError, r"`seed`.*non-negative integer.*-1"),
    ],
)
def test_long_tailed_pool_refuses(data, kwargs, error, match):
    refuses("experiments.long_tailed_pool", lambda: long_tailed_pool(data, **kwargs), error, match, data)


@pytest.mark.parametrize(
    ("data", "kwargs", "error", "match"),
    [
        (_plain(), {}, TypeError, r"`dataset`.*`targets`"),
        (dataset(), {"copies": 0}, ValueError, r"`copies`.*positive integer.*0"),
        (dataset(), {"copies": 2.0}, ValueError, r"`copies`.*positive integer.*2.0"),
        (dataset(), {"noise": -0.1}, ValueError, r"`noise`.*>= 0.*-0.1"),
        (dataset(), {"noise": NAN}, ValueError, r"`noise`.*finite number"),
        (dataset(), {"seed": True}, ValueError, r"`seed`.*non-negative integer.*True"),
        (dataset(), {"unique": 0}, ValueError, r"`unique`.*\[1, 12\].*0"),
        (dataset(), {"unique": 13}, ValueError, r"`unique`.*\[1, 12\].*13"),
    ],
)
def test_duplicated_pool_refuses(data, kwargs, error, match):
    refuses("experiments.duplicated_pool", lambda: duplicated_pool(data, **kwargs), error, match, data)


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ({"kind": "longtail"}, ValueError, r"`dataset.pool`.*`kind`.*\['long_tail', 'duplicated'\].*longtail"),
        ("long_tail", ValueError, r"`dataset.pool`.*mapping"),
        (
            {"kind": "long_tail", "copies": 3},
            KeyError,
            r"`dataset.pool` of kind 'long_tail'.*unknown keys \['copies'\]",
        ),
        ({"kind": "long_tail", "ratio": 0.1}, ValueError, r"`dataset.pool` to be valid: .*`ratio`.*>= 1"),
        ({"kind": "duplicated", "copies": 0}, ValueError, r"`dataset.pool` to be valid: .*`copies`"),
    ],
)
def test_check_pool_refuses(spec, error, match):
    refuses("experiments.check_pool", lambda: check_pool(spec), error, match, spec)


def test_a_study_refuses_a_bad_pool_naming_the_entry():
    content = {
        "dataset": {"name": "digits", "pool": {"kind": "duplicated", "noise": -1}},
        "model": {"network": "digits"},
        "grid": {"heuristics": ["bald"], "seeds": [0]},
    }
    refuses("experiments.Study", lambda: Study.from_mapping(content), ValueError, r"`dataset.pool`.*`noise`", content)


@pytest.mark.parametrize(
    ("indices", "kwargs", "match"),
    [
        (torch.tensor([0, 12]), {}, r"`indices`.*in \[0, 12\)"),
        (torch.tensor([-1]), {}, r"`indices`.*in \[0, 12\)"),
        (torch.tensor([0.0]), {}, r"`indices`.*integer tensor"),
        ([0, 1], {}, r"`indices`.*1-D integer tensor"),
        (torch.tensor([0]), {"noise": -1.0}, r"`noise`.*>= 0"),
        (torch.tensor([0]), {"seed": 1.5}, r"`seed`.*non-negative integer"),
    ],
)
def test_indexed_pool_refuses(indices, kwargs, match):
    data = dataset()
    refuses("experiments.IndexedPool()", lambda: IndexedPool(data, indices, **kwargs), ValueError, match, data)


def test_make_pool_refuses_an_unchecked_entry():
    data, spec = dataset(), {"kind": "duplicated", "copies": -2}
    refuses("experiments.make_pool", lambda: make_pool(data, spec), ValueError, r"`dataset.pool`.*`copies`", data, spec)


def test_pools_accept_valid_neighbours():
    assert len(accepts(lambda: long_tailed_pool(dataset(), ratio=1))) == 12
    assert len(accepts(lambda: long_tailed_pool(dataset(torch.tensor([0, 1])), ratio=1e6))) == 2
    assert len(accepts(lambda: duplicated_pool(dataset(), copies=1, noise=0))) == 12
    assert len(accepts(lambda: IndexedPool(dataset(), torch.tensor([], dtype=torch.long)))) == 0
    assert len(accepts(lambda: make_pool(dataset(), {"kind": "duplicated", "unique": 12}))) == 36
