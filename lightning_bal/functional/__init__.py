"""Acquisition heuristics as pure tensor functions of ``[N, K, C, ...]`` log-probabilities."""

from lightning_bal.functional._validation import Reduction, TopQ
from lightning_bal.functional.batchbald import batchbald
from lightning_bal.functional.epig import epig
from lightning_bal.functional.ical import hsic, ical
from lightning_bal.functional.pointwise import (
    bald,
    entropy,
    expected_entropy,
    gaussian_mutual_information,
    least_confidence,
    margin,
    mean_std,
    multilabel_bald,
    multilabel_entropy,
    variance,
    variation_ratios,
)
from lightning_bal.functional.risk import lure_weights, pure_weights, uniform_probabilities, weighted_risk
from lightning_bal.functional.stochastic import (
    SAMPLING_MODES,
    SamplingMode,
    sample_without_replacement,
    sampling_log_weights,
)

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
    "multilabel_bald",
    "multilabel_entropy",
    "pure_weights",
    "sample_without_replacement",
    "sampling_log_weights",
    "uniform_probabilities",
    "variance",
    "variation_ratios",
    "weighted_risk",
]
