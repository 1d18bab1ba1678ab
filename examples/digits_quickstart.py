"""Quick start: active learning on scikit-learn's bundled digits, PowerBALD against Random over 5 seeds, on a CPU.

    python examples/digits_quickstart.py

It trains a small CNN with dropout, adds one `ActiveLearningCallback` to a plain Lightning `Trainer`, and compares the
heuristics with `lightning_bal.experiments.Experiment`: each seed starts every heuristic from the same initial labels
and weights, so the statistic is the paired difference to Random on each seed. It writes a CSV of the curves, a PNG
of test accuracy against the number of labelled samples (the mean over seeds and its min-max band, one colour per
heuristic), a PNG with those curves beside PowerBALD minus Random (the mean over seeds and its 95% t interval, with the
zero line), the tables, and TensorBoard logs (`tensorboard --logdir outputs/quickstart/tensorboard`, tab Custom
Scalars: every run's curve on one chart).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from lightning_bal import ActiveDataModule
from lightning_bal.experiments import (
    Curve,
    Experiment,
    ExperimentResult,
    load_digits,
    paired_comparison,
    paired_table,
    plot_paired,
)


class DigitsCNN(pl.LightningModule):
    """Two convolutions, then dropout before each dense layer (the MC-Dropout posterior of Gal et al. 2017)."""

    def __init__(self, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        # One nn.Sequential: the MC engine runs the deterministic convolutions once and only the head K times.
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),
            nn.Linear(32 * 3 * 3, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        # With `ActiveDataModule(return_weights="lure")` each sample comes with its importance weight.
        x, y, *weight = batch
        losses = F.cross_entropy(self(x), y, reduction="none")
        loss = (losses * weight[0]).mean() if weight else losses.mean()
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def experiment(args: argparse.Namespace) -> Experiment:
    """PowerBALD against Random (or ``--heuristics``) on every seed of ``--seeds``."""
    train_set, test_set = load_digits(seed=0)
    return Experiment(
        args.heuristics,
        args.seeds,
        model=lambda seed: DigitsCNN(),
        # `seed` draws the initial labels: every heuristic of a seed starts from the same ones.
        datamodule=lambda seed: ActiveDataModule(
            train_set,
            val_dataset=test_set,  # validated once per step: `val_acc` is the active learning curve
            initial_labels=args.initial_labels,
            balanced_initial=True,
            batch_size=64,
            # A few dozen labels are a handful of batches: draw a fixed number of samples per epoch instead.
            train_samples_per_epoch=args.samples_per_epoch,
            seed=seed,
        ),
        callback={
            "query_size": args.query_size,
            "iterations": args.iterations,
            "every_n_epochs": args.epochs_per_step,
            "reset_weights": True,
            "label_budget": args.budget,  # the trainer runs until it is spent (`max_epochs=-1`)
        },
        trainer={
            "check_val_every_n_epoch": args.epochs_per_step,
            # An epoch is `samples_per_epoch` samples in batches of 64: log within each one.
            "log_every_n_steps": max(1, min(50, args.samples_per_epoch // 64)),
            "accelerator": "auto",
            "devices": 1,
            # Progress bars redraw in place on a terminal; piped into a file they would be thousands of lines.
            "enable_progress_bar": sys.stdout.isatty(),
        },
        metric="active/val_acc",
        log_dir=args.out / "tensorboard",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # PowerBALD: the default of docs/choosing.md for small query sizes, measured against the other heuristics on MNIST.
    parser.add_argument("--heuristics", nargs="+", default=["power_bald", "random"])
    # 5 seeds: enough for the interval of the paired difference to say whether it beats Random here (2 are not).
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--initial-labels", type=int, default=20)
    parser.add_argument("--query-size", type=int, default=10)
    parser.add_argument("--budget", type=int, default=120, help="stop once this many samples are labelled")
    parser.add_argument("--iterations", type=int, default=20, help="MC samples K")
    parser.add_argument("--epochs-per-step", type=int, default=4)
    parser.add_argument("--samples-per-epoch", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=Path("outputs/quickstart"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, dict[int, Curve]]:
    """Run the experiment, write ``curves.csv``, ``curve.png``, ``paired.png``, ``summary.md``; returns the curves."""
    args = parse_args(argv)

    def progress(heuristic: str, seed: int, result: ExperimentResult, seconds: float) -> None:
        print(f"{heuristic} seed {seed}: {len(result.histories[heuristic][seed])} steps in {seconds:.1f} s", flush=True)

    result = experiment(args).run(on_run=progress)
    result.write_csv(args.out / "curves.csv", columns={"test_accuracy": "active/val_acc"})
    # Name what the figure draws on the figure itself: a band with no name could be read as a confidence interval.
    if len(set(args.seeds)) > 1:
        band = f"line: mean over {len(set(args.seeds))} seeds, band: min to max over the seeds"
    else:
        band = "one seed, no band"
    result.plot(args.out / "curve.png", title=f"Active learning on scikit-learn digits\n{band}", ylabel="test accuracy")
    summary = result.summary(thresholds=(0.9,))
    written = [args.out / "curve.png", args.out / "curves.csv", args.out / "summary.md"]
    baseline = "random"
    if baseline in args.heuristics and len(args.heuristics) > 1 and len(set(args.seeds)) > 1:
        comparisons = paired_comparison(result, baseline, target=0.9)
        summary += "\n\n" + paired_table(comparisons)
        title = f"Active learning on scikit-learn digits, {len(set(args.seeds))} seeds"
        written.append(
            plot_paired(comparisons, args.out / "paired.png", result=result, title=title, ylabel="test accuracy")
        )
    (args.out / "summary.md").write_text(summary + "\n")
    print(summary)
    print(f"{args.out / 'curve.png'}: test accuracy against labelled samples, one colour per heuristic; {band}")
    print(f"Wrote {', '.join(str(path) for path in written)} and TensorBoard logs in {args.out / 'tensorboard'}")
    return result.curves()


if __name__ == "__main__":
    # Lightning's own noise, not this run's: its logger advertisement on every fit, and the torch deprecation its
    # CombinedLoader triggers with recent torch. Set here, in the script: a library leaves the filters to its user.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "💡 Tip" not in r.getMessage())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning)
    main()
