"""Peak memory of scoring one segmentation batch with BALD: bounded runs of items vs the whole batch at once.

A 21-class 256x256 batch of 8 at K=20 holds [8, 20, 21, 256, 256] float32 = 881 MB of MC outputs if materialised at
once (and as much again for their log-softmax). The engine runs and yields the batch in runs of items whose
``[b, K, C, H, W]`` outputs fit ``memory_budget``; the heuristic reduces each run to ``[b]`` scores. Each
configuration runs in a fresh process and reports its peak resident memory above the process's baseline (model and
inputs already built), so the numbers do not depend on which ran first.

Usage: ``python benchmarks/segmentation_memory.py`` (about a minute on one CPU thread).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MIB = 2**20


def measure(budget: int | None, batch: int, iterations: int, classes: int, size: int) -> dict[str, float]:
    import torch
    from torch import nn

    from lightning_bal.heuristics import BALD
    from lightning_bal.mc import mc_batches

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.2), nn.Conv2d(8, classes, 1))
    images = torch.randn(batch, 3, size, size)
    heuristic = BALD()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    scores, runs, largest = [], 0, 0
    loader = [(images, torch.arange(batch))]
    for _, log_probs in mc_batches(
        net, loader, iterations, seed=0, output_transform=heuristic.transform, memory_budget=budget
    ):
        runs += 1
        largest = max(largest, log_probs.numel() * log_probs.element_size())
        scores.append(heuristic.score(log_probs))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "runs": runs,
        "largest_run_mib": largest / MIB,
        "peak_above_baseline_mib": (peak - baseline) / MIB,
        "seconds": seconds,
        "score_sum": float(torch.cat(scores).sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--budgets-mib", type=int, nargs="+", default=[4096, 0, 256, 64], help="0: the default (no memory_budget)"
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child or None, args.batch, args.iterations, args.classes, args.size)))
        return
    full = args.batch * args.iterations * args.classes * args.size**2 * 4 / MIB
    print(
        f"[B, K, C, H, W] = [{args.batch}, {args.iterations}, {args.classes}, {args.size}, {args.size}]:"
        f" {full:.0f} MiB of float32 MC outputs per batch if materialised at once"
    )
    print("| memory_budget | runs of items | largest run | peak RSS above baseline | seconds | sum of scores |")
    print("|---|---|---|---|---|---|")
    for budget in args.budgets_mib:
        command = [
            sys.executable,
            __file__,
            "--child",
            str(budget * MIB),
            "--batch",
            str(args.batch),
            "--iterations",
            str(args.iterations),
            "--classes",
            str(args.classes),
            "--size",
            str(args.size),
        ]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        name = f"{budget} MiB" if budget else "default"
        print(
            f"| {name} | {result['runs']} | {result['largest_run_mib']:.0f} MiB |"
            f" {result['peak_above_baseline_mib']:.0f} MiB | {result['seconds']:.1f} | {result['score_sum']:.4f} |"
        )


if __name__ == "__main__":
    main()
