"""Active learning on MNIST with the protocol of Gal et al. 2017 and Kirsch et al. 2019.

    python -m examples.mnist --data /path/to/mnist --heuristics bald random

Run it from the repository root (``-m`` makes ``examples`` importable). The data are the four gzipped IDX files of
MNIST (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
``t10k-labels-idx1-ubyte.gz``) in the folder given by ``--data`` or by the environment variable
``LIGHTNING_BAL_MNIST``; nothing is downloaded and torchvision is not needed.

Protocol: 20 initial labels balanced over the classes, 10 labels per step, the two-convolution CNN with dropout of
Gal et al. 2017 (``--network gal``) or of Kirsch et al. 2019 (``--network kirsch``), MC-Dropout with K samples, the
weights reset to their initial values after every step, and test accuracy on the 10,000 test images after every step
(``evaluations=[TestCurve()]``; nothing is selected on them). With ``--val-size`` each step trains to
convergence, as in the papers: a validation set of that many samples is held out of the training split and the step
runs once validation accuracy has not improved for ``--patience`` epochs of ``--samples-per-epoch`` samples
(``Convergence("val_acc", mode="max")``), with the best weights restored. Without it each step trains a fixed
budget of ``--epochs-per-step`` such epochs. The settings of the benchmark's headline run (``benchmarks/README.md``)::

    python -m examples.mnist --data /path/to/mnist --heuristics batchbald bald random --budget 200 \\
        --network kirsch --val-size 1024 --patience 3 --samples-per-epoch 5056
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import TensorDataset

from examples.digits_quickstart import DigitsCNN
from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import Convergence, LabelledRisk, TestCurve

__all__ = [
    "MNIST_ENV",
    "MNIST_FILES",
    "MnistCNN",
    "Standardize",
    "active_learning_curve",
    "active_learning_run",
    "add_protocol_args",
    "gal_cnn",
    "kirsch_cnn",
    "load_mnist",
    "main",
    "parse_args",
    "read_idx",
]

MNIST_ENV = "LIGHTNING_BAL_MNIST"
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_UNSIGNED_BYTE = 0x08


def read_idx(path: str | Path) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes (the format of MNIST) into a ``uint8`` array of its shape.

    The header is two zero bytes, the type byte ``0x08`` (unsigned byte), the number of dimensions ``d``, then ``d``
    big-endian ``uint32`` sizes; the ``prod(sizes)`` data bytes follow in C order.

    Example:
        >>> import gzip, tempfile
        >>> path = Path(tempfile.mkdtemp()) / "tiny-labels-idx1-ubyte.gz"
        >>> _ = path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])))
        >>> read_idx(path)
        array([7, 2, 1], dtype=uint8)
    """
    path = Path(path)
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UNSIGNED_BYTE:
        raise ValueError(
            f"Expected argument `path` to be a gzipped IDX file of unsigned bytes (header 00 00 08 <ndim>),"
            f" but got header {raw[:4].hex(' ')!r} in {path}."
        )
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise ValueError(
            f"Expected argument `path` to hold {ndim} dimension sizes after its header, but got {len(raw) - 4} bytes"
            f" in {path}."
        )
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != math.prod(shape):
        raise ValueError(
            f"Expected argument `path` to hold {math.prod(shape)} data bytes for shape {shape}, but got {data.size}"
            f" in {path}."
        )
    return data.reshape(shape)


def _images_and_labels(root: Path, images: str, labels: str) -> TensorDataset:
    pixels = read_idx(root / MNIST_FILES[images])
    targets = read_idx(root / MNIST_FILES[labels])
    if pixels.ndim != 3 or targets.ndim != 1 or len(pixels) != len(targets):
        raise ValueError(
            f"Expected {MNIST_FILES[images]} to hold [N, H, W] images and {MNIST_FILES[labels]} N labels, but got"
            f" shapes {pixels.shape} and {targets.shape}."
        )
    # Copies: `frombuffer` arrays are read-only, which torch warns about.
    inputs = torch.tensor(pixels, dtype=torch.float32).unsqueeze(1) / 255.0
    dataset = TensorDataset(inputs, torch.tensor(targets, dtype=torch.long))
    dataset.targets = dataset.tensors[1]  # type: ignore[attr-defined]
    return dataset


