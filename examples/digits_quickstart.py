"""Quick start: active learning on scikit-learn's bundled digits, BALD against Random, in a few minutes on a CPU.

    python examples/digits_quickstart.py

It trains a small CNN with dropout, adds one `ActiveLearningCallback` to a plain Lightning `Trainer`, and writes
TensorBoard logs (`tensorboard --logdir outputs/quickstart`), a CSV of the curves and a PNG of test accuracy against
the number of labelled samples, one line per heuristic.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback


def digits(seed: int = 0, test_size: int = 500) -> tuple[TensorDataset, TensorDataset]:
    """The 1,797 8x8 digits as `(image [1, 8, 8], label)`, split into a training pool and a held-out test set."""
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    test, train = order[:test_size], order[test_size:]
    train_set = TensorDataset(images[train], labels[train])
    train_set.targets = labels[train]  # type: ignore[attr-defined]
    return train_set, TensorDataset(images[test], labels[test])


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


def run(heuristic: str, args: argparse.Namespace) -> list[tuple[int, float]]:
    """One active learning run; returns (labelled samples, test accuracy) after each step."""
    pl.seed_everything(args.seed, verbose=False)
    train_set, test_set = digits(args.seed)
    datamodule = ActiveDataModule(
        train_set,
        val_dataset=test_set,
        initial_labels=args.initial_labels,
        balanced_initial=True,
        batch_size=64,
        # A few dozen labels are a handful of batches: draw a fixed number of samples per epoch instead.
        train_samples_per_epoch=args.samples_per_epoch,
        seed=args.seed,
    )
    callback = ActiveLearningCallback(
        heuristic,
        query_size=args.query_size,
        iterations=args.iterations,
        every_n_epochs=args.epochs_per_step,
        reset_weights=True,
        label_budget=args.budget,
        seed=args.seed,
    )
    trainer = pl.Trainer(
        max_epochs=-1,  # run until the callback stops training: once `label_budget` is spent
        callbacks=[callback],
        logger=TensorBoardLogger(args.out / "tensorboard", name=heuristic),
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=args.epochs_per_step,
        accelerator="auto",
        devices=1,
    )
    trainer.fit(DigitsCNN(), datamodule=datamodule)
    return [(int(h["active/num_labelled"]), h["active/val_acc"]) for h in callback.history]


def plot(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(*zip(*curve, strict=True), marker="o", markersize=3, label=name)
    ax.set_xlabel("labelled samples")
    ax.set_ylabel("test accuracy")
    ax.set_title("Active learning on scikit-learn digits")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def area_under_curve(curve: list[tuple[int, float]]) -> float:
    """Mean accuracy over the labelled range (trapezoids), so curves of the same range compare directly."""
    xs, ys = zip(*curve, strict=True)
    area = sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:], strict=False))
    return area / (xs[-1] - xs[0])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heuristics", nargs="+", default=["bald", "random"])
    parser.add_argument("--initial-labels", type=int, default=20)
    parser.add_argument("--query-size", type=int, default=10)
    parser.add_argument("--budget", type=int, default=150, help="stop once this many samples are labelled")
    parser.add_argument("--iterations", type=int, default=20, help="MC samples K")
    parser.add_argument("--epochs-per-step", type=int, default=5)
    parser.add_argument("--samples-per-epoch", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/quickstart"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, list[tuple[int, float]]]:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    curves = {}
    for heuristic in args.heuristics:
        start = time.perf_counter()
        curves[heuristic] = run(heuristic, args)
        print(f"{heuristic}: {len(curves[heuristic])} steps in {time.perf_counter() - start:.1f} s")
    with (args.out / "curves.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["heuristic", "labelled", "test_accuracy"])
        writer.writerows((name, n, f"{acc:.4f}") for name, curve in curves.items() for n, acc in curve)
    plot(curves, args.out / "curve.png")
    for name, curve in curves.items():
        labels, accuracy = curve[-1]
        print(
            f"{name:>10}: accuracy {accuracy:.3f} at {labels} labels, mean over the curve {area_under_curve(curve):.3f}"
        )
    print(
        f"Wrote {args.out / 'curve.png'}, {args.out / 'curves.csv'} and TensorBoard logs in {args.out / 'tensorboard'}"
    )
    return curves


if __name__ == "__main__":
    main()
