"""Score a pool streamed from litdata chunks: the callback's pool pass against one eval pass over the same stream.

The pool is written once as litdata chunks (items of ``--features`` float16 inputs and a class), read through
:class:`~lightning_bal.data.StreamedDataset` by the datamodule, and scored by ``ActiveLearningCallback`` (BALD, an MLP
with dropout before its last layer, K=``--iterations``). The read alone and one eval pass of the same model over the
same loader are timed side by side with it. Figures: items per second of each, the pool pass's ratio to the eval
pass, peak resident memory (and peak GPU memory on a GPU). See docs/multi_node.md#measured-cost-of-a-streamed-pool.

    python -m benchmarks.streaming --items 1000000 [--folder DIR] [--iterations 20] [--device cuda]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.data import StreamedDataset

CLASSES = 10


class Float(nn.Module):
    """The stored float16 inputs as float32, inside the network, where the MC engine's split finds it too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


class StreamMLP(pl.LightningModule):
    """16 -> 128 -> 128 -> dropout -> 10: the MC pass runs its head K times after one shared trunk."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            Float(),
            nn.Linear(features, 128),
            nn.ReLU(),
            nn.Linear(128, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def write_pool(folder: Path, items: int, features: int, chunk_items: int) -> float:
    """Write ``items`` random items as litdata chunks under ``folder`` (kept for the next run); returns seconds."""
    from litdata.streaming.writer import BinaryWriter

    start = time.perf_counter()
    writer = BinaryWriter(str(folder), chunk_size=chunk_items)
    generator = torch.Generator().manual_seed(0)
    block = 65_536
    for first in range(0, items, block):
        count = min(block, items - first)
        inputs = torch.randn(count, features, generator=generator).half()
        targets = torch.randint(CLASSES, (count,), generator=generator).tolist()
        for offset in range(count):
            writer[first + offset] = (inputs[offset], targets[offset])
    writer.done()
    writer.merge()
    return time.perf_counter() - start


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--chunk-items", type=int, default=65_536, help="items per litdata chunk")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--folder", type=Path, help="where the chunks are written (kept and reused if it has them)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    scratch = None
    if args.folder is None:
        scratch = Path(tempfile.mkdtemp(prefix="streamed-pool-"))
        args.folder = scratch
    try:
        if (args.folder / "index.json").exists():
            print(f"reusing the chunks in {args.folder}")
        else:
            args.folder.mkdir(parents=True, exist_ok=True)
            seconds = write_pool(args.folder, args.items, args.features, args.chunk_items)
            print(f"wrote {args.items} items in {seconds:.1f} s ({args.items / seconds:,.0f} items/s)")
        run(args)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def run(args: argparse.Namespace) -> None:
    pool = StreamedDataset(str(args.folder))
    pl.seed_everything(0, verbose=False)
    dm = ActiveDataModule(pool, initial_labels=20, num_classes=CLASSES, batch_size=20, pool_batch_size=args.batch_size)
    model = StreamMLP(args.features)
    rss_start = peak_rss_mib()
    print(
        f"streamed pool: {len(pool):,} items of {args.features} float16 in {pool.chunk_starts.numel() - 1} chunks,"
        f" {args.device}, batch {args.batch_size}, BALD, K={args.iterations}"
    )

    # The read alone: what the stream costs before any model runs.
    start = time.perf_counter()
    for _ in dm.pool_dataloader():
        pass
    read_seconds = time.perf_counter() - start

    # One eval pass of the same model over the same loader: the floor that the MC pass is compared with.
    device = torch.device(args.device)
    model.to(device).eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.inference_mode():
        for inputs, _ in dm.pool_dataloader():
            model(inputs.to(device, non_blocking=True)).argmax(-1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    eval_seconds = time.perf_counter() - start
    rss_eval = peak_rss_mib()
    model.cpu().train()

    callback = ActiveLearningCallback("bald", query_size=10, iterations=args.iterations, seed=0)
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        max_epochs=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    pass_seconds = callback.history[-1]["active/pool_pass_seconds"]
    scored = len(pool) - 20
    print(f"read only:               {read_seconds:8.1f} s  {scored / read_seconds:12,.0f} items/s")
    print(f"eval pass:               {eval_seconds:8.1f} s  {scored / eval_seconds:12,.0f} items/s")
    print(f"pool pass (callback):    {pass_seconds:8.1f} s  {scored / pass_seconds:12,.0f} items/s")
    print(f"pool pass / eval pass:   {pass_seconds / eval_seconds:8.2f}x")
    per_item = {"read": read_seconds, "eval pass": eval_seconds, "pool pass": pass_seconds}
    print("per item: " + ", ".join(f"{name} {seconds / scored * 1e6:.2f} us" for name, seconds in per_item.items()))
    print(
        f"peak resident memory: {rss_start:,.0f} MiB at the start, {rss_eval:,.0f} MiB after the eval pass,"
        f" {peak_rss_mib():,.0f} MiB after the pool pass"
    )
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