def load_mnist(root: str | Path | None = None) -> tuple[TensorDataset, TensorDataset]:
    """The MNIST training and test sets as ``(image [1, 28, 28] in [0, 1], label)`` from a folder of IDX files.

    The folder is ``root``, else the environment variable ``LIGHTNING_BAL_MNIST``. The training set carries its labels
    as ``.targets`` (for the balanced initial set).

    Raises:
        ValueError: neither ``root`` nor the environment variable is set.
        FileNotFoundError: one of the four files is missing.
    """
    if root is None:
        root = os.environ.get(MNIST_ENV)
    if not root:
        raise ValueError(
            f"Expected argument `root` (or the environment variable {MNIST_ENV}) to name the folder of the MNIST IDX"
            " files, but got None."
        )
    folder = Path(root).expanduser()
    missing = [name for name in MNIST_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Expected the MNIST files {sorted(MNIST_FILES.values())} in {folder}, but {missing}"
            " are missing (nothing is downloaded: copy them there)."
        )
    train = _images_and_labels(folder, "train_images", "train_labels")
    test = _images_and_labels(folder, "test_images", "test_labels")
    return train, test


def gal_cnn(image_size: int = 28, num_classes: int = 10) -> nn.Sequential:
    """The CNN of Gal et al. 2017 as one ``nn.Sequential``, so the MC engine runs the convolutions once per item.

    conv(32, 4x4)-relu-conv(32, 4x4)-relu-maxpool(2)-dropout(0.25)-flatten-dense(128)-relu-dropout(0.5)-dense(C),
    mapping ``[B, 1, image_size, image_size]`` images to ``[B, C]`` logits.

    Example:
        >>> gal_cnn()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    side = (image_size - 6) // 2
    if side < 1:
        raise ValueError(f"Expected argument `image_size` to be at least 8, but got {image_size}.")
    return nn.Sequential(
        nn.Conv2d(1, 32, 4),
        nn.ReLU(),
        nn.Conv2d(32, 32, 4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(32 * side * side, 128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, num_classes),
    )


class Standardize(nn.Module):
    """``(x - mean) / std`` with fixed constants, as a layer so the network takes raw ``[0, 1]`` pixels."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return (inputs - self.mean) / self.std


# Mean and standard deviation of the 60,000 MNIST training pixels in [0, 1].
_MNIST_MEAN, _MNIST_STD = 0.1307, 0.3081


def kirsch_cnn(image_size: int = 28, num_classes: int = 10) -> nn.Sequential:
    """The CNN of Kirsch et al. 2019 (BatchBALD) as one ``nn.Sequential``.

    standardize-conv(32, 5x5)-dropout2d(0.5)-maxpool(2)-relu-conv(64, 5x5)-dropout2d(0.5)-maxpool(2)-relu-flatten-
    dense(128)-dropout(0.5)-relu-dense(C). Dropout after both convolutions (whole channels) makes it a stronger
    learner from a few dozen labels than :func:`gal_cnn`, at the price of an MC pass that shares only the first
    convolution.

    Example:
        >>> kirsch_cnn()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    side = ((image_size - 4) // 2 - 4) // 2
    if side < 1:
        raise ValueError(f"Expected argument `image_size` to be at least 16, but got {image_size}.")
    return nn.Sequential(
        Standardize(_MNIST_MEAN, _MNIST_STD),
        nn.Conv2d(1, 32, 5),
        nn.Dropout2d(0.5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(32, 64, 5),
        nn.Dropout2d(0.5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * side * side, 128),
        nn.Dropout(0.5),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


_NETWORKS = {"gal": gal_cnn, "kirsch": kirsch_cnn}


class MnistCNN(DigitsCNN):
    """The training and validation steps of :class:`DigitsCNN` (Adam, cross-entropy, ``val_acc``) on the CNN of Gal
    et al. 2017 (:func:`gal_cnn`, ``network="gal"``) or of Kirsch et al. 2019 (:func:`kirsch_cnn`, ``"kirsch"``).

    Example:
        >>> features, head = MnistCNN().mc_split()
        >>> type(features).__name__, type(head).__name__
        ('Identity', 'Sequential')
    """

    def __init__(
        self,
        lr: float = 1e-3,
        image_size: int = 28,
        weight_decay: float = 0.0,
        network: Literal["gal", "kirsch"] = "gal",
    ) -> None:
        super().__init__(lr)
        if network not in _NETWORKS:
            raise ValueError(f"Expected argument `network` to be one of {sorted(_NETWORKS)}, but got {network!r}.")
        self.save_hyperparameters()
        self.net = _NETWORKS[network](image_size)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam; with ``weight_decay=c``, a loss term ``c / |D_L| * ||w||^2`` on the dense layers' weights (Gal et al.).

        The penalty is the prior of the MC-Dropout posterior: it weighs less as D_L grows. The callback re-creates the
        optimizer after every step when it resets the weights (``reset_weights=True``, as here), so each step reads the
        current labelled-set size.
        """
        datamodule = getattr(self.trainer, "datamodule", None)
        labelled = datamodule.num_labelled if isinstance(datamodule, ActiveDataModule) else 1
        dense = [m.weight for m in self.net if isinstance(m, nn.Linear)]
        others = [p for p in self.parameters() if all(p is not w for w in dense)]
        # Adam's `weight_decay` adds `decay * w` to the gradient, the gradient of `decay / 2 * ||w||^2`.
        groups = [{"params": dense, "weight_decay": 2 * self.hparams.weight_decay / labelled}, {"params": others}]
        return torch.optim.Adam(groups, lr=self.hparams.lr)

    def mc_split(self) -> tuple[nn.Module, nn.Module]:
        """``(Identity, net)``: the MC engine then runs the convolutions before the first dropout once per item."""
        # Without it the engine sees a LightningModule, not an nn.Sequential, and runs the whole network K times.
        return nn.Identity(), self.net


