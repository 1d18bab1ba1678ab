"""Selecting from 10^8 scores: in memory against a chunk at a time, CPU seconds and peak memory of each.

Run: python -m benchmarks.selection [--n 100000000] [--query 100] [--repeats 3]
Each way runs in a process of its own (so that its peak resident memory is its own), one thread, on N float32
scores drawn once per process with the same seed; the process reports its CPU seconds (median of ``--repeats``)
and its peak RSS above the scores themselves. Rows:

- top-k (BALD): ``top_k`` over every score, against ``streaming_top_k`` (the per-rank candidates of the pool pass);
- PowerBALD (beta 1): ``select_from_scores`` (the gathered draw), against ``select_sharded`` streaming on one rank
  (Gumbel-top-k a chunk at a time; what each rank of a DDP run does before O(q) rows cross ranks).

Both columns of a row select the same items (checked in each process against a small in-memory run and in
tests/heuristics/test_streaming_selection.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from lightning_bal.heuristics import BALD, PowerBALD
from lightning_bal.heuristics.base import ScoredShard
from lightning_bal.heuristics.streaming_selection import streaming_top_k, top_k
from lightning_bal.utilities.collective import Collective

WAYS = ("top_k", "streaming_top_k", "power_in_memory", "power_streamed")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(way: str, n: int, query: int, repeats: int) -> dict[str, float | list[int]]:
    """CPU seconds (median), peak RSS above the scores, and the first picks of one way of selecting."""
    torch.set_num_threads(1)
    scores = torch.rand(n, generator=torch.Generator().manual_seed(0))
    indices = torch.arange(n) if way == "power_streamed" else None
    base = peak_rss_mib()
    seconds = []
    picks: list[int] = []
    for _ in range(repeats):
        generator = torch.Generator().manual_seed(1)
        start = time.process_time()
        if way == "top_k":
            picks = top_k(scores, query, BALD.higher_is_better).tolist()
        elif way == "streaming_top_k":
            picks = streaming_top_k(scores, query, BALD.higher_is_better).tolist()
        elif way == "power_in_memory":
            picks = PowerBALD().select_from_scores(scores, query, generator).indices.tolist()
        else:
            heuristic = PowerBALD()
            heuristic.stream_above = 0  # streamed at any N, as above STREAM_ABOVE
            picks = heuristic.select_sharded(ScoredShard(indices, scores), query, generator, Collective()).indices
            picks = picks.tolist()
        seconds.append(time.process_time() - start)
    return {"seconds": statistics.median(seconds), "spread": [min(seconds), max(seconds)],
            "rss": peak_rss_mib() - base, "picks": picks}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000_000)
    parser.add_argument("--query", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # one way, in a child process
    parser.add_argument(
        "--in-process", action="store_true", help="every way in this process (quick; the memory column is then shared)"
    )
    args = parser.parse_args()
    if args.way:
        print(json.dumps(measure(args.way, args.n, args.query, args.repeats)))
        return
    results = {}
    for way in WAYS:
        if args.in_process:
            results[way] = measure(way, args.n, args.query, args.repeats)
            continue
        command = [sys.executable, "-m", "benchmarks.selection", "--way", way, "--n", str(args.n)]
        command += ["--query", str(args.query), "--repeats", str(args.repeats)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[way] = json.loads(out.strip().splitlines()[-1])
    print(f"N = {args.n:,} float32 scores ({args.n * 4 / 2**20:,.0f} MiB), q = {args.query}, 1 thread, CPU seconds:")
    print("| selection | in memory: s (min-max), peak MiB above the scores | a chunk at a time | same picks |")
    print("| --- | --- | --- | --- |")
    for name, memory, stream in (("top-k (BALD)", "top_k", "streaming_top_k"),
                                 ("PowerBALD draw", "power_in_memory", "power_streamed")):  # fmt: skip
        a, b = results[memory], results[stream]
        cells = [f"{r['seconds']:.2f} ({r['spread'][0]:.2f}-{r['spread'][1]:.2f}) s, {r['rss']:,.0f} MiB" for r in (a, b)]  # noqa: E501
        print(f"| {name} | {cells[0]} | {cells[1]} | {a['picks'] == b['picks']} |")


if __name__ == "__main__":
    main()
