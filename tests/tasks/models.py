"""Small models and generated data for the segmentation, regression and sequence labelling tests."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset, TensorDataset
from torch.utils.data._utils.collate import default_collate

PAD, IGNORE = 0, -100


class TinySegmenter(pl.LightningModule):
    """``[B, 1, 8, 8]`` images to ``[B, 3, 8, 8]`` logits, Dropout2d in the middle."""

    def __init__(self, lr: float = 0.05):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.3), nn.Conv2d(6, 3, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def segmentation_data(n: int, seed: int = 0) -> TensorDataset:
    """Generated: a bright square of class 1 or 2 on a dark background (class 0), with noise."""
    generator = torch.Generator().manual_seed(seed)
    images = 0.1 * torch.randn(n, 1, 8, 8, generator=generator)
    maps = torch.zeros(n, 8, 8, dtype=torch.long)
    for i in range(n):
        top, left = torch.randint(0, 5, (2,), generator=generator).tolist()
        cls = 1 + i % 2
        images[i, 0, top : top + 3, left : left + 3] += float(cls)
        maps[i, top : top + 3, left : left + 3] = cls
    return TensorDataset(images, maps)


class DropoutRegressor(pl.LightningModule):
    """Heteroscedastic head: ``{"mean": [B], "log_var": [B]}``."""

    def __init__(self, lr: float = 0.01):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))

    def forward(self, x):
        mean, log_var = self.net(x).unbind(-1)
        return {"mean": mean, "log_var": log_var}

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        return F.gaussian_nll_loss(out["mean"], y, out["log_var"].exp())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def regression_data(n: int, seed: int = 0) -> TensorDataset:
    """Generated: y = sum(x) + noise."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator)
    return TensorDataset(x, x.sum(1) + 0.1 * torch.randn(n, generator=generator))


class Sequences(Dataset):
    """Generated token sequences of 2..9 tokens in 1..12; each token's label is ``token % 3``; no real text."""

    def __init__(self, n: int, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        lengths = torch.randint(2, 10, (n,), generator=generator).tolist()
        self.tokens = [torch.randint(1, 13, (length,), generator=generator) for length in lengths]

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, index):
        tokens = self.tokens[index]
        return tokens, tokens % 3


def pad_collate(items):
    """Pads variable-length tensors: inputs with ``PAD``, targets with ``IGNORE``; pool indices are stacked."""
    columns = list(zip(*items, strict=True))
    batch = []
    for position, column in enumerate(columns):
        if isinstance(column[0], torch.Tensor) and column[0].dim() == 1 and len({c.shape for c in column}) > 1:
            batch.append(pad_sequence(list(column), batch_first=True, padding_value=PAD if position == 0 else IGNORE))
        else:
            batch.append(default_collate(list(column)))
    return tuple(batch)


class Tagger(pl.LightningModule):
    """Tokens ``[B, T]`` (``PAD`` = 0) to ``{"logits": [B, 3, T], "valid": [B, T]}``: the padding mask is an output."""

    def __init__(self, lr: float = 0.1):
        super().__init__()
        self.lr = lr
        self.embed = nn.Embedding(13, 8, padding_idx=PAD)
        self.drop = nn.Dropout(0.3)
        self.out = nn.Conv1d(8, 3, 1)

    def forward(self, tokens):
        logits = self.out(self.drop(self.embed(tokens)).transpose(1, 2))
        return {"logits": logits, "valid": tokens != PAD}

    def training_step(self, batch, batch_idx):
        tokens, labels = batch
        return F.cross_entropy(self(tokens)["logits"], labels, ignore_index=IGNORE)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)
