"""A run that the resume tests start in a fresh process: optionally killed with SIGKILL in the middle of a pool pass.

Usage: python -m tests.callbacks.resume_script ROOT MAX_EPOCHS OUT [--kill-after-pool-reads N] [--ckpt PATH]
"""

import argparse
import os
import signal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("max_epochs", type=int)
    parser.add_argument("out")
    parser.add_argument("--kill-after-pool-reads", type=int)
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
    checkpoint = ModelCheckpoint(
        dirpath=os.path.join(args.root, "ckpt"), save_last=True, save_top_k=-1, every_n_epochs=1
    )
    trainer = pl.Trainer(
        max_epochs=args.max_epochs,
        callbacks=[callback, checkpoint],
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
