"""One node of a multi-node run: ``Trainer(num_nodes=NODES, devices=DEVICES, strategy="ddp")`` on the CPU, gloo.

Usage: python -m tests.distributed.multinode_script ROOT MAX_EPOCHS OUT --nodes N --devices D [--lr LR]
    [--ckpt PATH] [--pause-after-pool-reads R]

Lightning reads the node's place from the environment (``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK``), as a
cluster or ``torchrun`` would set it, and starts the node's other local ranks itself by running this module again.
With ``--pause-after-pool-reads R``, every process of node 1 writes ``ROOT/paused-<global rank>`` at its R-th pool
read and then waits to be killed: the test kills that node in the middle of a pool pass.
"""

import argparse
import os
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import Dataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from tests.helpers.models import blobs
from tests.helpers.runs import SeededDropoutClassifier

N = 90


class PausingPool(Dataset):
    """The training data, read for the pool; on node 1 the R-th read announces itself and waits for the kill."""

    def __init__(self, data, root, pause_after):
        self.data, self.root, self.pause_after, self.reads = data, root, pause_after, 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        self.reads += 1
        if self.pause_after is not None and os.environ.get("NODE_RANK") == "1" and self.reads >= self.pause_after:
            rank = torch.distributed.get_rank()
            Path(self.root, f"paused-{rank}").write_text(str(os.getpid()))
            time.sleep(600)
        return self.data[index]


class AssertRanksAgree(Callback):
    """After each step every rank holds the same labels, and the ranks' shards covered the pool once."""

    def __init__(self):
        self.pool_before, self.steps_seen = None, 0

    def on_train_epoch_start(self, trainer, pl_module):
        datamodule, world_size = trainer.datamodule, trainer.world_size
        acquired = trainer.strategy.all_gather(datamodule.acquired_at).reshape(world_size, -1)
        assert all(torch.equal(row, acquired[0]) for row in acquired), "ranks disagree on the labelled set"
        al = next(c for c in trainer.callbacks if isinstance(c, ActiveLearningCallback))
        stepped, self.steps_seen = al.steps_done != self.steps_seen, al.steps_done
        if stepped and self.pool_before is not None and al.last_shard is not None:
            lengths = trainer.strategy.all_gather(torch.tensor([al.last_shard.numel()])).reshape(-1).tolist()
            padded = torch.full((max(lengths),), -1, dtype=torch.long)
            padded[: al.last_shard.numel()] = al.last_shard
            shards = trainer.strategy.all_gather(padded).reshape(world_size, -1)
            union = torch.cat([shards[r, :n] for r, n in enumerate(lengths)])
            assert torch.equal(union.sort().values, self.pool_before), "a pool item was scored twice or never"
        self.pool_before = datamodule.pool_indices.clone()


class WriteOutcome(Callback):
    def __init__(self, path):
        self.path = path

    def on_fit_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            al = next(c for c in trainer.callbacks if isinstance(c, ActiveLearningCallback))
            outcome = {"acquired_at": trainer.datamodule.acquired_at.clone(), "steps_done": al.steps_done}
            torch.save({**outcome, "world_size": trainer.world_size}, self.path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("max_epochs", type=int)
    parser.add_argument("out")
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--ckpt")
    parser.add_argument("--pause-after-pool-reads", type=int)
    args = parser.parse_args()
    # Four processes share two cores: more threads each would only slow them all down.
    torch.set_num_threads(1)

    pl.seed_everything(0)
    data = blobs(N)
    dm = ActiveDataModule(
        data,
        val_dataset=blobs(30, seed=1),
        pool_dataset=PausingPool(data, args.root, args.pause_after_pool_reads),
        initial_labels=6,
        batch_size=16,
        pool_batch_size=8,
        seed=0,
    )
    callback = ActiveLearningCallback("bald", query_size=4, iterations=5, reset_weights=True, seed=11)
    checkpoint = ModelCheckpoint(dirpath=os.path.join(args.root, "ckpt"), save_last=True, every_n_epochs=1)
    distributed = args.nodes * args.devices > 1
    trainer = pl.Trainer(
        accelerator="cpu",
        num_nodes=args.nodes,
        devices=args.devices,
        strategy="ddp" if distributed else "auto",
        max_epochs=args.max_epochs,
        callbacks=[callback, checkpoint, WriteOutcome(args.out), *([AssertRanksAgree()] if distributed else [])],
        default_root_dir=args.root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(SeededDropoutClassifier(lr=args.lr), datamodule=dm, ckpt_path=args.ckpt)


if __name__ == "__main__":
    main()
