"""Cost of scoring a pool with each posterior, as a ratio to one deterministic eval pass over it.

Run: python benchmarks/posteriors.py [--n N] [--members M] [--iterations K] [--network gal|kirsch] [--repeats R]
Workload: N random 1x28x28 inputs, batch 256, the Gal et al. 2017 MNIST CNN, or Kirsch et al. 2019's with
``--network kirsch`` (dropout removed for the ensemble, SWAG and Laplace), 1 thread, fastest of 3 runs. Rows: a
DeepEnsemble of M members through EnsemblePosterior, against M separate eval passes of the members one after
another; MC-Dropout (K samples, the engine); SWAG (K weight draws, moments from M snapshots, no BatchNorm);
last-layer Laplace (K draws, full GGN).

Then SWAG side by side with its floor, K full eval passes over the pool: R alternated pairs, CPU seconds, the
median ratio and its spread (target: at most 1.1x).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from lightning_bal.experiments.models import NETWORKS
from lightning_bal.mc import MCDropout
from lightning_bal.posteriors import SWAG, DeepEnsemble, EnsemblePosterior, LastLayerLaplace

BATCH = 256


def cnn(network: str, dropout: bool) -> nn.Sequential:
    """The CNN, with or without its dropout layers (SWAG, Laplace and ensembles need none)."""
    layers = [layer for layer in NETWORKS[network]() if dropout or not isinstance(layer, (nn.Dropout, nn.Dropout2d))]
    return nn.Sequential(*layers).eval()


def fastest(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--network", choices=["gal", "kirsch"], default="gal")
    parser.add_argument("--repeats", type=int, default=5, help="alternated pairs of SWAG and K eval passes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(args.n, 1, 28, 28)
    loader = [(x[i : i + BATCH], torch.arange(i, min(i + BATCH, args.n))) for i in range(0, args.n, BATCH)]
    log_softmax = lambda t: t.log_softmax(-1)  # noqa: E731

    def drain(posterior, module, k):
        for _ in posterior.batches(module, loader, k, 0, log_softmax):
            pass

    plain = cnn(args.network, dropout=False)

    def one_pass(module: nn.Module = plain) -> None:
        with torch.inference_mode():
            for inputs, _ in loader:
                module(inputs).log_softmax(-1)

    ensemble = DeepEnsemble(lambda: cnn(args.network, dropout=False), args.members, seed=0).eval()
    members = [ensemble.member(m).eval() for m in range(args.members)]
    swag = SWAG(rank=args.members)
    for m in range(args.members):
        swag.collect(members[m])
    laplace = LastLayerLaplace()
    laplace.fit_loader(plain, loader[:2])
    m, k = args.members, args.iterations
    floor = fastest(one_pass)
    rows = [
        (f"{m} separate eval passes (members one after another)", fastest(lambda: [one_pass(mod) for mod in members])),
        (f"DeepEnsemble via EnsemblePosterior (K = M = {m})", fastest(lambda: drain(EnsemblePosterior(), ensemble, m))),
        (f"MC-Dropout (K = {k}, the engine)", fastest(lambda: drain(MCDropout(), cnn(args.network, dropout=True), k))),
        (f"SWAG (K = {k} weight draws, no BatchNorm)", fastest(lambda: drain(swag, plain, k))),
        (f"last-layer Laplace (K = {k}, full GGN)", fastest(lambda: drain(laplace, plain, k))),
    ]
    print(f"{args.network} CNN, N={args.n}, batch {BATCH}, 1 thread; one eval pass: {floor:.3f} s")
    print("| scoring | seconds | ratio to one eval pass |")
    print("| --- | --- | --- |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / floor:.2f} |")

    def cpu_seconds(fn: Callable[[], object]) -> float:
        start = time.process_time()
        fn()
        return time.process_time() - start

    pairs = [
        (cpu_seconds(lambda: [one_pass() for _ in range(k)]), cpu_seconds(lambda: drain(swag, plain, k)))
        for _ in range(args.repeats)
    ]
    ratios = [swag_seconds / passes for passes, swag_seconds in pairs]
    floor_k = statistics.median(passes for passes, _ in pairs)
    swag_k = statistics.median(swag_seconds for _, swag_seconds in pairs)
    print(f"\nSWAG side by side with K = {k} full eval passes, {args.repeats} alternated pairs, CPU seconds:")
    print(f"K eval passes {floor_k:.3f} s, SWAG {swag_k:.3f} s: SWAG / K passes = {statistics.median(ratios):.3f}x")
    print(f"(pairs from {min(ratios):.3f}x to {max(ratios):.3f}x; target <= 1.1x)")


if __name__ == "__main__":
    main()
