"""Active learning for semantic segmentation on real pixels: MNIST digits placed on a larger canvas.

    python examples/segmentation.py --heuristics bald random --seeds 0 1 2 --threads 1

Each image is a 40x40 canvas with one 28x28 MNIST digit at a seeded random position; each pixel is labelled
background (0) or the digit's class plus one (1..10) where the digit's ink is above one half. The data are the real
MNIST IDX files in the folder ``--mnist`` names, else ``$LIGHTNING_BAL_MNIST`` (nothing is downloaded; see
``docs/experiments.md`` for where to get them). A small encoder-decoder with
``Dropout2d`` outputs ``[B, 11, 40, 40]`` logits; BALD scores each pixel and reduces the pixel scores of an image
with ``--reduction`` (``mean``, ``sum``, ``max`` or ``topq``). ``SegmentationIoU`` logs the validation mean IoU
against the number of labelled images (TensorBoard under ``outputs/segmentation/seed<s>/<heuristic>``).
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
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
CANVAS = 40


def place_on_canvas(digits: TensorDataset, count: int, seed: int, canvas: int = CANVAS) -> TensorDataset:
    """``count`` segmentation items ``(image [1, canvas, canvas], class map [canvas, canvas])`` from MNIST digits.

    Example:
        >>> digits = TensorDataset(torch.ones(3, 1, 28, 28), torch.tensor([4, 0, 9]))
        >>> images, maps = place_on_canvas(digits, 2, seed=0).tensors
        >>> images.shape, maps.shape, sorted(maps.unique().tolist())
        (torch.Size([2, 1, 40, 40]), torch.Size([2, 40, 40]), [0, 5, 10])
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


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()]


class Encoder(nn.Module):
    """Features at three scales, brought back to the canvas and stacked: ``[B, 1, H, W]`` to ``[B, 7 * width, H, W]``.

    The full-resolution features say where the ink is; the 1/8-resolution ones see a whole digit (a receptive field
    of 38 pixels) and can say which digit it is. (The single-scale encoder-decoder this example had before saw 10x10
    pixels around each pixel, less than a digit, and its mean IoU stayed near 0.1: see ``benchmarks/README.md``.)

    Example:
        >>> Encoder(width=4)(torch.zeros(2, 1, 40, 40)).shape
        torch.Size([2, 28, 40, 40])
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fine = nn.Sequential(*_conv(1, width))
        self.middle = nn.Sequential(nn.MaxPool2d(2), *_conv(width, 2 * width))
        self.coarse = nn.Sequential(
            nn.MaxPool2d(2), *_conv(2 * width, 4 * width), nn.MaxPool2d(2), *_conv(4 * width, 4 * width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine = self.fine(x)
        middle = self.middle(fine)
        coarse = self.coarse(middle)
        size = x.shape[-2:]
        return torch.cat(
            [
                fine,
                F.interpolate(middle, size=size, mode="bilinear", align_corners=False),
                F.interpolate(coarse, size=size, mode="bilinear", align_corners=False),
            ],
            dim=1,
        )


class DigitSegmenter(pl.LightningModule):
    """A multi-scale encoder and a per-pixel decoder; ``Dropout2d`` in the decoder is the MC-Dropout posterior.

    ``mc_split()`` tells the MC engine that the encoder is deterministic: it runs once per pool batch and only the
    decoder (two 1x1 convolutions) runs K times. The loss weighs background pixels by ``background_weight``: about
    19 in 20 pixels are background, and at full weight the model long predicts background everywhere.
    """

    def __init__(
        self, width: int = 12, dropout: float = 0.25, lr: float = 2e-3, background_weight: float = 0.1
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = Encoder(width)
        self.decoder = nn.Sequential(
            nn.Dropout2d(dropout),
            nn.Conv2d(7 * width, 2 * width, 1),
            nn.ReLU(),
            nn.Dropout2d(dropout),
            nn.Conv2d(2 * width, NUM_CLASSES, 1),
        )
        weights = torch.ones(NUM_CLASSES)
        weights[0] = background_weight
        self.register_buffer("class_weights", weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def mc_split(self) -> tuple[nn.Module, nn.Module]:
        return self.encoder, self.decoder

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, maps = batch
        loss = F.cross_entropy(self(images), maps, weight=self.class_weights)
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
    epochs_per_step: int = 6,
    samples_per_epoch: int = 256,
    iterations: int = 10,
    seed: int = 0,
    output_dir: str | Path = "outputs/segmentation",
    logger: bool = True,
) -> dict[str, float]:
    """One active learning run; returns the last step's figures (``active/val_miou``, ``active/num_labelled``...).

    Each step trains ``epochs_per_step`` epochs of ``samples_per_epoch`` images drawn from the labelled set (so 96
    optimiser steps per step however few images are labelled), then scores the pool and labels ``query_size`` more.
    """
    pl.seed_everything(seed, workers=True)
    train_digits, test_digits = load_mnist(mnist)
    datamodule = ActiveDataModule(
        place_on_canvas(train_digits, pool_size, seed),
        val_dataset=place_on_canvas(test_digits, val_size, seed + 1),
        initial_labels=initial,
        batch_size=16,
        train_samples_per_epoch=samples_per_epoch,
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
    name = heuristic if heuristic == "random" else f"{heuristic}_{reduction}"
    trainer = pl.Trainer(
        max_epochs=-1,
        callbacks=[callback],
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        log_every_n_steps=max(1, samples_per_epoch // 16),  # once per epoch, in batches of 16 as the datamodule draws
        default_root_dir=str(output_dir),
        logger=TensorBoardLogger(str(output_dir), name=name) if logger else False,
    )
    trainer.fit(DigitSegmenter(), datamodule=datamodule)
    return {key: float(value) for key, value in callback.history[-1].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heuristics", nargs="+", default=["bald", "random"])
    parser.add_argument("--reduction", default="mean", choices=["mean", "sum", "max", "topq"])
    parser.add_argument("--mnist", default=None, help="folder of the MNIST IDX files (default: $LIGHTNING_BAL_MNIST)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--epochs-per-step", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed and heuristic")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--output-dir",
        default="outputs/segmentation",
        help="TensorBoard logs of seed s go to <output-dir>/seed<s>/<heuristic>",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    for seed in args.seeds:
        for name in args.heuristics:
            start = time.perf_counter()
            figures = run(
                name,
                args.reduction,
                args.mnist,
                steps=args.steps,
                epochs_per_step=args.epochs_per_step,
                seed=seed,
                output_dir=Path(args.output_dir) / f"seed{seed}",
            )
            shown = {k: round(v, 4) for k, v in figures.items() if "val" in k or "labelled" in k}
            print(f"seed {seed} {name} ({time.perf_counter() - start:.0f} s): {shown}", flush=True)


if __name__ == "__main__":
    # Lightning's own noise, not this run's: its logger advertisement on every fit, and the torch deprecation its
    # CombinedLoader triggers with recent torch. Set here, in the script: a library leaves the filters to its user.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda r: "💡 Tip" not in r.getMessage())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning)
    main()
