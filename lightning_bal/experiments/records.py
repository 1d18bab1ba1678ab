"""Run records: one JSON file per finished run, named by its settings' hash, and the folder that holds a study's.

:func:`execute` runs one run and writes its record; :func:`load_study` gathers the records of a folder into an
:class:`~lightning_bal.experiments.ExperimentResult`, and :func:`study_status` lists which runs are done.
:func:`~lightning_bal.experiments.runner.run_grid` runs a grid's runs through :func:`execute`; docs/experiments.md
describes the records.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import torch

from lightning_bal.__about__ import __version__
from lightning_bal.experiments.result import ExperimentResult, History

__all__ = [
    "MACHINE_FIELDS",
    "RECORD_FORMAT",
    "STUDY_FILE",
    "RunSpec",
    "check_json_settings",
    "execute",
    "grid_specs",
    "load_study",
    "read_records",
    "settings_hash",
    "study_status",
]

RECORD_FORMAT = 1
# Written by every `run` into the output folder: what `status` compares the records with.
STUDY_FILE = "study.json"
_RUNNING = ".running"
# A record's fields that differ between two runs of the same settings: where, when and how fast it ran.
MACHINE_FIELDS = ("host", "finished", "wall_s", "cpu_s", "threads", "pid")


def settings_hash(settings: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over the sorted, compact JSON of ``settings``: the same settings, the same hash.

    Examples:
        >>> settings_hash({"seed": 0, "heuristic": "bald"}) == settings_hash({"heuristic": "bald", "seed": 0})
        True
    """
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_json_settings(argument: str, settings: Any) -> dict[str, Any]:
    """``settings`` as a dict of JSON values with string keys (records name a study by them), or ``{}`` for None."""
    if settings is None:
        return {}
    if not isinstance(settings, Mapping) or not all(isinstance(key, str) for key in settings):
        raise TypeError(f"Expected argument `{argument}` to be a mapping with string keys, but got {settings!r:.80}.")
    try:
        copied: dict[str, Any] = json.loads(json.dumps(dict(settings), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise TypeError(f"Expected argument `{argument}` to hold only finite JSON values, but {err}.") from None
    return copied


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: its row, seed and grid point, and the settings whose hash names its record.

    Args:
        index: its place in the grid (grid points, then seeds, then rows); shards split on it.
        heuristic: the row name (a heuristic or ``heuristic@posterior``).
        seed: the run's seed.
        grid: the grid point's settings (``{}`` without grid settings).
        settings: everything that determines the run: the study's settings, the row, the seed and the grid point.
    """

    index: int
    heuristic: str
    seed: int
    grid: dict[str, Any]
    settings: dict[str, Any]

    def __post_init__(self) -> None:
        integer = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.index, self.seed))
        if not integer or self.index < 0:
            raise TypeError(
                f"Expected `index` and `seed` to be integers (index >= 0), got {self.index!r}, {self.seed!r}."
            )
        if not isinstance(self.heuristic, str) or not all(isinstance(m, dict) for m in (self.grid, self.settings)):
            raise TypeError(
                f"Expected `heuristic` to be a row name and `grid` and `settings` dicts, but got {self.heuristic!r},"
                f" {type(self.grid).__name__}, {type(self.settings).__name__}."
            )
        check_json_settings("settings", self.settings)

    @property
    def hash(self) -> str:
        """The hash of :attr:`settings`."""
        return settings_hash(self.settings)

    @property
    def label(self) -> str:
        """The run's row in the result: the heuristic, and the grid point when there is one."""
        if not self.grid:
            return self.heuristic
        return f"{self.heuristic} ({', '.join(f'{key}={value}' for key, value in sorted(self.grid.items()))})"

    @property
    def filename(self) -> str:
        """``<heuristic>_seed<seed>_<hash>.json``: readable, and unique by the hash."""
        safe = "".join(char if char.isalnum() or char in "_-" else "-" for char in self.heuristic)
        return f"{safe}_seed{self.seed}_{self.hash}.json"


class _Runner(Protocol):
    """What runs one run from its row and seed: an :class:`~lightning_bal.experiments.Experiment`."""

    def run_seeded(self, heuristic: str, seed: int) -> History: ...


class RunSource(Protocol):
    """What runs a grid point: an ``Experiment``, or a ``Study`` that builds one per point."""

    def experiment(self, grid: Mapping[str, Any]) -> _Runner: ...


def grid_specs(
    study: Mapping[str, Any], points: Sequence[Mapping[str, Any]], heuristics: Sequence[str], seeds: Sequence[int]
) -> list[RunSpec]:
    """Every run of the grid, in order: grid points, then seeds, then rows."""
    runs = itertools.product(points, seeds, heuristics)
    return [
        RunSpec(
            i, name, seed, dict(point), {"study": dict(study), "heuristic": name, "seed": seed, "grid": dict(point)}
        )
        for i, (point, seed, name) in enumerate(runs)
    ]


def _git_commit() -> str | None:
    """The commit of the library's checkout, or None (an installed wheel, no git)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def _write_new(path: Path, text: str) -> None:
    """Write ``path`` atomically and only if it does not exist (a hard link never replaces a file)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.link(temporary, path)
    except FileExistsError:
        raise FileExistsError(
            f"Expected the run record {path} not to exist (a record is never overwritten), but it does."
        ) from None
    finally:
        Path(temporary).unlink(missing_ok=True)


def _write_replacing(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _plain(history: History) -> list[dict[str, Any]]:
    """The history as JSON values: tensors and NumPy numbers become Python numbers, exactly."""
    return [{key: value.item() if hasattr(value, "item") else value for key, value in step.items()} for step in history]


def execute(source: RunSource, spec: RunSpec, folder: Path | None) -> dict[str, Any]:
    """Run ``spec`` and return its record; with ``folder``, mark it running there, then write its record."""
    marker = None if folder is None else folder / (spec.filename + _RUNNING)
    if folder is not None and (folder / spec.filename).exists():
        raise FileExistsError(
            f"Expected the run record {folder / spec.filename} not to exist (never overwritten), but it does."
        )
    if marker is not None:
        started = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
        _write_replacing(marker, json.dumps(started) + "\n")
    wall, cpu = time.perf_counter(), time.process_time()
    history = source.experiment(spec.grid).run_seeded(spec.heuristic, spec.seed)
    record = {
        "format": RECORD_FORMAT,
        "study_hash": settings_hash(spec.settings["study"]),
        "run_hash": spec.hash,
        "label": spec.label,
        "heuristic": spec.heuristic,
        "seed": spec.seed,
        "grid": spec.grid,
        "settings": spec.settings,
        "history": _plain(history),
        "library": {"version": __version__, "commit": _git_commit()},
        "torch": torch.__version__,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "finished": _now(),
    }
    if folder is not None and marker is not None:
        try:
            _write_new(folder / spec.filename, json.dumps(record, indent=1) + "\n")
        finally:
            marker.unlink(missing_ok=True)
    return record


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_record(path: Path) -> dict[str, Any]:
    """A run record, with the fields :func:`load_study` needs (a damaged file is refused, naming it)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"Expected the run record {path} to be a JSON file, but reading it failed: {err}.") from None
    needed = ("format", "study_hash", "run_hash", "label", "seed", "settings", "history")
    missing = [key for key in needed if not isinstance(record, dict) or key not in record]
    if missing:
        raise KeyError(f"Expected the run record {path} to hold the fields {missing}, but it does not.")
    if record["format"] != RECORD_FORMAT or settings_hash(record["settings"]) != record["run_hash"]:
        raise ValueError(
            f"Expected the run record {path} to be of format {RECORD_FORMAT} with `run_hash` the hash of its"
            f" `settings`, but got format {record['format']!r} and a hash that does not match."
        )
    return dict(record)


def read_records(folder: str | Path) -> list[dict[str, Any]]:
    """Every run record of ``folder`` (sorted by file name), all of one study, checked as :func:`load_study` does."""
    if not isinstance(folder, (str, os.PathLike)) or not str(folder):
        raise TypeError(f"Expected argument `folder` to be a folder path, but got {folder!r}.")
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"Expected argument `folder` to be a folder of run records, but {path} is not one.")
    records = [read_record(file) for file in sorted(path.glob("*.json")) if file.name != STUDY_FILE]
    declared = _declared_study(path)
    studies = {record["study_hash"] for record in records} | ({declared} if declared else set())
    if len(studies) > 1:
        theirs = sorted(
            f"{file.name}: {json.loads(file.read_text()).get('study_hash')}"
            for file in sorted(path.glob("*.json"))
            if file.name != STUDY_FILE
        )
        raise ValueError(
            f"Expected argument `folder` to hold the records of one study, but {path} holds records of"
            f" {len(studies)} studies (study hashes: {theirs}{f'; {STUDY_FILE}: {declared}' if declared else ''})."
        )
    return records


def _declared_study(folder: Path) -> str | None:
    file = folder / STUDY_FILE
    if not file.is_file():
        return None
    try:
        declared = json.loads(file.read_text())["study_hash"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"Expected {file} to name its study's `study_hash`, but reading it failed: {err}.") from None
    return str(declared)


def load_study(folder: str | Path, metric: str | None = None) -> ExperimentResult:
    """The result of every run recorded in ``folder``: the same result ``Experiment.run`` returns for those runs.

    Args:
        folder: a folder of run records, written by any number of shards of one study.
        metric: the result's default figure (default: the one the study names, else ``active/test_acc``).
    """
    records = read_records(folder)
    histories: dict[str, dict[int, History]] = {}
    for record in records:
        by_seed = histories.setdefault(record["label"], {})
        if record["seed"] in by_seed:
            raise ValueError(
                f"Expected argument `folder` to hold one record per row and seed, but {record['label']!r} seed"
                f" {record['seed']} is recorded twice."
            )
        by_seed[record["seed"]] = record["history"]
    named = next((r["settings"]["study"].get("metric") for r in records if "metric" in r["settings"]["study"]), None)
    return ExperimentResult(histories, metric or named or "active/test_acc")


def write_study_file(folder: Path, study: Mapping[str, Any], specs: Sequence[RunSpec]) -> None:
    """Name the folder's study and its runs (what ``status`` lists); a folder of another study is refused."""
    declared = _declared_study(folder)
    study_hash = settings_hash(study)
    if declared is not None and declared != study_hash:
        raise ValueError(
            f"Expected argument `out` to be a new folder or one of this study (hash {study_hash}), but {folder}"
            f" holds the records of study {declared} ({folder / STUDY_FILE})."
        )
    runs = [{"label": spec.label, "seed": spec.seed, "file": spec.filename} for spec in specs]
    _write_replacing(folder / STUDY_FILE, json.dumps({"study_hash": study_hash, "study": study, "runs": runs}) + "\n")


def study_status(folder: str | Path) -> dict[str, list[str]]:
    """``{"done": [...], "running": [...], "missing": [...]}``: the record files of the study written into ``folder``.

    ``running`` is a run with a ``.running`` marker and no record: running now, or interrupted (a restart reruns it).
    """
    records = {record["run_hash"] for record in read_records(folder)}
    path = Path(folder)
    file = path / STUDY_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"Expected argument `folder` to hold the {STUDY_FILE} a study run writes, but {file} does not exist."
        )
    status: dict[str, list[str]] = {"done": [], "running": [], "missing": []}
    for run in json.loads(file.read_text())["runs"]:
        name = run["file"]
        run_hash = name.rsplit("_", 1)[-1].removesuffix(".json")
        state = "done" if run_hash in records else "running" if (path / (name + _RUNNING)).exists() else "missing"
        status[state].append(name)
    return status
