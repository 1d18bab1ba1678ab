"""Active learning for semantic segmentation on real pixels: MNIST digits placed on a larger canvas.

    python examples/segmentation.py --heuristics bald random

Each image is a 48x48 canvas with one 28x28 MNIST digit at a seeded random position; each pixel is labelled
background (0) or the digit's class plus one (1..10) where the digit's ink is above one half. The data are the real
MNIST files in ``../shared/data/mnist`` (or ``--mnist``; nothing is downloaded). A small encoder-decoder with
``Dropout2d`` outputs ``[B, 11, 48, 48]`` logits; BALD scores each pixel and reduces the pixel scores of an image
with ``--reduction`` (``mean``, ``sum``, ``max`` or ``topq``). ``SegmentationIoU`` logs the validation mean IoU
against the number of labelled images (TensorBoard under ``outputs/segmentation``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import SegmentationIoU
from lightning_bal.experiments import load_mnist
from lightning_bal.heuristics import get_heuristic

NUM_CLASSES = 11  # background and the ten digits
CANVAS = 48


def place_on_canvas(digits: TensorDataset, count: int, seed: int, canvas: int = CANVAS) -> TensorDataset:
    """``count`` segmentation items ``(image [1, canvas, canvas], class map [canvas, canvas])`` from MNIST digits.

    Example:
        >>> digits = TensorDataset(torch.ones(3, 1, 28, 28), torch.tensor([4, 0, 9]))
        >>> images, maps = place_on_canvas(digits, 2, seed=0).tensors
        >>> images.shape, maps.shape, sorted(maps.unique().tolist())
        (torch.Size([2, 1, 48, 48]), torch.Size([2, 48, 48]), [0, 5, 10])
    """
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(digits), generator=generator)[:count]
    images = torch.zeros(len(chosen), 1, canvas, canvas)
    maps = torch.zeros(len(chosen), canvas, canvas, dtype=torch.long)
    for row, index in enumerate(chosen.tolist()):
        digit, label = digits[index]
        top, left = torch.randint(0, canvas - 27, (2,), generator=generator).tolist()
        images[row, :, top : top + 28, left : left + 28] = digit
        ink = digit[0] > 0.5
        maps[row, top : top + 28, left : left + 28][ink] = int(label) + 1
    return TensorDataset(images, maps)


class DigitSegmenter(pl.LightningModule):
    """A two-level encoder-decoder; ``Dropout2d`` in the bottleneck and the decoder is the MC-Dropout posterior."""

    def __init__(self, width: int = 16, dropout: float = 0.2, lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        # One nn.Sequential: the MC engine runs the encoder once per batch and only the layers after the first
        # dropout K times.
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.Dropout2d(dropout),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(2 * width, width, 3, padding=1),
            nn.ReLU(),
            nn.Dropout2d(dropout),
            nn.Conv2d(width, NUM_CLASSES, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, maps = batch
        loss = F.cross_entropy(self(images), maps)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def run(
    heuristic: str = "bald",
    reduction: str = "mean",
    mnist: str | Path | None = None,
    pool_size: int = 1000,
    val_size: int = 200,
    initial: int = 10,
    query_size: int = 10,
    steps: int = 10,
    epochs_per_step: int = 5,
    iterations: int = 10,
    seed: int = 0,
    output_dir: str | Path = "outputs/segmentation",
    logger: bool = True,
) -> dict[str, float]:
    """One active learning run; returns the last step's figures (``active/val_miou``, ``active/num_labelled``...)."""
    pl.seed_everything(seed, workers=True)
    train_digits, test_digits = load_mnist(mnist)
    datamodule = ActiveDataModule(
        place_on_canvas(train_digits, pool_size, seed),
        val_dataset=place_on_canvas(test_digits, val_size, seed + 1),
        initial_labels=initial,
        batch_size=8,
        train_samples_per_epoch=64,
        pool_batch_size=64,
        seed=seed,
    )
    kwargs = {} if heuristic == "random" else {"reduction": reduction}
    callback = ActiveLearningCallback(
        get_heuristic(heuristic, **kwargs),
        query_size=query_size,
        iterations=iterations,
        every_n_epochs=epochs_per_step,
        label_budget=initial + steps * query_size,
        evaluations=[SegmentationIoU(NUM_CLASSES, split="val")],
    )
    trainer = pl.Trainer(
        max_epochs=-1,
        callbacks=[callback],
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        default_root_dir=str(output_dir),
        logger=TensorBoardLogger(str(output_dir), name=f"{heuristic}_{reduction}") if logger else False,
    )
    trainer.fit(DigitSegmenter(), datamodule=datamodule)
    return {key: float(value) for key, value in callback.history[-1].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heuristics", nargs="+", default=["bald", "random"])
    parser.add_argument("--reduction", default="mean", choices=["mean", "sum", "max", "topq"])
    parser.add_argument("--mnist", default=None, help="folder of the MNIST IDX files (default: $LIGHTNING_BAL_MNIST)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="outputs/segmentation")
    args = parser.parse_args()
    for name in args.heuristics:
        figures = run(name, args.reduction, args.mnist, steps=args.steps, seed=args.seed, output_dir=args.output_dir)
        print(name, {k: round(v, 4) for k, v in figures.items() if "val" in k or "labelled" in k})


if __name__ == "__main__":
    main()
