"""The digits quick start on several devices with DDP: nothing changes but the Trainer's arguments.

    python -m examples.ddp --accelerator cpu --devices 2      # two processes on a laptop
    python -m examples.ddp --accelerator gpu --devices 4      # four GPUs

Run it from the repository root. ``strategy="ddp"`` starts the other ranks by running this same command again, so
everything runs under ``if __name__ == "__main__":``. Each rank scores its own shard of the pool, the selection is made
once on rank zero and broadcast, and every rank labels the same samples; the curve is printed by rank zero.
"""

from __future__ import annotations

import argparse
import logging
import warnings

import torch

from examples.digits_quickstart import DigitsCNN
from lightning_bal.experiments import PaperProtocol, load_digits

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (``--help`` lists them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    parser.add_argument("--devices", type=int, default=2, help="processes (one per device)")
    parser.add_argument("--heuristic", default="power_bald", help="default: docs/choosing.md's for 10 per step")
    parser.add_argument("--initial-labels", type=int, default=20)
    parser.add_argument("--query-size", type=int, default=10)
    parser.add_argument("--budget", type=int, default=150, help="stop once this many samples are labelled")
    parser.add_argument("--iterations", type=int, default=20, help="MC samples K")
    parser.add_argument("--epochs-per-step", type=int, default=5)
    parser.add_argument("--samples-per-epoch", type=int, default=2048, help="over all ranks together")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[tuple[int, float]]:
    """Run the digits active learning loop under DDP; returns the curve on rank zero, ``[]`` on the other ranks."""
    args = parse_args(argv)
    train_set, test_set = load_digits(args.seed)
    protocol = PaperProtocol(
        budget=args.budget,
        initial_labels=args.initial_labels,
        query_size=args.query_size,
        iterations=args.iterations,
        epochs_per_step=args.epochs_per_step,
        samples_per_epoch=args.samples_per_epoch,
    )
    experiment = protocol.experiment(
        [args.heuristic],
        [args.seed],
        model=lambda seed: DigitsCNN(),
        datasets=lambda seed: (train_set, test_set),
        trainer={"accelerator": args.accelerator, "devices": args.devices, "strategy": "ddp"},
    )
    curve = experiment.run().curves()[args.heuristic][args.seed]  # rank zero's; empty on the other ranks
    # Lightning leaves the process group open; closing it lets each rank's gloo threads finish before the interpreter
    # exits (a rank could otherwise abort at exit: "terminate called without an active exception").
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if curve:
        print(f"{args.heuristic} on {args.devices} devices, (labelled, test accuracy):")
        print(", ".join(f"({n}, {acc:.3f})" for n, acc in curve))
    return curve


if __name__ == "__main__":
    # Lightning's own noise, not this run's: its logger advertisement on every fit, and the torch deprecation its
    # CombinedLoader triggers with recent torch. Set here, in the script: a library leaves the filters to its user.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "💡 Tip" not in r.getMessage())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning)
    main()
