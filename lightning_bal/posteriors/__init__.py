"""Posteriors beyond MC-Dropout: deep ensembles, SWAG and last-layer Laplace, passed to the callback as ``posterior=``.

See docs/posteriors.md.
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
