"""Acquisition heuristics as small classes: ``score`` a pool batch by batch, ``select`` a batch."""

from lightning_bal.heuristics.base import Heuristic, Selection
from lightning_bal.heuristics.batchbald import ICAL, BatchBALD
from lightning_bal.heuristics.combine import CombineHeuristics
from lightning_bal.heuristics.detection import (
    BoxExistence,
    DetectionBADGE,
    DetectionBALD,
    DetectionCoreSet,
    DetectionEntropy,
    DetectionHeuristic,
    LocalizationStability,
    LocalizationVariance,
)
from lightning_bal.heuristics.diversity import BADGE, CoreSet, EmbeddingHeuristic, ProbCover, TypiClust
from lightning_bal.heuristics.pointwise import (
    BALD,
    EPIG,
    Entropy,
    GaussianMI,
    LeastConfidence,
    Margin,
    MeanSTD,
    MultiLabelBALD,
    MultiLabelEntropy,
    Variance,
    VariationRatios,
)
from lightning_bal.heuristics.registry import HEURISTICS, available_heuristics, get_heuristic, register_heuristic
from lightning_bal.heuristics.stochastic import (
    PowerBALD,
    PowerEntropy,
    Random,
    SoftmaxBALD,
    SoftmaxEntropy,
    SoftrankBALD,
    SoftrankEntropy,
    StochasticHeuristic,
)

__all__ = [
    "BADGE",
    "BALD",
    "EPIG",
    "GaussianMI",
    "HEURISTICS",
    "ICAL",
    "BatchBALD",
    "CombineHeuristics",
    "CoreSet",
    "EmbeddingHeuristic",
    "Entropy",
    "Heuristic",
    "LeastConfidence",
    "Margin",
    "MeanSTD",
    "MultiLabelBALD",
    "MultiLabelEntropy",
    "PowerBALD",
    "PowerEntropy",
    "ProbCover",
    "Random",
    "Selection",
    "SoftmaxBALD",
    "SoftmaxEntropy",
    "SoftrankBALD",
    "SoftrankEntropy",
    "StochasticHeuristic",
    "TypiClust",
    "Variance",
    "VariationRatios",
    "BoxExistence",
    "DetectionBADGE",
    "DetectionBALD",
    "DetectionCoreSet",
    "DetectionEntropy",
    "DetectionHeuristic",
    "LocalizationStability",
    "LocalizationVariance",
    "available_heuristics",
    "get_heuristic",
    "register_heuristic",
]
