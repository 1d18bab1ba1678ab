"""Acquisition heuristics as pure tensor functions of ``[N, K, C, ...]`` log-probabilities."""

from lightning_bal.functional._validation import Reduction, TopQ
from lightning_bal.functional.bald import bald, expected_entropy
from lightning_bal.functional.batchbald import batchbald
from lightning_bal.functional.confidence import least_confidence, margin
from lightning_bal.functional.entropy import entropy
from lightning_bal.functional.epig import epig
from lightning_bal.functional.gaussian import gaussian_mutual_information
from lightning_bal.functional.ical import hsic, ical
from lightning_bal.functional.mean_std import mean_std
from lightning_bal.functional.risk import lure_weights, pure_weights, uniform_probabilities, weighted_risk
from lightning_bal.functional.stochastic import (
    SAMPLING_MODES,
    SamplingMode,
    sample_without_replacement,
    sampling_log_weights,
)
from lightning_bal.functional.variance import variance
from lightning_bal.functional.variation_ratios import variation_ratios

__all__ = [
    "Reduction",
    "SAMPLING_MODES",
    "TopQ",
    "SamplingMode",
    "bald",
    "batchbald",
    "entropy",
    "epig",
    "expected_entropy",
    "gaussian_mutual_information",
    "hsic",
    "ical",
    "least_confidence",
    "lure_weights",
    "margin",
    "mean_std",
    "pure_weights",
    "sample_without_replacement",
    "sampling_log_weights",
    "uniform_probabilities",
    "variance",
    "variation_ratios",
    "weighted_risk",
]
