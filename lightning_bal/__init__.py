"""lightning_bal: Bayesian active learning for PyTorch Lightning."""

from lightning_bal.__about__ import __version__

__all__ = ["__version__"]
