"""One active learning step from the installed wheel: the README's import, on random tensors, in a few seconds.

Run from outside the source tree, so that ``lightning_bal`` can only come from the installed package.
"""

from __future__ import annotations

import logging
import sysconfig
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.heuristics import BALD

installed = Path(sysconfig.get_paths()["purelib"]).resolve()
source = Path(__import__("lightning_bal").__file__).resolve()
if installed not in source.parents:
    raise SystemExit(f"lightning_bal imported from {source}, not from the installed wheel in {installed}")


class _Model(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


# The same lines as the examples: Lightning's logger advertisement and its torch-pytree deprecation are not ours.
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda record: "💡 Tip" not in record.getMessage())
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)

generator = torch.Generator().manual_seed(0)
x, y = torch.randn(200, 8, generator=generator), torch.randint(0, 3, (200,), generator=generator)
datamodule = ActiveDataModule(TensorDataset(x, y), initial_labels=12, balanced_initial=True, targets=y, seed=0)
trainer = pl.Trainer(
    max_epochs=2,
    callbacks=[ActiveLearningCallback(BALD(), query_size=5, iterations=4)],
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    accelerator="cpu",
)
trainer.fit(_Model(), datamodule=datamodule)
if datamodule.num_labelled != 12 + 2 * 5:
    raise SystemExit(f"expected 22 labelled samples after two active learning steps, got {datamodule.num_labelled}")
print(f"wheel smoke test: {datamodule.num_labelled} labelled after 2 steps, from {source.parent}")
