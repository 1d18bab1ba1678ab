"""Training commands for `lightning-bal serve` in the tests: one step of the run, resumed from a checkpoint.

Usage: python -m tests.annotation.serve_train CHECKPOINT OUTPUT [--run ROOT [--prefix P]] [--fail] [--wait-for FILE]

Without ``--run`` it stands in for a training on the label state alone (the small checkpoints of the bad-input
tests): the next query is the unanswered items and the first two items of the pool, with a score and a guess each.
With ``--run ROOT`` it resumes the real run of tests/annotation/annotation_script.py one step and copies the
checkpoint it writes to OUTPUT (its tasks' data references start with ``--prefix``). ``--wait-for`` holds the
training until the file exists (answers arrive meanwhile).
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

from lightning_bal.annotation.checkpoint import load_label_state

NAMES = ["zero", "one", "two"]


def label_state_step(checkpoint: str, output: str) -> None:
    state = load_label_state(checkpoint)
    ledger = state.ledger
    pending = list(ledger.pending_query)
    fresh = [i for i in ledger.pool_indices.tolist() if i not in pending][:2]
    ledger.query(pending + fresh, new_step=True)
    annotator = state.callback_state.setdefault("annotator", {})
    queried = [str(state.ids[i]) for i in pending + fresh]
    annotator["scores"] = {item: 0.5 + 0.1 * rank for rank, item in enumerate(queried)}
    annotator["predictions"] = {item: [rank % 3, 0.6] for rank, item in enumerate(queried)}
    state.checkpoint.pop("lightning_bal_serve", None)  # a training's checkpoint is written afresh by Lightning
    state.checkpoint[state.key] = {**state.checkpoint[state.key], **ledger.state_dict()}
    torch.save(state.checkpoint, output)


def run_step(root: str, checkpoint: str, output: str, prefix: str) -> None:
    from lightning_bal.annotation import QueryFiles
    from tests.annotation.annotation_script import run_round

    annotator = QueryFiles("label_studio", predictions=True, label_names=NAMES, data_prefix=prefix)
    datamodule, _, _ = run_round(root, ckpt=checkpoint, annotator=annotator)
    shutil.copyfile(Path(root) / f"annotation/annotation-step{datamodule.step:03d}.ckpt", output)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("output")
    parser.add_argument("--run")
    parser.add_argument("--prefix", default="")
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--wait-for")
    args = parser.parse_args()
    deadline = time.monotonic() + 60
    while args.wait_for and not Path(args.wait_for).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if args.fail:
        sys.exit("training failed on purpose")
    if args.run:
        run_step(args.run, args.checkpoint, args.output, args.prefix)
    else:
        label_state_step(args.checkpoint, args.output)


if __name__ == "__main__":
    main()
