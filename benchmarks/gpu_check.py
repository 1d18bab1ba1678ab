"""The GPU figures of `gpu_check.sh`: the MC pool pass with and without bf16 autocast, and the callback on a pool of
28x28 images scored with the Gal et al. CNN (K=20). Runs on the CPU too (at a tiny size, for the script's test).

    python -m benchmarks.gpu_check mc --pool 100000          # from the repository root
    python -m benchmarks.gpu_check callback --pool 1000000
"""

from __future__ import annotations

import argparse
import time

import lightning.pytorch as pl
import torch
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.experiments import gal_cnn
from lightning_bal.heuristics import BALD
from lightning_bal.mc import MCDropout


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["mc", "callback"])
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4096)
    args = parser.parse_args()
    torch.manual_seed(0)
    {"mc": mc, "callback": callback}[args.what](args)


if __name__ == "__main__":
    main()
