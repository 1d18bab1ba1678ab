"""Active learning on MNIST with the protocol of Gal et al. 2017 and Kirsch et al. 2019.

    python -m examples.mnist --data /path/to/mnist --heuristics power_bald random

Run it from the repository root (``-m`` makes ``examples`` importable). The data are the four gzipped IDX files of
MNIST (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
``t10k-labels-idx1-ubyte.gz``) in the folder given by ``--data`` or by the environment variable
``LIGHTNING_BAL_MNIST``; nothing is downloaded and torchvision is not needed.

Protocol: 20 initial labels balanced over the classes, 10 labels per step, the two-convolution CNN with dropout of
Gal et al. 2017 (``--network gal``) or of Kirsch et al. 2019 (``--network kirsch``), MC-Dropout with K samples, the
weights reset to their initial values after every step, and test accuracy on the 10,000 test images after every step
(``ActiveLearningCallback(evaluations=[TestCurve()])``; nothing is selected on them). With ``--val-size`` each step
trains to convergence, as in the papers: a validation set of that many samples is held out of the training split and
the step runs once validation accuracy has not improved for ``--patience`` epochs of ``--samples-per-epoch`` samples
(``ActiveLearningCallback(convergence=Convergence("val_acc", mode="max"))``), with the best weights restored.
Without it each step trains a fixed budget of ``--epochs-per-step`` such epochs. ``--seeds 0 1 2`` runs every
heuristic on each seed from the same initial labels and weights.

The protocol is :class:`lightning_bal.experiments.PaperProtocol`, the data
:func:`lightning_bal.experiments.load_mnist` and the networks :class:`lightning_bal.experiments.DropoutCNN`; this
script wires them to the command line. The settings of the benchmark's headline run (``benchmarks/README.md``)::

    python -m examples.mnist --data /path/to/mnist --heuristics batchbald bald random --budget 200 \\
        --network kirsch --val-size 1024 --patience 3 --samples-per-epoch 5056
"""

from __future__ import annotations

import argparse
import functools
import logging
import warnings
from pathlib import Path

from lightning_bal.experiments import (
    MNIST_ENV,
    Curve,
    DropoutCNN,
    ExperimentResult,
    add_protocol_arguments,
    load_mnist,
    protocol_from_arguments,
)

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (``--help`` lists them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help=f"folder of the IDX files (default: ${MNIST_ENV})")
    # PowerBALD at 10 labels per step: the default of docs/choosing.md, from the protocol runs on this data.
    parser.add_argument("--heuristics", nargs="+", default=["power_bald", "random"])
    add_protocol_arguments(parser)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="one run per heuristic and seed")
    parser.add_argument("--out", type=Path, default=Path("outputs/mnist"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Curve]:
    """Run each heuristic on MNIST and write ``curves.csv``; returns ``(labelled, test accuracy)`` per step.

    With several ``--seeds`` the curves returned are the first seed's; ``curves.csv`` holds every run.
    """
    args = parse_args(argv)
    train_set, test_set = load_mnist(args.data)
    experiment = protocol_from_arguments(args).experiment(
        args.heuristics,
        args.seeds,
        model=lambda seed: DropoutCNN(args.network),
        datasets=lambda seed: (train_set, test_set),
    )
    result = experiment.run(on_run=functools.partial(_report, args.out))
    print(f"Wrote {args.out / 'curves.csv'}")
    return {name: by_seed[args.seeds[0]] for name, by_seed in result.curves().items()}


def _report(out: Path, heuristic: str, seed: int, result: ExperimentResult, seconds: float) -> None:
    """After each run: print its last point and rewrite the CSV, so an interrupted run keeps what it measured."""
    curve = result.curves()[heuristic][seed]
    labels, accuracy = curve[-1]
    steps = f"{len(curve)} steps in {seconds:.1f} s"
    print(f"{heuristic:>10} seed {seed}: test accuracy {accuracy:.4f} at {labels} labels ({steps})")
    result.write_csv(out / "curves.csv", columns={"test_accuracy": "active/test_acc"})


if __name__ == "__main__":
    # Lightning's own noise, not this run's: its logger advertisement on every fit, and the torch deprecation its
    # CombinedLoader triggers with recent torch. Set here, in the script: a library leaves the filters to its user.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "💡 Tip" not in r.getMessage())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning)
    main()
