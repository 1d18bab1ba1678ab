"""Bad annotator files (JSON and CSV) and bad paths: each refused clearly, and the datamodule unchanged."""

from __future__ import annotations

import json

import pytest

from lightning_bal import ActiveDataModule
from tests.bad_inputs.harness import accepts, refuses
from tests.helpers.models import blobs


def queried() -> tuple[ActiveDataModule, list[int]]:
    dm = ActiveDataModule(blobs(30), initial_labels=6, seed=0)
    rows = dm.pool_indices[:4].tolist()
    dm.query(rows[:3])
    return dm, rows  # rows[3] is a pool item that was never queried


def write_json(path, rows) -> str:
    path.write_text(rows if isinstance(rows, str) else json.dumps(rows))
    return str(path)


# Each case builds the file's rows from the queried indices q (q[0], q[1], q[2] are pending; q[3] was never queried).
JSON_CASES = [
    (lambda q: {"index": q[0], "label": 1}, r"JSON list of query rows.*dict"),
    (lambda q: "not json at all", r"hold JSON.*does not parse"),
    (lambda q: '[{"index": 1, ', r"hold JSON.*does not parse"),
    (lambda q: [[q[0], 1]], r"every row.*(`id`|`index`)"),
    (lambda q: [{"label": 1}], r"every row.*(`id`|`index`)"),
    (lambda q: [{"index": 0.7, "label": 1}], r"every `index`.*integer.*0.7"),
    (lambda q: [{"index": True, "label": 1}], r"every `index`.*integer.*True"),
    (lambda q: [{"index": "abc", "label": 1}], r"every `(index|id)`.*integer.*'abc'"),
    (lambda q: [{"index": None, "label": 1}], r"every `index`.*integer.*None"),
    (lambda q: [{"index": q[0], "label": "cat"}], r"every `label`.*number or empty.*'cat'"),
    (lambda q: [{"index": q[0], "label": True}], r"every `label`.*number or empty.*True"),
    (lambda q: [{"index": q[0], "label": [1]}], r"every `label`.*number or empty.*\[1\]"),
    (lambda q: [{"index": q[0], "label": {"class": 1}}], r"every `label`.*number or empty"),
    (lambda q: f'[{{"index": {q[0]}, "label": NaN}}]', r"`labels?`.*finite.*nan"),
    (lambda q: f'[{{"index": {q[0]}, "label": Infinity}}]', r"`labels?`.*finite.*inf"),
    (lambda q: [{"index": q[0], "label": 1e30}], r"`labels`.*classes in \[0, 3\)"),
    (lambda q: [{"index": q[0], "label": -1}], r"`labels`.*classes in \[0, 3\)"),
    (lambda q: [{"index": q[0], "label": 999}], r"`labels`.*classes in \[0, 3\)"),
    (lambda q: [{"index": q[0], "label": -100}], r"`labels`.*classes in \[0, 3\)"),
    (lambda q: [{"index": q[0], "label": 2.7}], r"`labels`.*integer classes.*2.7"),
    (lambda q: [{"index": q[0], "label": "2.7"}], r"`labels`.*integer classes.*2.7"),
    (lambda q: [{"index": q[3], "label": 1}], r"pending query only.*not\s+queried"),
    (lambda q: [{"index": 99, "label": 1}], r"(pending query only.*\[99\].*not\s+queried|unknown ids \['99'\])"),
    (lambda q: [{"index": -1, "label": 1}], r"(pending query only.*\[-1\].*not\s+queried|unknown ids \['-1'\])"),
    (lambda q: [{"index": q[0], "label": 1}, {"index": q[0], "label": 2}], r"`indices`.*distinct.*duplicates"),
    (lambda q: [{"index": q[0], "label": 1}, {"index": q[1], "label": 7}], r"`labels`.*classes in \[0, 3\)"),
    (lambda q: [{"index": q[0], "label": 1}, {"index": q[3], "label": 2}], r"pending query only"),
]


@pytest.mark.parametrize(("make", "match"), JSON_CASES)
def test_json_answers_refused(tmp_path, make, match):
    dm, rows = queried()
    path = write_json(tmp_path / "answers.json", make(rows))
    refuses("ActiveDataModule.import_labels (JSON)", lambda: dm.import_labels(path), (ValueError, TypeError), match, dm)


