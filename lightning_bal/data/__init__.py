"""The labelled set D_L and the pool D_U."""

from lightning_bal.data.datamodule import ActiveDataModule

__all__ = ["ActiveDataModule"]
