"""Lightning callbacks that run active learning inside a Trainer, and the objects that configure them."""

from lightning_bal.callbacks.active_learning import ActiveLearningCallback
from lightning_bal.callbacks.context import StepContext
from lightning_bal.callbacks.convergence import Convergence
from lightning_bal.callbacks.detection_evaluation import DetectionMAP
from lightning_bal.callbacks.embedding_pass import initial_selection
from lightning_bal.callbacks.evaluation import Calibration, LabelledRisk, MCTestCurve, StepEvaluation, TestCurve
from lightning_bal.callbacks.task_evaluation import MultiLabelF1, RegressionCurve, SegmentationIoU
from lightning_bal.utilities.plateau import Plateau

__all__ = [
    "ActiveLearningCallback",
    "Calibration",
    "Convergence",
    "DetectionMAP",
    "LabelledRisk",
    "MCTestCurve",
    "MultiLabelF1",
    "Plateau",
    "RegressionCurve",
    "SegmentationIoU",
    "StepContext",
    "StepEvaluation",
    "TestCurve",
    "initial_selection",
]