CSV_CASES = [
    (lambda q: f"{q[0]},0,1\n", r"header `(id,)?index,step,(score,)?label`"),
    (lambda q: "", r"header `(id,)?index,step,(score,)?label`"),
    (lambda q: f"index,step\n{q[0]},0\n", r"header `(id,)?index,step,(score,)?label`"),
    (lambda q: f"idx,step,label\n{q[0]},0,1\n", r"header `(id,)?index,step,(score,)?label`"),
    (lambda q: "index,step,label\n0.7,0,1\n", r"every `index`.*integer.*'0.7'"),
    (lambda q: "index,step,label\n1e1,0,1\n", r"every `index`.*integer.*'1e1'"),
    (lambda q: "index,step,label\ntrue,0,1\n", r"every `index`.*integer.*'true'"),
    (lambda q: "index,step,label\n,0,1\n", r"every `(index|id)`.*integer.*''"),
    (lambda q: f"index,step,label\n{q[0]},0,cat\n", r"every `label`.*number or empty.*'cat'"),
    (lambda q: f"index,step,label\n{q[0]},0,nan\n", r"`labels?`.*finite"),
    (lambda q: f"index,step,label\n{q[0]},0,inf\n", r"`labels?`.*finite"),
    (lambda q: f"index,step,label\n{q[0]},0,-1\n", r"`labels`.*classes in \[0, 3\)"),
    (lambda q: f"index,step,label\n{q[0]},0,3\n", r"`labels`.*classes in \[0, 3\)"),
    (lambda q: f"index,step,label\n{q[0]},0,2.7\n", r"`labels`.*integer classes"),
    (lambda q: f"index,step,label\n{q[3]},0,1\n", r"pending query only.*not\s+queried"),
    (lambda q: "index,step,label\n-5,0,1\n", r"(pending query only.*\[-5\]|unknown ids \['-5'\])"),
    (lambda q: f"index,step,label\n{q[0]},0,1\n{q[0]},0,1\n", r"`indices`.*distinct.*duplicates"),
]


@pytest.mark.parametrize(("make", "match"), CSV_CASES)
def test_csv_answers_refused(tmp_path, make, match):
    dm, rows = queried()
    path = tmp_path / "answers.csv"
    path.write_text(make(rows))
    refuses("ActiveDataModule.import_labels (CSV)", lambda: dm.import_labels(path), (ValueError, TypeError), match, dm)


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("answers.txt", ValueError, r"`path`.*`.json` or `.csv`.*answers.txt"),
        ("answers", ValueError, r"`path`.*`.json` or `.csv`"),
        ("missing.json", FileNotFoundError, r"missing.json"),
        ("missing.csv", FileNotFoundError, r"missing.csv"),
    ],
)
def test_import_paths_refused(tmp_path, name, error, match):
    dm, _ = queried()
    refuses("ActiveDataModule.import_labels (path)", lambda: dm.import_labels(tmp_path / name), error, match, dm)


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("queries.txt", ValueError, r"`path`.*`.json` or `.csv`"),
        ("queries.JSON.bak", ValueError, r"`path`.*`.json` or `.csv`"),
        ("no/such/dir/queries.json", FileNotFoundError, r"queries.json"),
    ],
)
def test_export_paths_refused(tmp_path, name, error, match):
    dm, _ = queried()
    refuses("ActiveDataModule.export_queries", lambda: dm.export_queries(tmp_path / name), error, match, dm)


@pytest.mark.parametrize("suffix", [".json", ".csv", ".JSON", ".Csv"])
def test_round_trip_accepts_valid_answers(tmp_path, suffix):
    dm, rows = queried()
    path = accepts(lambda: dm.export_queries(tmp_path / f"queries{suffix}"))
    if suffix.lower() == ".json":
        answers = json.loads(path.read_text())
        answers[0]["label"], answers[1]["label"] = 2, "1"  # the third stays unanswered
        path.write_text(json.dumps(answers))
    else:
        lines = path.read_text().splitlines()
        lines[1], lines[2] = lines[1] + "2", lines[2] + "1.0"
        path.write_text("\n".join(lines) + "\n")
    assert accepts(lambda: dm.import_labels(path)).tolist() == rows[:2]
    assert dm.annotations == {rows[0]: 2, rows[1]: 1}
    assert dm.pending_query.tolist() == rows[2:3]
