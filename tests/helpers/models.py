"""Tiny models and data shared by the tests."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import TensorDataset


def blobs(n: int = 120, num_classes: int = 3, features: int = 4, seed: int = 0) -> TensorDataset:
    """Gaussian blobs: ``n`` samples, labels ``i % num_classes`` so every class has the same count."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.arange(n) % num_classes
    centers = torch.randn(num_classes, features, generator=generator) * 3
    inputs = centers[targets] + torch.randn(n, features, generator=generator)
    dataset = TensorDataset(inputs, targets)
    dataset.targets = targets  # type: ignore[attr-defined]
    return dataset


class DropoutClassifier(pl.LightningModule):
    """An MLP with dropout in its head: the smallest model an MC heuristic accepts."""

    def __init__(self, features: int = 4, num_classes: int = 3, hidden: int = 16, p: float = 0.3, lr: float = 0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(p), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class NoDropoutClassifier(DropoutClassifier):
    """The same MLP without any stochastic layer."""

    def __init__(self, features: int = 4, num_classes: int = 3, hidden: int = 16, lr: float = 0.05):
        super().__init__(features, num_classes, hidden, 0.0, lr)
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
