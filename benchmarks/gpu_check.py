"""The GPU figures of `gpu_check.sh`: the MC pool pass with and without bf16 autocast, the callback on a pool of
28x28 images scored with the Gal et al. CNN (K=20), and SWAG against K full eval passes. Runs on the CPU too (at a
tiny size, for the script's test).

    python -m benchmarks.gpu_check mc --pool 100000          # from the repository root
    python -m benchmarks.gpu_check callback --pool 1000000
    python -m benchmarks.gpu_check swag --pool 10000
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.experiments import gal_cnn
from lightning_bal.heuristics import BALD
from lightning_bal.mc import MCDropout
from lightning_bal.posteriors import SWAG


class GalCNN(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = gal_cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)  # the weights stay put: only the pool pass is timed


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _pool(size: int) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(size, 1, 28, 28, generator=generator), torch.arange(size) % 10)


def mc(args: argparse.Namespace) -> None:
    """Scores of the whole pool with float32 and with bf16 autocast: seconds, and how far the scores move."""
    device = _device()
    model = GalCNN().to(device)
    dm = ActiveDataModule(_pool(args.pool), pool_batch_size=args.batch_size, seed=0)
    heuristic = BALD()
    results = {}
    for name, dtype in (("float32", None), ("bf16 autocast", torch.bfloat16)):
        posterior = MCDropout(autocast_dtype=dtype)
        scores = []
        for _ in posterior.batches(
            model, dm.pool_dataloader(torch.arange(min(args.pool, 2 * args.batch_size))), 2, 0, None
        ):
            pass  # warm-up (kernels, autotuning)
        _sync()
        start = time.perf_counter()
        for _, outputs in posterior.batches(model, dm.pool_dataloader(), args.iterations, 0, heuristic.transform):
            scores.append(heuristic.score(outputs))
        _sync()
        results[name] = (time.perf_counter() - start, torch.cat(scores).float().cpu())
        print(f"MC pool pass {name:14s} N={args.pool:,} K={args.iterations} on {device.type}: {results[name][0]:.2f} s")
    exact, fast = results["float32"][1], results["bf16 autocast"][1]
    q = min(100, args.pool)
    overlap = len(set(exact.topk(q).indices.tolist()) & set(fast.topk(q).indices.tolist())) / q
    print(
        f"bf16 against float32: speed-up {results['float32'][0] / results['bf16 autocast'][0]:.2f}x, largest BALD"
        f" difference {float((exact - fast).abs().max()):.2e}, top-{q} overlap {overlap:.2f}"
    )


def callback(args: argparse.Namespace) -> None:
    """One active learning step through the callback: the pool pass, from the callback's logged seconds."""
    device = _device()
    start = time.perf_counter()
    dm = ActiveDataModule(_pool(args.pool), initial_labels=20, pool_batch_size=args.batch_size, seed=0)
    build = time.perf_counter() - start
    al = ActiveLearningCallback("bald", query_size=10, iterations=args.iterations, seed=0)
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=1,
        callbacks=[al],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(GalCNN(), datamodule=dm)
    seconds = al.history[0]["active/pool_pass_seconds"]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    verdict = "PASS" if seconds < 60 else "FAIL"
    print(
        f"callback pool pass, {args.pool:,} images 28x28, Gal CNN, K={args.iterations}, BALD on {device.type}:"
        f" {seconds:.2f} s (building the pool: {build:.2f} s; peak GPU memory {peak:.0f} MiB)"
        f" [{verdict}: target < 60 s on one H100/H200-class GPU]"
    )


def swag(args: argparse.Namespace) -> None:
    """SWAG's K weight draws over the pool against K full eval passes of the same CNN, in alternated pairs."""
    device = _device()
    net = nn.Sequential(*[layer for layer in gal_cnn() if not isinstance(layer, nn.Dropout)]).to(device).eval()
    posterior = SWAG(rank=5)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):  # snapshots a small step apart, as SGD's would be
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=generator).to(device), alpha=1e-3)
        posterior.collect(net)
    inputs = _pool(args.pool).tensors[0].to(device)
    loader = [
        (inputs[start : start + args.batch_size], torch.arange(start, min(start + args.batch_size, args.pool)))
        for start in range(0, args.pool, args.batch_size)
    ]

    def passes() -> None:
        with torch.inference_mode():
            for _ in range(args.iterations):
                for batch, _ in loader:
                    net(batch).log_softmax(-1)

    def draws() -> None:
        for _ in posterior.batches(net, loader, args.iterations, 0, lambda t: t.log_softmax(-1)):
            pass

    def seconds(fn) -> float:
        _sync()
        start = time.perf_counter()
        fn()
        _sync()
        return time.perf_counter() - start

    passes(), draws()  # warm-up
    pairs = [(seconds(passes), seconds(draws)) for _ in range(args.repeats)]
    ratios = [swag_seconds / floor for floor, swag_seconds in pairs]
    ratio = statistics.median(ratios)
    print(
        f"SWAG against K full eval passes, {args.pool:,} images 28x28, Gal CNN, K={args.iterations} on {device.type}:"
        f" {statistics.median(s for _, s in pairs):.2f} s against {statistics.median(f for f, _ in pairs):.2f} s,"
        f" ratio {ratio:.3f}x ({min(ratios):.3f}-{max(ratios):.3f}, {args.repeats} pairs)"
        f" [{'PASS' if ratio <= 1.1 else 'FAIL'}: <= 1.1x]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["mc", "callback", "swag"])
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3, help="swag: alternated pairs")
    args = parser.parse_args()
    torch.manual_seed(0)
    {"mc": mc, "callback": callback, "swag": swag}[args.what](args)


if __name__ == "__main__":
    main()
