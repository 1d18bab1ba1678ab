"""Experiments: heuristics x seeds from the same labels and weights, their curves and summaries, the papers' protocol.

Not imported by ``import lightning_bal``; plots and the digits need the ``examples`` extra.
"""

from lightning_bal.experiments.cold_start import COLD_STARTS, cold_start_labels, pixel_embeddings
from lightning_bal.experiments.curves import Curve, area_under_curve, labels_to_reach, mean_and_spread
from lightning_bal.experiments.datasets import MNIST_ENV, MNIST_FILES, load_digits, load_mnist, read_idx
from lightning_bal.experiments.experiment import Experiment, Row
from lightning_bal.experiments.models import NETWORKS, DropoutCNN, Standardize, digits_cnn, gal_cnn, kirsch_cnn
from lightning_bal.experiments.paired import (
    INTERVALS,
    PairedComparison,
    PairedDifference,
    confidence_interval,
    paired_comparison,
    paired_table,
    plot_paired,
    t_quantile,
)
from lightning_bal.experiments.pools import IndexedPool, duplicated_pool, long_tailed_pool
from lightning_bal.experiments.posteriors import (
    POSTERIORS,
    EnsembleCNN,
    EnsembleLabelledRisk,
    EnsembleTestCurve,
    ensemble_loader,
    posterior_row,
    split_row_name,
)
from lightning_bal.experiments.protocol import PaperProtocol, add_protocol_arguments, protocol_from_arguments
from lightning_bal.experiments.result import ExperimentResult, History

__all__ = [
    "COLD_STARTS",
    "MNIST_ENV",
    "MNIST_FILES",
    "NETWORKS",
    "POSTERIORS",
    "PaperProtocol",
    "Curve",
    "DropoutCNN",
    "EnsembleCNN",
    "EnsembleLabelledRisk",
    "EnsembleTestCurve",
    "Experiment",
    "ExperimentResult",
    "History",
    "Row",
    "Standardize",
    "add_protocol_arguments",
    "area_under_curve",
    "cold_start_labels",
    "digits_cnn",
    "ensemble_loader",
    "gal_cnn",
    "kirsch_cnn",
    "labels_to_reach",
    "load_digits",
    "load_mnist",
    "mean_and_spread",
    "pixel_embeddings",
    "posterior_row",
    "protocol_from_arguments",
    "read_idx",
    "split_row_name",
    "INTERVALS",
    "PairedComparison",
    "PairedDifference",
    "confidence_interval",
    "paired_comparison",
    "paired_table",
    "plot_paired",
    "t_quantile",
    "IndexedPool",
    "duplicated_pool",
    "long_tailed_pool",
]
