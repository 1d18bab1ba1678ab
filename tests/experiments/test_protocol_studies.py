"""The study files of the protocol in benchmarks/README.md parse, and hold the settings the protocol states."""

from pathlib import Path

import pytest

from lightning_bal.experiments import Study

STUDIES = Path(__file__).resolve().parents[2] / "benchmarks" / "studies"
ROWS = ["random", "entropy", "bald", "batchbald", "power_bald", "badge", "bald@ensemble"]


@pytest.mark.parametrize(
    ("name", "query_size", "budget", "pool"),
    [
        ("mnist_q10", 10, 200, None),
        ("mnist_q100", 100, 520, None),
        ("mnist_long_tail", 10, 200, {"kind": "long_tail", "ratio": 10, "seed": 0}),
        ("mnist_duplicated", 10, 200, {"kind": "duplicated", "unique": 3000, "copies": 3, "noise": 0.1, "seed": 0}),
    ],
)
def test_a_protocol_study_holds_its_settings(name, query_size, budget, pool):
    study = Study.from_file(STUDIES / f"{name}.yaml")
    assert study.grid["heuristics"] == ROWS
    assert study.grid["seeds"] == [0, 1, 2, 3, 4]
    assert (study.protocol["query_size"], study.protocol["budget"]) == (query_size, budget)
    assert study.protocol.get("stop_at") is None  # fixed budgets: every run covers the same labelled range
    assert study.dataset.get("pool") == pool
    assert (study.model["network"], study.protocol["val_size"], study.protocol["iterations"]) == ("kirsch", 1024, 20)
    # Setting 1's runs had started in the default format; the later settings run in channels-last (same numbers
    # up to rounding, less CPU time). Within a setting every run has one format.
    assert study.model.get("channels_last", False) is (name != "mnist_q10")
    # Scoring a random subset would rarely hold two copies of one item: the duplicated pool is scored whole.
    assert study.protocol.get("max_pool_size") == (None if name == "mnist_duplicated" else 2000)
    assert study.protocol["balanced_initial"] is (name != "mnist_long_tail")
    assert len(study.runs()) == 35


def test_the_protocol_studies_are_distinct_settings():
    settings = [path for path in STUDIES.glob("mnist_*.yaml") if "_seeds" not in path.stem]
    assert len({Study.from_file(path).hash for path in settings}) == len(settings)


@pytest.mark.parametrize("name", sorted(path.stem for path in STUDIES.glob("mnist_*_seeds*.yaml")))
def test_added_seeds_pair_with_the_runs_of_their_setting(name):
    # The reading rule adds seeds 5-9 to Random and the unclear rows: their records join the setting's folder.
    added = Study.from_file(STUDIES / f"{name}.yaml")
    setting = Study.from_file(STUDIES / f"{name.split('_seeds')[0]}.yaml")
    assert added.hash == setting.hash
    assert added.grid["seeds"] == [5, 6, 7, 8, 9]
    assert added.grid["heuristics"][0] == "random"
    assert set(added.grid["heuristics"]) < set(setting.grid["heuristics"])
