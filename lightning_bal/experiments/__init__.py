"""Experiments: heuristics x seeds from the same labels and weights, their curves and summaries, the papers' protocol.

Not imported by ``import lightning_bal``; plots and the digits need the ``examples`` extra.
"""

from lightning_bal.experiments.cold_start import COLD_STARTS, cold_start_labels, pixel_embeddings
from lightning_bal.experiments.curves import Curve, area_under_curve, labels_to_reach, mean_and_spread
from lightning_bal.experiments.datasets import MNIST_ENV, MNIST_FILES, load_digits, load_mnist, read_idx
from lightning_bal.experiments.detection_data import DigitCanvases, detection_collate
from lightning_bal.experiments.detector import DigitDetector, train_detector
from lightning_bal.experiments.experiment import Experiment, Row
from lightning_bal.experiments.intervals import INTERVALS, PairedDifference, confidence_interval, t_quantile
from lightning_bal.experiments.models import NETWORKS, DropoutCNN, Standardize, digits_cnn, gal_cnn, kirsch_cnn
from lightning_bal.experiments.paired import PairedComparison, paired_comparison, paired_table, plot_paired
from lightning_bal.experiments.pools import IndexedPool, check_pool, duplicated_pool, long_tailed_pool, make_pool
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
from lightning_bal.experiments.records import RunSpec, load_study, read_records, settings_hash, study_status
from lightning_bal.experiments.result import ExperimentResult, History
from lightning_bal.experiments.runner import parse_shard
from lightning_bal.experiments.study import Study

__all__ = [
    "COLD_STARTS",
    "MNIST_ENV",
    "MNIST_FILES",
    "NETWORKS",
    "POSTERIORS",
    "PaperProtocol",
    "Curve",
    "DigitCanvases",
    "DigitDetector",
    "DropoutCNN",
    "EnsembleCNN",
    "EnsembleLabelledRisk",
    "EnsembleTestCurve",
    "Experiment",
    "ExperimentResult",
    "History",
    "Row",
    "RunSpec",
    "Standardize",
    "Study",
    "add_protocol_arguments",
    "area_under_curve",
    "cold_start_labels",
    "detection_collate",
    "digits_cnn",
    "ensemble_loader",
    "gal_cnn",
    "kirsch_cnn",
    "labels_to_reach",
    "load_digits",
    "load_mnist",
    "load_study",
    "mean_and_spread",
    "parse_shard",
    "pixel_embeddings",
    "posterior_row",
    "protocol_from_arguments",
    "read_idx",
    "read_records",
    "settings_hash",
    "split_row_name",
    "study_status",
    "train_detector",
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
    "check_pool",
    "make_pool",
]
