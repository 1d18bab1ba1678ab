"""MC-Dropout: switching dropout on at prediction time, and the K-sample pool pass."""

from lightning_bal.mc.dropconnect import mc_dropconnect
from lightning_bal.mc.engine import MCPrediction, mc_batches, mc_predict
from lightning_bal.mc.features import FeatureTap
from lightning_bal.mc.layers import mark_stochastic
from lightning_bal.mc.modes import mc_dropout
from lightning_bal.mc.posterior import MCDropConnect, MCDropout, Posterior
from lightning_bal.mc.split import SplitModule

__all__ = [
    "FeatureTap",
    "MCDropConnect",
    "MCDropout",
    "MCPrediction",
    "Posterior",
    "SplitModule",
    "mark_stochastic",
    "mc_batches",
    "mc_dropconnect",
    "mc_dropout",
    "mc_predict",
]
