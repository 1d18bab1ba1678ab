"""Labels from people: the callback's annotator mode, query and answer files, Label Studio, checkpoints, stopping."""

from lightning_bal.annotation.annotator import QueryFiles
from lightning_bal.annotation.checkpoint import LabelState, import_answers, load_label_state
from lightning_bal.annotation.label_studio import (
    LabelStudioAnswers,
    read_label_studio_export,
    to_label_studio_tasks,
    write_label_studio_tasks,
)
from lightning_bal.annotation.stopping import (
    LowUncertainty,
    MetricPlateau,
    StablePredictions,
    StopContext,
    StoppingCriterion,
    TargetReached,
)

__all__ = [
    "LabelState",
    "LabelStudioAnswers",
    "LowUncertainty",
    "MetricPlateau",
    "QueryFiles",
    "StablePredictions",
    "StopContext",
    "StoppingCriterion",
    "TargetReached",
    "import_answers",
    "load_label_state",
    "read_label_studio_export",
    "to_label_studio_tasks",
    "write_label_studio_tasks",
]
