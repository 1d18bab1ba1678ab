"""Speed of an MC-Dropout pool pass: lightning_bal against one eval pass, K plain passes and Baal 2.1.0.

Run: python benchmarks/mc_predict.py [--quick] [--per-item] [--n N] [--iterations K] [--cpu-time] [--only early]
     [--memory-budget-mib MIB]
Workload (Gal et al. 2017 MNIST CNN): N random 1x28x28 inputs, batch 256, K=20, 2 threads. All methods run in
this one process; the floor and ours are the fastest of 3 runs; times are ratios to the one-pass floor measured in
the same run. On a machine shared with other jobs, ``--cpu-time`` times the process's CPU seconds instead of wall
seconds (with ``--threads 1`` they equal the wall seconds of an idle machine). Peak memory is the growth of the
process's peak RSS during each method (Linux /proc, reset between methods).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lightning_bal.mc import mc_predict

BATCH = 256


def gal_cnn(early: bool) -> nn.Sequential:
    """conv(32,4)-relu-conv(32,4)-relu-maxpool-dropout(.25)-flatten-dense(128)-relu-dropout(.5)-dense(10).

    `early=True` adds a dropout(0.25) right after the first conv's relu, so almost nothing can be shared.
    """
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(1, 32, 4), nn.ReLU()]
    if early:
        layers.append(nn.Dropout(0.25))
    layers += [nn.Conv2d(32, 32, 4), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten()]
    layers += [nn.Linear(32 * 11 * 11, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10)]
    return nn.Sequential(*layers).eval()


class IndexedPool(Dataset):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], i


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def measure(
    fn: Callable[[], object], repeat: int = 1, clock: Callable[[], float] = time.perf_counter
) -> tuple[float, float]:
    """Fastest of `repeat` calls in seconds, and the largest peak RSS growth (MiB); the CPU is shared, hence the min."""
    runs = [_measure_once(fn, clock) for _ in range(repeat)]
    return min(t for t, _ in runs), max(m for _, m in runs)


def _measure_once(fn: Callable[[], object], clock: Callable[[], float]) -> tuple[float, float]:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    base = _rss_kib("VmRSS")
    start = clock()
    fn()
    seconds = clock() - start
    return seconds, max(0, _rss_kib("VmHWM") - base) / 1024


def floor_pass(model: nn.Module, loader: DataLoader) -> None:
    with torch.inference_mode():
        for x, _ in loader:
            model(x).log_softmax(-1)


def naive_passes(model: nn.Module, loader: DataLoader, k: int) -> None:
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.train()
    with torch.inference_mode():
        for x, _ in loader:
            torch.stack([model(x).log_softmax(-1) for _ in range(k)], dim=1)
    model.eval()


def baal_predict(model: nn.Module, pool: torch.Tensor, k: int, replicate: bool, caching: bool) -> None:
    from baal.bayesian.caching_utils import MCCachingModule
    from baal.bayesian.dropout import MCDropoutModule
    from baal.modelwrapper import ModelWrapper, TrainingArgs

    # Baal patches the model in place: give it a copy so the other methods see the original.
    wrapped: nn.Module = MCDropoutModule(copy.deepcopy(model))
    if caching:
        wrapped = MCCachingModule(wrapped)
    args = TrainingArgs(batch_size=BATCH, use_cuda=False, workers=0, replicate_in_memory=replicate)
    wrapper = ModelWrapper(wrapped, args)
    wrapper.predict_on_dataset(TensorDataset(pool, torch.zeros(len(pool))), iterations=k, verbose=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N=2000 and no Baal replicate run")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-item", action="store_true", help="also time ours with per-item masks")
    parser.add_argument("--cpu-time", action="store_true", help="time CPU seconds (a shared machine), not wall")
    parser.add_argument("--only", choices=["head", "early"], help="run one of the two tables")
    parser.add_argument("--memory-budget-mib", type=int, help="ours with this memory_budget (default: the engine's)")
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    budget = None if args.memory_budget_mib is None else args.memory_budget_mib * 2**20
    torch.set_num_threads(args.threads)
    n, k = (2_000 if args.quick else args.n), args.iterations
    pool = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(IndexedPool(pool), batch_size=BATCH)
    print(
        f"pool N={n}, K={k}, batch {BATCH}, threads {torch.get_num_threads()}, torch {torch.__version__},"
        f" {'CPU' if args.cpu_time else 'wall'} seconds"
    )

    results: dict[str, dict[str, tuple[float, float]]] = {}
    for name, early in (("head dropout", False), ("early dropout", True)):
        if args.only is not None and args.only != name.split()[0]:
            continue
        model = gal_cnn(early)
        floor_pass(model, loader)  # warm-up
        rows: dict[str, tuple[float, float]] = {}
        rows["floor: 1 eval pass"] = measure(lambda m=model: floor_pass(m, loader), 3, clock)
        rows[f"naive: {k} dropout passes"] = measure(lambda m=model: naive_passes(m, loader, k), 1, clock)
        baal_runs = [("baal loop", False, False), ("baal + MCCachingModule", False, True)]
        if not args.quick or not early:
            baal_runs.insert(0, ("baal replicate_in_memory", True, False))
        try:
            import baal  # noqa: F401

            for label, replicate, caching in baal_runs:
                rows[label] = measure(lambda m=model, r=replicate, c=caching: baal_predict(m, pool, k, r, c), 1, clock)
        except ImportError:
            print("baal not installed: skipping its rows")
        rows["ours (consistent masks)"] = measure(
            lambda m=model: mc_predict(m, loader, k, seed=0, memory_budget=budget), 3, clock
        )
        if args.per_item:
            rows["ours (per-item masks)"] = measure(
                lambda m=model: mc_predict(m, loader, k, seed=0, consistent_masks=False, memory_budget=budget), 1, clock
            )
        results[name] = rows
        floor = rows["floor: 1 eval pass"][0]
        print(f"\n== {name} ==")
        print(f"{'method':32s} {'seconds':>9s} {'x floor':>8s} {'peak MiB':>9s}")
        for label, (seconds, mib) in rows.items():
            print(f"{label:32s} {seconds:9.2f} {seconds / floor:8.2f} {mib:9.0f}")

    print("\n== targets ==")
    if "head dropout" in results:
        head = results["head dropout"]
        floor, ours = head["floor: 1 eval pass"][0], head["ours (consistent masks)"][0]
        baal_times = [t for label, (t, _) in head.items() if label.startswith("baal")]
        verdict = "PASS" if ours <= 2.5 * floor else "FAIL"
        print(f"{verdict}: head dropout, ours within 2.5x of the floor: {ours / floor:.2f}x")
        if baal_times:
            best = min(baal_times)
            verdict = "PASS" if best >= 5 * ours else "FAIL"
            print(f"{verdict}: head dropout, ours at least 5x faster than Baal's best: {best / ours:.2f}x")
    if "early dropout" in results:
        early = results["early dropout"]
        floor, naive = early["floor: 1 eval pass"][0], early[f"naive: {k} dropout passes"][0]
        ours = early["ours (consistent masks)"][0]
        verdict = "PASS" if ours <= 1.05 * naive else "FAIL"
        print(f"{verdict}: early dropout, ours no slower than 1.05x the naive {k} passes: {ours / naive:.2f}x")
        verdict = "PASS" if ours <= 25 * floor else "FAIL"
        print(f"{verdict}: early dropout, ours at most 25x the floor: {ours / floor:.2f}x")


if __name__ == "__main__":
    main()
