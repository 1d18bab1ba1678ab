"""Cost of an active learning step inside the callback, beyond the MC pass and the heuristic.

Workload of the MC issue: the MNIST CNN of Gal et al. 2017, a pool of 10,000 random 1x28x28 inputs, pool batch 256,
K=20, BALD, 2 CPU threads. It prints, in one run:

- the bare pool pass: `mc_batches` + `BALD.score` + top-k over the pool, outside Lightning (the baseline);
- the whole step as the callback runs it (sharding, gathering, selection, broadcast, labelling, logging) and the
  rebuild of the train loader that follows, and the overhead of both over the bare pass (target: under 10% of the step);
- the pool pass with 1 process and with 2 DDP processes on the CPU (`--ddp`).

    python -m benchmarks.callback_step [--pool 10000] [--ddp]     # from the repository root
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.experiments import gal_cnn
from lightning_bal.heuristics import BALD
from lightning_bal.mc import mc_batches


class Model(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = gal_cnn()  # the Gal et al. 2017 CNN, as in the MNIST example

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)  # the weights stay put: every run scores the same model


class StepTimer(Callback):
    """Wall time of the callback's `on_train_epoch_end` (the step) and of the next train-loader rebuild."""

    def __init__(self, datamodule: ActiveDataModule) -> None:
        self.step_seconds: list[float] = []
        self.rebuild_seconds: list[float] = []
        original = datamodule.train_dataloader

        def timed():
            start = time.perf_counter()
            loader = original()
            self.rebuild_seconds.append(time.perf_counter() - start)
            return loader

        datamodule.train_dataloader = timed  # type: ignore[method-assign]

    def on_train_epoch_end(self, trainer, pl_module):
        # Callbacks run in list order: this one is placed before and after the active learning callback.
        self.step_seconds.append(time.perf_counter())


class WritePoolPass(Callback):
    """Spawned processes return nothing: rank zero writes its pool-pass time to a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_fit_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            callback = next(c for c in trainer.callbacks if isinstance(c, ActiveLearningCallback))
            Path(self.path).write_text(json.dumps(callback.history[0]))


def datamodule(pool: int) -> ActiveDataModule:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(pool + 20, 1, 28, 28, generator=generator)
    targets = torch.arange(pool + 20) % 10
    return ActiveDataModule(TensorDataset(inputs, targets), initial_labels=20, pool_batch_size=256, seed=0)


def bare_pass(model: nn.Module, dm: ActiveDataModule, iterations: int) -> float:
    start = time.perf_counter()
    scores = [BALD().score(lp) for _, lp in mc_batches(model, dm.pool_dataloader(), iterations, seed=0)]
    torch.topk(torch.cat(scores), 10)
    return time.perf_counter() - start


def callback_step(dm: ActiveDataModule, iterations: int, devices: int = 1) -> tuple[float, float, float]:
    output = tempfile.mktemp(suffix=".json")
    callback = ActiveLearningCallback(BALD(), query_size=10, iterations=iterations, seed=0)
    # The timer patches the datamodule with a closure, which `ddp_spawn` cannot pickle: time steps in one process only.
    timer = StepTimer(dm) if devices == 1 else None
    timed = [timer, callback, timer] if timer is not None else [callback]
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        max_epochs=2,
        limit_train_batches=1,
        callbacks=[*timed, WritePoolPass(output)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Model(), datamodule=dm)
    pool_pass = json.loads(Path(output).read_text())["active/pool_pass_seconds"]
    if timer is None:
        return float("nan"), pool_pass, float("nan")
    return timer.step_seconds[1] - timer.step_seconds[0], pool_pass, timer.rebuild_seconds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ddp", action="store_true", help="also time the pool pass with 2 DDP processes on the CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pl.seed_everything(0, verbose=False)

    dm = datamodule(args.pool)
    model = Model()
    bare_pass(model, dm, 2)  # warm-up
    bare = min(bare_pass(model, dm, args.iterations) for _ in range(2))
    step, pool_pass, rebuild = callback_step(datamodule(args.pool), args.iterations)
    overhead = (step + rebuild - bare) / (step + rebuild)
    print(f"pool of {args.pool}, K={args.iterations}, {torch.get_num_threads()} threads")
    print(f"bare MC pass + BALD + top-k        {bare:8.3f} s")
    print(f"callback step (whole)              {step:8.3f} s   (of which pool pass {pool_pass:.3f} s)")
    print(f"train loader rebuild after it      {rebuild * 1000:8.1f} ms")
    verdict = "PASS" if overhead < 0.10 else "FAIL"
    print(f"overhead beyond the bare pass      {overhead * 100:8.1f} %  of the step  [{verdict}: target < 10%]")
    if args.ddp:
        # Lightning gives each of the 2 CPU processes cpu_count // 2 threads.
        _, ddp_pool_pass, _ = callback_step(datamodule(args.pool), args.iterations, devices=2)
        print(f"pool pass, 1 process               {pool_pass:8.3f} s")
        print(f"pool pass, 2 DDP processes (gloo)  {ddp_pool_pass:8.3f} s   ratio {pool_pass / ddp_pool_pass:.2f}x")


if __name__ == "__main__":
    main()
