"""Gathering uneven per-rank rows: ``utilities.distributed.gather_uneven`` against torchmetrics' ``gather_all_tensors``.

Two gloo processes on the CPU; rank r holds ``rows * (r + 1)`` rows of ``[10]`` float32. Prints the median
milliseconds of each over ``--repeats`` calls, and whether both return the same tensor. Run:
``python -m benchmarks.gather``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics.utilities.distributed import gather_all_tensors

from lightning_bal.utilities.distributed import gather_uneven

WORLD = 2


class _Strategy:
    """What ``gather_uneven`` asks of a Lightning strategy: ``all_gather`` of equal shapes, stacked."""

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(WORLD)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def _run(rank: int, port: int, sizes: list[int], repeats: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    strategy = _Strategy()
    for rows in sizes:
        local = torch.randn(rows * (rank + 1), 10, generator=torch.Generator().manual_seed(rank))
        ours = gather_uneven(strategy, local, WORLD)
        theirs = torch.cat(gather_all_tensors(local))
        ours_ms = _median_ms(lambda local=local: gather_uneven(strategy, local, WORLD), repeats)
        theirs_ms = _median_ms(lambda local=local: torch.cat(gather_all_tensors(local)), repeats)
        if rank == 0:
            print(
                f"rows/rank {rows:>7} and {2 * rows:>7}: gather_uneven {ours_ms:7.2f} ms,"
                f" gather_all_tensors {theirs_ms:7.2f} ms, same result: {torch.equal(ours, theirs)}"
            )
    dist.destroy_process_group()


def main() -> None:
    """Spawn the two processes and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_run, args=(port, args.sizes, args.repeats), nprocs=WORLD)


if __name__ == "__main__":
    main()
