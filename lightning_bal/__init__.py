"""lightning_bal: Bayesian active learning for PyTorch Lightning."""

from lightning_bal.__about__ import __version__
from lightning_bal.callbacks import ActiveLearningCallback
from lightning_bal.data import ActiveDataModule

__all__ = ["ActiveDataModule", "ActiveLearningCallback", "__version__"]
