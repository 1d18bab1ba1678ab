"""benchmarks/label_efficiency.py over studies: records in --out, a rerun that runs nothing, a study file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from benchmarks import label_efficiency
from lightning_bal.experiments import load_study, read_records

OPTIONS = ["--dataset", "digits", "--seeds", "0", "--budget", "24", "--initial-labels", "20", "--query-size", "2"]
OPTIONS += ["--iterations", "2", "--epochs-per-step", "1", "--samples-per-epoch", "32", "--max-pool-size", "30"]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.slow
def test_the_benchmark_writes_records_and_a_rerun_runs_nothing(tmp_path, capsys):
    argv = [*OPTIONS, "--heuristics", "random", "bald", "--out", str(tmp_path)]
    curves = label_efficiency.main(argv)
    records = read_records(tmp_path / "records")
    assert sorted(record["label"] for record in records) == ["bald", "random"]
    # The tables and the CSV come from the records.
    assert {name: by_seed[0] for name, by_seed in load_study(tmp_path / "records").curves().items()} == {
        name: by_seed[0] for name, by_seed in curves.items()
    }
    with (tmp_path / "results.csv").open() as handle:
        assert [(row["heuristic"], row["labelled"]) for row in csv.DictReader(handle)] == [
            (name, str(n)) for name in ("random", "bald") for n in (20, 22, 24)
        ]
    records_before = _files(tmp_path / "records")
    capsys.readouterr()
    assert label_efficiency.main(argv) == curves
    assert capsys.readouterr().out.count("recorded before") == 2
    assert _files(tmp_path / "records") == records_before


@pytest.mark.slow
def test_the_benchmark_runs_a_study_file(tmp_path):
    study = {
        "dataset": {"name": "digits", "test_size": 500},
        "model": {"network": "digits"},
        "protocol": {"budget": 22, "initial_labels": 20, "query_size": 2, "iterations": 2, "samples_per_epoch": 32},
        "grid": {"heuristics": ["entropy"], "seeds": [1]},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    curves = label_efficiency.main(["--study", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "out")])
    assert [n for n, _ in curves["entropy"][1]] == [20, 22]
    assert "budget=22" in (tmp_path / "out" / "table.md").read_text()
    assert [record["seed"] for record in read_records(tmp_path / "out" / "records")] == [1]
