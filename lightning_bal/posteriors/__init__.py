"""Posteriors beyond MC-Dropout: deep ensembles, SWAG and last-layer Laplace, behind the same ``[N, K, C]`` contract.

Each is a :class:`~lightning_bal.mc.Posterior`, passed to :class:`~lightning_bal.ActiveLearningCallback` as
``posterior=``; heuristics, DDP, logging and resume are the same whichever draws the K samples.
"""

from lightning_bal.mc.posterior import MCDropConnect, MCDropout, Posterior
from lightning_bal.posteriors.ensemble import (
    DeepEnsemble,
    EnsemblePosterior,
    ensemble_cross_entropy,
    ensemble_log_probs,
    member_batches,
)
from lightning_bal.posteriors.laplace import LastLayerLaplace
from lightning_bal.posteriors.swag import SWAG

__all__ = [
    "DeepEnsemble",
    "EnsemblePosterior",
    "LastLayerLaplace",
    "MCDropConnect",
    "MCDropout",
    "Posterior",
    "SWAG",
    "ensemble_cross_entropy",
    "ensemble_log_probs",
    "member_batches",
]
