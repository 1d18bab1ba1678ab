"""The pool pass at scale: a large pool through the callback against one eval pass over the same loader.

Workload: N items of 64-d (``--dim``) random inputs, an MLP whose only dropout sits before its last
layer, K=20, BALD, pool batch 4096, one thread by default. It prints, in one run:

- one deterministic eval pass over the datamodule's pool loader (the floor);
- the callback's pool pass (sharding, MC pass, scoring, selection, logging statistics);
- ``--repeats`` pairs of them, alternated within one step, with the median and spread of their CPU seconds;
- their ratio (target: at most 1.9x, and at most 1.2x the multiply-add floor) and the peak RSS growth of each
  (``resource``'s ``ru_maxrss``);
- where the pass's time goes (read, forward, log-softmax, scoring, selection, statistics and gathers), timed by
  wrapping the callables the pass calls: a few clock reads per batch.

``--memmap PATH`` writes the pool to a float16 numpy memmap at ``PATH`` (once; reused when the file already has
the right size) and scores it from disk: a pool larger than memory, with the ledger's state in O(N) integers.

    python -m benchmarks.scale --pool 1000000                                    # from the repository root
    python -m benchmarks.scale --pool 10000000 --dim 16 --memmap pool.f16        # 10^7 items from disk
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.data.views import PoolView, default_input_fn


class ToFloat(nn.Module):
    """Inputs stored in half precision (a float16 memmap) are computed in float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


