"""Small models for the posterior tests: an ensemble classifier and a BatchNorm classifier."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from lightning_bal.posteriors import DeepEnsemble, ensemble_cross_entropy, ensemble_log_probs
from tests.helpers.models import DropoutClassifier


def mlp(features: int = 4, num_classes: int = 3, hidden: int = 16, batchnorm: bool = False) -> nn.Sequential:
    norm = [nn.BatchNorm1d(hidden)] if batchnorm else []
    return nn.Sequential(nn.Linear(features, hidden), *norm, nn.ReLU(), nn.Linear(hidden, num_classes))


class EnsembleClassifier(pl.LightningModule):
    """M MLPs trained together; ``forward`` returns their ``[M, B, C]`` logits."""

    def __init__(self, members: int = 3, batchnorm: bool = False, lr: float = 0.05, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.ensemble = DeepEnsemble(lambda: mlp(batchnorm=batchnorm), members, seed=seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ensemble(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = ensemble_cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        log_probs = ensemble_log_probs(self(x))
        self.log("val_loss", F.nll_loss(log_probs, y))
        self.log("val_acc", (log_probs.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class PlainClassifier(DropoutClassifier):
    """The same classifier as the callback tests', as an MLP without dropout (optionally with BatchNorm): for SWAG
    and Laplace."""

    def __init__(self, batchnorm: bool = False, lr: float = 0.05):
        super().__init__(lr=lr)
        self.save_hyperparameters()
        self.net = mlp(batchnorm=batchnorm)
