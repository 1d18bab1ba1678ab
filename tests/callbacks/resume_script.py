"""A run that the resume tests start in a fresh process, optionally killed with SIGKILL at a chosen moment.

Usage: python -m tests.callbacks.resume_script ROOT MAX_EPOCHS OUT [--ckpt PATH]
    [--kill-after-pool-reads N | --kill-at-train-batch N | --kill-in-checkpoint N]

The kill comes in the middle of a pool pass (the N-th pool read), in training (at the N-th training batch), or while
the N-th checkpoint file is being written (half of its bytes on disk).
"""

import argparse
import os
import signal
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import Dataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from tests.helpers.models import blobs
from tests.helpers.runs import SeededDropoutClassifier


class KillingPool(Dataset):
    """Reads the training data for the pool and kills its own process at the N-th read."""

    def __init__(self, data, kill_after):
        self.data, self.kill_after, self.reads = data, kill_after, 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        self.reads += 1
        if self.kill_after is not None and self.reads > self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.data[index]


class KillAtTrainBatch(Callback):
    def __init__(self, batch):
        self.batch, self.seen = batch, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen += 1
        if self.batch is not None and self.seen >= self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


class KillingCheckpoint(ModelCheckpoint):
    """Writes the N-th checkpoint half-way, then dies: a torn file, as a power cut would leave."""

    def __init__(self, kill_at, **kwargs):
        super().__init__(**kwargs)
        self.kill_at, self.saves = kill_at, 0

    def _save_checkpoint(self, trainer, filepath):
        self.saves += 1
        if self.kill_at is not None and self.saves >= self.kill_at:
            trainer.save_checkpoint(filepath + ".whole")
            data = Path(filepath + ".whole").read_bytes()
            with open(filepath, "wb") as handle:
                handle.write(data[: len(data) // 2])
            os.remove(filepath + ".whole")
            os.kill(os.getpid(), signal.SIGKILL)
        super()._save_checkpoint(trainer, filepath)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("max_epochs", type=int)
    parser.add_argument("out")
    parser.add_argument("--kill-after-pool-reads", type=int)
    parser.add_argument("--kill-at-train-batch", type=int)
    parser.add_argument("--kill-in-checkpoint", type=int)
    parser.add_argument("--ckpt")
    args = parser.parse_args()

    pl.seed_everything(0)
    data = blobs(90)
    dm = ActiveDataModule(
        data,
        val_dataset=blobs(30, seed=1),
        pool_dataset=KillingPool(data, args.kill_after_pool_reads),
        initial_labels=6,
        batch_size=16,
        pool_batch_size=8,
        seed=0,
    )
    callback = ActiveLearningCallback("bald", query_size=4, iterations=5, reset_weights=True, seed=11)
    checkpoint = KillingCheckpoint(
        args.kill_in_checkpoint,
        dirpath=os.path.join(args.root, "ckpt"),
        save_last=True,
        save_top_k=-1,
        every_n_epochs=1,
    )
    trainer = pl.Trainer(
        max_epochs=args.max_epochs,
        callbacks=[callback, checkpoint, KillAtTrainBatch(args.kill_at_train_batch)],
        default_root_dir=args.root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(SeededDropoutClassifier(), datamodule=dm, ckpt_path=args.ckpt)
    torch.save({"acquired_at": dm.acquired_at, "steps_done": callback.steps_done}, args.out)


if __name__ == "__main__":
    main()