class MLP(pl.LightningModule):
    """Three hidden layers; the only dropout sits before the last layer, so only that layer runs K times."""

    def __init__(self, dim: int, hidden: int = 256, classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            ToFloat(),
            nn.Linear(dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).sum() * 0.0  # the weights stay put: only the pool pass is timed

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pool_dataset(pool: int, dim: int, memmap: str | None) -> TensorDataset | np.memmap:
    if memmap is None:
        generator = torch.Generator().manual_seed(0)
        return TensorDataset(torch.randn(pool, dim, generator=generator), torch.arange(pool) % 10)
    path = Path(memmap)
    if not path.exists() or path.stat().st_size != pool * dim * 2:
        data = np.memmap(path, dtype=np.float16, mode="w+", shape=(pool, dim))
        rng = np.random.default_rng(0)
        for start in range(0, pool, 2**20):  # written a chunk at a time: never the whole pool in memory
            stop = min(start + 2**20, pool)
            data[start:stop] = rng.standard_normal((stop - start, dim), dtype=np.float32)
        data.flush()
        del data
    return np.memmap(path, dtype=np.float16, mode="r", shape=(pool, dim))


def synced_wall() -> float:
    """Wall seconds once the GPU has finished its queued work: the clock of ``--accelerator gpu``."""
    torch.cuda.synchronize()
    return time.perf_counter()


#: The clock of the figures: CPU seconds of this process on the CPU (other processes' load does not count).
clock = time.process_time


def eval_pass(model: nn.Module, loader) -> tuple[float, float]:
    """Wall and ``clock`` seconds of one deterministic pass over ``loader`` (inputs moved to the model's device)."""
    model.eval()
    device = next(model.parameters()).device
    wall, cpu = time.perf_counter(), clock()
    with torch.inference_mode():
        for inputs, _ in loader:
            model(inputs.to(device, non_blocking=True))
    return time.perf_counter() - wall, clock() - cpu


class Stopwatch:
    """``clock`` seconds spent inside the wrapped callables, by part: a few clock reads per batch."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, part: str, fn):
        def timed(*args, **kwargs):
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] = self.seconds.get(part, 0.0) + clock() - start

        return timed

    def loader(self, part: str, make_loader):
        """``make_loader``, whose loaders count the time spent fetching each batch under ``part``."""
        watch = self

        class TimedLoader:
            def __init__(self, loader) -> None:
                self.loader = loader

            def __len__(self) -> int:
                return len(self.loader)

            def __iter__(self):
                batches = iter(self.loader)
                while True:
                    start = clock()
                    batch = next(batches, None)
                    watch.seconds[part] = watch.seconds.get(part, 0.0) + clock() - start
                    if batch is None:
                        return
                    yield batch

        return lambda *args, **kwargs: TimedLoader(make_loader(*args, **kwargs))


def alternate(callback: ActiveLearningCallback, model: nn.Module, dm: ActiveDataModule, repeats: int) -> list[dict]:
    """Inside the callback's step: ``repeats`` x (one eval pass, one timed pool pass), alternated; a dict each."""
    pool_pass, heuristic = callback.pool_pass, callback.pool_pass.heuristic
    run, score_shard = pool_pass.run, pool_pass._score
    rows: list[dict] = []

    def alternated(context):
        result = None
        for _ in range(repeats):
            floor_wall, floor_cpu = eval_pass(model, dm.pool_dataloader())
            watch = Stopwatch()
            # Instance attributes: the pass looks them up per call, so the parts are timed where they run.
            pool_pass._score = watch.wrap("score shard", score_shard)  # type: ignore[method-assign]
            heuristic.transform = watch.wrap("transform", type(heuristic).transform.__get__(heuristic))  # type: ignore[method-assign]
            heuristic.score = watch.wrap("scoring", type(heuristic).score.__get__(heuristic))  # type: ignore[method-assign]
            heuristic.select_sharded = watch.wrap("selection", type(heuristic).select_sharded.__get__(heuristic))  # type: ignore[method-assign]
            context.datamodule.pool_dataloader = watch.loader("read", type(dm).pool_dataloader.__get__(dm))
            wall, cpu = time.perf_counter(), clock()
            result = run(context)
            cpu, wall = clock() - cpu, time.perf_counter() - wall
            del context.datamodule.pool_dataloader
            rows.append({"floor": floor_cpu, "floor wall": floor_wall, "pass": cpu, "pass wall": wall, **watch.seconds})
        return result

    pool_pass.run = alternated  # type: ignore[method-assign]
    return rows


def median_spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="eval pass / pool pass pairs, alternated")
    parser.add_argument("--item-by-item", action="store_true", help="also time an eval pass reading item by item")
    parser.add_argument("--memmap", default=None, help="score a float16 memmap at this path (written if missing)")
    parser.add_argument(
        "--accelerator", choices=["cpu", "gpu"], default="cpu", help="gpu: the model on the GPU, synced wall seconds"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global clock
    if args.accelerator == "gpu":
        clock = synced_wall
    unit = "CPU" if args.accelerator == "cpu" else "GPU-synced wall"
    pl.seed_everything(0, verbose=False)

    rss_start = peak_rss_mib()
    data = pool_dataset(args.pool, args.dim, args.memmap)
    dm = ActiveDataModule(data, initial_labels=20, pool_batch_size=args.batch_size, batch_size=20, seed=0)
    model = MLP(args.dim).to("cuda" if args.accelerator == "gpu" else "cpu")
    rss_data = peak_rss_mib()
    eval_pass(model, dm.pool_dataloader(torch.arange(min(args.pool, 10 * args.batch_size))))  # warm-up
    eval_pass(model, dm.pool_dataloader())
    rss_eval = peak_rss_mib()

    callback = ActiveLearningCallback("bald", query_size=10, iterations=args.iterations, seed=0)
    rows = alternate(callback, model, dm, args.repeats)
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=1,
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    rss_step = peak_rss_mib()
    source = f"float16 memmap {args.memmap}" if args.memmap else "TensorDataset"
    print(
        f"pool {args.pool:,} x {args.dim}-d ({source}), K={args.iterations}, batch {args.batch_size},"
        f" {torch.get_num_threads()} thread(s), {args.accelerator}; {args.repeats} alternated pairs: median (min-max)"
    )
    floors, passes = [r["floor"] for r in rows], [r["pass"] for r in rows]
    ratios = [r["pass"] / r["floor"] for r in rows]
    hidden, classes = 256, 10
    trunk, head = args.dim * hidden + hidden * hidden, hidden * classes
    macs = (trunk + args.iterations * head) / (trunk + head)
    print(f"one eval pass over the pool loader     {median_spread(floors)} s {unit}")
    print(f"callback pool pass (BALD)              {median_spread(passes)} s {unit}")
    print(
        f"wall seconds (eval, pass)              {median_spread([r['floor wall'] for r in rows])}"
        f"  {median_spread([r['pass wall'] for r in rows])}"
    )
    ratio = statistics.median(ratios)
    verdict = "PASS" if ratio <= 1.9 and ratio / macs <= 1.2 else "FAIL"
    print(f"ratio pool pass / eval pass            {median_spread(ratios)}x {unit}  [{verdict}: <= 1.9x]")
    print(
        f"multiply-add floor of the ratio         {macs:6.2f}x  (trunk + K x head) / (trunk + head);"
        f" the pass is {ratio / macs:.2f}x it [<= 1.2x]"
    )
    parts = [
        ("read (pool loader batches)", lambda r: r.get("read", 0.0)),
        (
            "forward (model, K samples, engine)",
            lambda r: r["score shard"] - r.get("read", 0.0) - r["transform"] - r["scoring"],
        ),
        ("log-softmax (output transform)", lambda r: r["transform"]),
        ("scoring (BALD)", lambda r: r["scoring"]),
        ("selection (top-k, merge over ranks)", lambda r: r["selection"]),
        ("statistics and gathers", lambda r: r["pass"] - r["score shard"] - r["selection"]),
    ]
    print(f"where the pool pass's {unit} time goes, in units of one eval pass (median over the pairs):")
    for name, part in parts:
        print(
            f"  {name:38s} {statistics.median(part(r) / r['floor'] for r in rows):6.3f}x"
            f"  {statistics.median(part(r) for r in rows):6.3f} s"
        )
    if args.item_by_item:
        view = PoolView(data, dm.scoring_indices(), default_input_fn)
        old, old_cpu = eval_pass(model, torch.utils.data.DataLoader(view, batch_size=args.batch_size))
        print(f"eval pass reading item by item         {old:8.2f} s wall  {old_cpu:8.2f} s CPU  (the old floor)")
    print(
        f"peak RSS: start {rss_start:.0f} MiB, +{rss_data - rss_start:.0f} MiB data and datamodule,"
        f" +{rss_eval - rss_data:.0f} MiB eval pass, +{rss_step - rss_eval:.0f} MiB callback step"
        f" (the pool's scores and indices: {args.pool * 12 / 2**20:.0f} MiB)"
    )
    row = callback.history[0]
    print(f"selected {int(callback.last_selection.numel())} items; pool score mean {row['active/score_pool_mean']:.4f}")


if __name__ == "__main__":
    main()