def _subset(dataset: TensorDataset, indices: torch.Tensor) -> TensorDataset:
    subset = TensorDataset(*(tensor[indices] for tensor in dataset.tensors))
    subset.targets = subset.tensors[1]  # type: ignore[attr-defined]  # read by ActiveDataModule's balanced labelling
    return subset


def active_learning_run(
    make_model: Callable[[], pl.LightningModule],
    train_set: TensorDataset,
    test_set: TensorDataset,
    heuristic: str,
    *,
    seed: int,
    budget: int,
    initial_labels: int = 20,
    balanced_initial: bool = True,
    query_size: int = 10,
    iterations: int = 20,
    epochs_per_step: int = 5,
    samples_per_epoch: int = 2048,
    val_size: int = 0,
    patience: int = 3,
    max_epochs_per_step: int = 30,
    max_pool_size: int | None = None,
    pool_size: int | None = None,
    risk_weights: Literal["lure", "pure"] | None = None,
    batch_size: int = 64,
    logger: Logger | bool = False,
    **trainer_kwargs: Any,
) -> list[dict[str, float]]:
    """One active learning run from ``initial_labels`` to ``budget`` labels; the callback's figures of every step.

    ``seed`` fixes the initial weights, the validation split, the initial set, the pool subsets and the MC masks, so
    runs of different heuristics at one seed start from the same model and labels. Each step's dict holds
    ``active/num_labelled``, ``active/test_acc``, ``active/test_nll`` and the plain and (when every label was drawn
    with a known probability) LURE-weighted NLL over D_L (``active/train_nll_mean``, ``active/train_nll_lure``).

    ``val_size > 0`` holds out that many training samples to train each step to convergence (``Convergence("val_acc")``,
    ``patience``, at most ``max_epochs_per_step`` epochs of ``samples_per_epoch``); otherwise each step trains
    ``epochs_per_step`` epochs. ``pool_size`` restricts D_L and D_U to a fixed random subset of the training split.
    ``risk_weights="lure"`` trains on the LURE-weighted loss (the model's ``training_step`` must use the weight that
    each batch then carries); it needs random initial labels and the whole pool scored (``max_pool_size=None``).
    ``trainer_kwargs`` go to the ``Trainer`` (default ``accelerator="auto", devices=1``); under DDP the figures are
    returned on rank zero only (empty elsewhere).
    """
    pl.seed_everything(seed, verbose=False)
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))
    val_set = _subset(train_set, order[:val_size]) if val_size else None
    if val_size or pool_size is not None:
        pool_end = None if pool_size is None else val_size + pool_size
        train_set = _subset(train_set, order[val_size:pool_end].sort().values)
    datamodule = ActiveDataModule(
        train_set,
        val_dataset=val_set,
        test_dataset=test_set,
        initial_labels=initial_labels,
        balanced_initial=balanced_initial,
        batch_size=batch_size,
        # A few dozen labels are a handful of batches: draw a fixed number of samples per epoch instead.
        train_samples_per_epoch=samples_per_epoch,
        eval_batch_size=1000,
        return_weights=risk_weights,
        max_pool_size=max_pool_size,
        seed=seed,
    )
    schedule: dict[str, Any] = (
        {"convergence": Convergence("val_acc", mode="max", patience=patience, max_epochs=max_epochs_per_step)}
        if val_size
        else {"every_n_epochs": epochs_per_step}
    )
    callback = ActiveLearningCallback(
        heuristic,
        query_size=query_size,
        iterations=iterations,
        **schedule,
        reset_weights=True,
        label_budget=budget,
        seed=seed,
        evaluations=[TestCurve(), LabelledRisk()],
    )
    steps = math.ceil((budget - initial_labels) / query_size) + 1
    trainer_kwargs = {"accelerator": "auto", "devices": 1, **trainer_kwargs}
    trainer = pl.Trainer(
        max_epochs=steps * (max_epochs_per_step if val_size else epochs_per_step),
        callbacks=[callback],
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        **trainer_kwargs,
    )
    trainer.fit(make_model(), datamodule=datamodule)
    return callback.history


