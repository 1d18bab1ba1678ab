"""Running a grid: the runs of a grid (or of a shard of it) that the records folder lacks, here or in worker processes.

:func:`run_grid` runs them one after the other in this process, or with ``jobs`` spawned workers that share out the
CPU threads and the visible GPUs; each run writes its record (:mod:`lightning_bal.experiments.records`) as it finishes.
``Experiment.run`` and ``Study.run`` drive it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import torch

from lightning_bal.experiments.records import (
    RunSource,
    RunSpec,
    execute,
    grid_specs,
    read_records,
    settings_hash,
    write_study_file,
)
from lightning_bal.experiments.result import ExperimentResult

__all__ = ["parse_shard", "run_grid"]


def parse_shard(shard: Any) -> tuple[int, int] | None:
    """``"I/M"`` or ``(I, M)`` as ``(I, M)`` with ``0 <= I < M``; ``None`` stays ``None`` (every run).

    Examples:
        >>> parse_shard("1/4"), parse_shard(None)
        ((1, 4), None)
    """
    if shard is None:
        return None
    parts = shard.split("/") if isinstance(shard, str) else shard
    numbers: list[int] = []
    if isinstance(parts, (list, tuple)) and len(parts) == 2:
        for part in parts:
            if isinstance(part, str) and part.strip().isdigit():
                numbers.append(int(part))
            elif isinstance(part, int) and not isinstance(part, bool):
                numbers.append(part)
    if len(numbers) != 2 or not 0 <= numbers[0] < numbers[1]:
        raise ValueError(
            f"Expected argument `shard` to be 'I/M' with 0 <= I < M (shard I of M, counted from 0), but got {shard!r}."
        )
    return numbers[0], numbers[1]


def check_jobs(jobs: Any, argument: str = "jobs") -> int:
    """``jobs`` if it is a positive integer."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"Expected argument `{argument}` to be a positive integer, but got {jobs!r}.")
    return jobs


_WORKER_SOURCE: list[Any] = []


def _start_worker(threads: int, counter: Any, gpus: int, source: RunSource) -> None:
    """Pin the worker to its share of the CPU threads and, with several GPUs, to one of them (round robin)."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus > 1:
        # Before anything initialises CUDA in this process: the worker then sees its one GPU as device 0.
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    torch.set_num_threads(threads)
    _WORKER_SOURCE[:] = [source]


def _run_in_worker(task: tuple[RunSpec, Path | None]) -> dict[str, Any]:
    spec, folder = task
    return execute(_WORKER_SOURCE[0], spec, folder)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity
        return os.cpu_count() or 1


def run_grid(
    source: RunSource,
    study: Mapping[str, Any],
    points: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    heuristics: Sequence[str],
    seeds: Sequence[int],
    metric: str,
    jobs: Any = 1,
    out: Any = None,
    shard: Any = None,
    on_run: Callable[[str, int, ExperimentResult, float], None] | None = None,
    threads: Any = None,
) -> ExperimentResult:
    """Run the grid's runs (of ``shard``) with ``jobs`` workers, reading and writing the records of ``out``."""
    jobs = check_jobs(jobs)
    if threads is not None:
        check_jobs(threads, "threads")
    selected = parse_shard(shard)
    if out is not None and (not isinstance(out, (str, os.PathLike)) or not str(out)):
        raise TypeError(f"Expected argument `out` to be a folder path or None, but got {out!r}.")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise NotADirectoryError(f"Expected argument `out` to be a folder, but {out} is a file.")
    grid_points = [points] if isinstance(points, Mapping) else list(points)
    specs = grid_specs(study, grid_points, heuristics, seeds)
    if selected is not None:
        specs = [spec for spec in specs if spec.index % selected[1] == selected[0]]
    folder = None if out is None else Path(out)
    result = ExperimentResult({spec.label: {} for spec in specs}, metric)
    pending = specs
    if folder is not None:
        existing = read_records(folder) if folder.is_dir() else []
        study_hash = settings_hash(study)
        foreign = sorted({record["study_hash"] for record in existing} - {study_hash})
        if foreign:
            raise ValueError(
                f"Expected argument `out` to be a new folder or one of this study (hash {study_hash}), but {folder}"
                f" holds records of the studies {foreign}."
            )
        folder.mkdir(parents=True, exist_ok=True)
        write_study_file(folder, study, grid_specs(study, grid_points, heuristics, seeds))
        done = {record["run_hash"]: record for record in existing}
        pending = []
        for spec in specs:
            if spec.hash in done:
                result.histories[spec.label][spec.seed] = done[spec.hash]["history"]
                if on_run is not None:
                    on_run(spec.label, spec.seed, result, 0.0)
            else:
                pending.append(spec)

    def finished(spec: RunSpec, record: dict[str, Any]) -> None:
        result.histories[spec.label][spec.seed] = record["history"]
        if on_run is not None:
            on_run(spec.label, spec.seed, result, record["wall_s"])

    if jobs == 1 or len(pending) <= 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads or before)
        try:
            for spec in pending:
                finished(spec, execute(source, spec, folder))
        finally:
            torch.set_num_threads(before)
    else:
        _run_in_pool(source, pending, folder, jobs, finished, threads)
    # In grid order, whatever order the workers finished in.
    for label, by_seed in result.histories.items():
        result.histories[label] = {seed: by_seed[seed] for seed in seeds if seed in by_seed}
    return result


def _run_in_pool(
    source: RunSource,
    pending: Sequence[RunSpec],
    folder: Path | None,
    jobs: int,
    finished: Callable[[RunSpec, dict[str, Any]], None],
    threads: int | None,
) -> None:
    import pickle

    try:
        pickle.dumps(source)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise TypeError(
            "Expected the experiment to be picklable for `jobs` > 1 (worker processes are spawned): `model`,"
            f" `datamodule` and the rows' functions must be module-level functions or functools.partial, but {err}."
        ) from None
    workers = min(jobs, len(pending))
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    # Several visible GPUs are shared out unless the caller chose them (CUDA_VISIBLE_DEVICES set).
    gpus = 0 if "CUDA_VISIBLE_DEVICES" in os.environ else torch.cuda.device_count()
    initargs = (threads or max(1, _cores() // workers), counter, gpus, source)
    # Not a multiprocessing.Pool: a worker killed mid-run (out of memory, `kill`) would leave it waiting forever.
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=initargs) as pool:
        futures = {pool.submit(_run_in_worker, (spec, folder)): spec for spec in pending}
        try:
            for future in as_completed(futures):
                finished(futures[future], future.result())
        except BrokenProcessPool:
            raise RuntimeError(
                "A worker process died during a run (killed, or out of memory): the runs it had not finished are"
                " marked `.running` in the records folder; run the study again to rerun them."
            ) from None
