"""One round of the annotator loop in a fresh process (the tests restart the run between rounds with it).

Usage: python -m tests.annotation.annotation_script ROOT OUT [--ckpt PATH]
"""

import argparse
import json

import lightning.pytorch as pl

from lightning_bal import ActiveLearningCallback
from lightning_bal.annotation import QueryFiles
from tests.helpers.runs import SeededDropoutClassifier, make_datamodule, make_trainer


def run_round(root, ckpt=None, annotator=None):
    """Fit until the next query is written; returns the datamodule, the callback and the trainer."""
    pl.seed_everything(0)
    datamodule = make_datamodule(n=60, initial=6, ids=[f"item{i:02d}" for i in range(60)])
    callback = ActiveLearningCallback("bald", query_size=4, iterations=4, annotator=annotator or QueryFiles("csv"))
    trainer = make_trainer(root, [callback], max_epochs=-1)
    trainer.fit(SeededDropoutClassifier(), datamodule=datamodule, ckpt_path=ckpt)
    return datamodule, callback, trainer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("out")
    parser.add_argument("--ckpt")
    args = parser.parse_args()
    datamodule, callback, trainer = run_round(args.root, args.ckpt)
    summary = {
        "step": datamodule.step,
        "labelled": datamodule.labelled_indices.tolist(),
        "pending": datamodule.pending_query.tolist(),
        "annotations": {str(k): v for k, v in datamodule.annotations.items()},
        "written": [str(p) for p in callback.annotator.written],
        "history": len(callback.history),
        "epoch": trainer.current_epoch,
    }
    with open(args.out, "w") as handle:
        json.dump(summary, handle)


if __name__ == "__main__":
    main()