def active_learning_curve(
    make_model: Callable[[], pl.LightningModule],
    train_set: TensorDataset,
    test_set: TensorDataset,
    heuristic: str,
    **kwargs: Any,
) -> list[tuple[int, float]]:
    """``(labelled, test accuracy)`` per step of :func:`active_learning_run` (same arguments)."""
    history = active_learning_run(make_model, train_set, test_set, heuristic, **kwargs)
    return [(int(h["active/num_labelled"]), float(h["active/test_acc"])) for h in history]


def add_protocol_args(parser: argparse.ArgumentParser) -> None:
    """The options of :func:`active_learning_run` that the example and the label-efficiency benchmark share."""
    parser.add_argument("--initial-labels", type=int, default=20)
    parser.add_argument("--query-size", type=int, default=10)
    parser.add_argument("--budget", type=int, default=300, help="stop once this many samples are labelled")
    parser.add_argument("--iterations", type=int, default=20, help="MC samples K (the papers used 100)")
    parser.add_argument("--epochs-per-step", type=int, default=5)
    parser.add_argument("--samples-per-epoch", type=int, default=2048)
    parser.add_argument("--val-size", type=int, default=0, help="train each step to convergence on this validation")
    parser.add_argument("--patience", type=int, default=3, help="epochs without improvement that end a step")
    parser.add_argument("--max-epochs-per-step", type=int, default=30, help="with --val-size")
    parser.add_argument("--max-pool-size", type=int, default=2000, help="score a random pool subset (0: whole pool)")
    parser.add_argument("--network", choices=sorted(_NETWORKS), default="gal", help="CNN of Gal 2017 or Kirsch 2019")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (``--help`` lists them)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help=f"folder of the IDX files (default: ${MNIST_ENV})")
    parser.add_argument("--heuristics", nargs="+", default=["bald", "random"])
    add_protocol_args(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/mnist"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, list[tuple[int, float]]]:
    """Run each heuristic once on MNIST and write ``curves.csv``; returns ``(labelled, test accuracy)`` per step."""
    args = parse_args(argv)
    train_set, test_set = load_mnist(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    curves = {}
    for heuristic in args.heuristics:
        start = time.perf_counter()
        curves[heuristic] = active_learning_curve(
            functools.partial(MnistCNN, network=args.network),
            train_set,
            test_set,
            heuristic,
            seed=args.seed,
            budget=args.budget,
            initial_labels=args.initial_labels,
            query_size=args.query_size,
            iterations=args.iterations,
            epochs_per_step=args.epochs_per_step,
            samples_per_epoch=args.samples_per_epoch,
            val_size=args.val_size,
            patience=args.patience,
            max_epochs_per_step=args.max_epochs_per_step,
            max_pool_size=args.max_pool_size or None,
        )
        labels, accuracy = curves[heuristic][-1]
        print(
            f"{heuristic:>10}: test accuracy {accuracy:.4f} at {labels} labels"
            f" ({len(curves[heuristic])} steps in {time.perf_counter() - start:.1f} s)"
        )
    with (args.out / "curves.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["heuristic", "labelled", "test_accuracy"])
        writer.writerows((name, n, f"{acc:.4f}") for name, curve in curves.items() for n, acc in curve)
    print(f"Wrote {args.out / 'curves.csv'}")
    return curves


if __name__ == "__main__":
    main()
