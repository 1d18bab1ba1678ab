"""The CNNs with dropout of the papers' protocol (plain ``nn.Sequential``s), and a LightningModule that trains them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from lightning_bal.data import ActiveDataModule
from lightning_bal.utilities.checks import check_argument, check_bool, check_finite_number, is_finite, is_int

__all__ = ["NETWORKS", "DropoutCNN", "Standardize", "digits_cnn", "gal_cnn", "kirsch_cnn"]


def _check_shape(image_size: int, num_classes: int) -> None:
    check_argument("image_size", image_size, is_int(image_size), "an integer", TypeError)
    check_argument("num_classes", num_classes, is_int(num_classes) and num_classes >= 2, "an integer >= 2")


def digits_cnn(image_size: int = 8, num_classes: int = 10) -> nn.Sequential:
    """A small CNN for scikit-learn's 8x8 digits: :func:`gal_cnn` with 3x3 convolutions, the first one padded.

    Examples:
        >>> digits_cnn()(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    return _two_conv_cnn(image_size, num_classes, kernel=3, padding=1)


def gal_cnn(image_size: int = 28, num_classes: int = 10) -> nn.Sequential:
    """The CNN of Gal et al. 2017 as one ``nn.Sequential``, so the MC engine runs the convolutions once per item.

    conv(32, 4x4)-relu-conv(32, 4x4)-relu-maxpool(2)-dropout(0.25)-flatten-dense(128)-relu-dropout(0.5)-dense(C).

    Examples:
        >>> gal_cnn()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    return _two_conv_cnn(image_size, num_classes, kernel=4, padding=0)


def _two_conv_cnn(image_size: int, num_classes: int, kernel: int, padding: int) -> nn.Sequential:
    _check_shape(image_size, num_classes)
    shrink = 2 * (kernel - 1 - padding)  # how many pixels the two convolutions take off the side
    side = (image_size - shrink) // 2
    if side < 1:
        raise ValueError(f"Expected argument `image_size` to be at least {shrink + 2}, but got {image_size}.")
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel, padding=padding),
        nn.ReLU(),
        nn.Conv2d(32, 32, kernel),
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
        check_argument("mean", mean, is_finite(mean), "a finite number")
        check_argument("std", std, is_finite(std) and std > 0, "a finite positive number")
        self.mean, self.std = mean, std

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The standardized inputs."""
        return (inputs - self.mean) / self.std


# Mean and standard deviation of the 60,000 MNIST training pixels in [0, 1].
_MNIST_MEAN, _MNIST_STD = 0.1307, 0.3081


def kirsch_cnn(image_size: int = 28, num_classes: int = 10) -> nn.Sequential:
    """The CNN of Kirsch et al. 2019 (BatchBALD) as one ``nn.Sequential``.

    standardize-conv(32, 5x5)-dropout2d(0.5)-maxpool(2)-relu-conv(64, 5x5)-dropout2d(0.5)-maxpool(2)-relu-flatten-
    dense(128)-dropout(0.5)-relu-dense(C): a stronger learner from few labels than :func:`gal_cnn`.

    Examples:
        >>> kirsch_cnn()(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    _check_shape(image_size, num_classes)
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


NETWORKS: dict[str, Callable[..., nn.Sequential]] = {"gal": gal_cnn, "kirsch": kirsch_cnn, "digits": digits_cnn}


class DropoutCNN(pl.LightningModule):
    """One of :data:`NETWORKS` trained with Adam and cross-entropy; logs ``train_loss``, ``val_loss``, ``val_acc``.

    Args:
        image_size: side of the square single-channel images (28 for MNIST, 8 for the digits).
        weight_decay: ``c``: a loss term ``c / |D_L| * ||w||^2`` on the dense layers' weights (Gal et al. 2017).
        channels_last: keep the convolutions' weights in channels-last memory format. On a CPU, oneDNN then runs the
            convolutions on NHWC data: the Kirsch CNN trains about 1.4x and evaluates about 2x faster
            (``benchmarks/channels_last.py``); outputs differ from the default format's in float rounding only.

    Examples:
        >>> model = DropoutCNN("digits", image_size=8)
        >>> model(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
        >>> [type(part).__name__ for part in model.mc_split()]
        ['Identity', 'Sequential']
    """

    def __init__(
        self,
        network: Literal["gal", "kirsch", "digits"] = "gal",
        lr: float = 1e-3,
        image_size: int = 28,
        num_classes: int = 10,
        weight_decay: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        check_argument("network", network, network in NETWORKS, f"one of {sorted(NETWORKS)}")
        check_argument("lr", lr, is_finite(lr) and lr > 0, "a finite positive number")
        check_finite_number("weight_decay", weight_decay, 0)
        _check_shape(image_size, num_classes)
        check_bool("channels_last", channels_last)
        self.save_hyperparameters()
        self.net = NETWORKS[network](image_size, num_classes)
        if channels_last:
            # The weights' format decides the convolution's: a one-channel input reads the same in either format.
            self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in torch's stubs

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` class logits of ``[B, 1, H, W]`` images."""
        return self.net(inputs)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        """Cross-entropy, weighted by the risk weight each sample carries under ``return_weights``."""
        inputs, targets, *weight = batch
        losses = F.cross_entropy(self(inputs), targets, reduction="none")
        loss = (losses * weight[0]).mean() if weight else losses.mean()
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """``val_loss`` and ``val_acc``."""
        inputs, targets = batch
        logits = self(inputs)
        self.log("val_loss", F.cross_entropy(logits, targets))
        self.log("val_acc", (logits.argmax(-1) == targets).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam, with the dense layers' weight decay for the current |D_L| (re-created when the weights are reset)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        labelled = datamodule.num_labelled if isinstance(datamodule, ActiveDataModule) else 1
        dense = [m.weight for m in self.net if isinstance(m, nn.Linear)]
        others = [p for p in self.parameters() if all(p is not w for w in dense)]
        # Adam's `weight_decay` adds `decay * w` to the gradient, the gradient of `decay / 2 * ||w||^2`.
        groups = [{"params": dense, "weight_decay": 2 * self.hparams["weight_decay"] / labelled}, {"params": others}]
        return torch.optim.Adam(groups, lr=self.hparams["lr"])

    def mc_split(self) -> tuple[nn.Module, nn.Module]:
        """``(Identity, net)``: the MC engine then runs the layers before the first dropout once per item."""
        # Without it the engine sees a LightningModule, not an nn.Sequential, and runs the whole network K times.
        return nn.Identity(), self.net
