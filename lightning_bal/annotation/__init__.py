"""Labels from people: the callback's annotator mode, query and answer files, Label Studio, checkpoints, stopping."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightning_bal.annotation.annotator import QueryFiles
    from lightning_bal.annotation.answers import AnswerFormat, read_answer
    from lightning_bal.annotation.checkpoint import LabelState, load_label_state
    from lightning_bal.annotation.consensus import cohen_kappa, dawid_skene, fleiss_kappa, majority_vote
    from lightning_bal.annotation.label_studio import (
        LabelStudioAnswers,
        read_label_studio_export,
        to_label_studio_tasks,
        write_label_studio_tasks,
    )
    from lightning_bal.annotation.label_studio_boxes import read_label_studio_boxes
    from lightning_bal.annotation.label_studio_detection import check_rectangle_config, to_label_studio_box_tasks
    from lightning_bal.annotation.regions import decode_brush_rle, encode_brush_rle
    from lightning_bal.annotation.stopping import (
        LowUncertainty,
        MetricPlateau,
        StablePredictions,
        StepView,
        StoppingCriterion,
        TargetReached,
    )
    from lightning_bal.annotation.sync import import_answers

__all__ = [
    "AnswerFormat",
    "LabelState",
    "LabelStudioAnswers",
    "LowUncertainty",
    "MetricPlateau",
    "QueryFiles",
    "StablePredictions",
    "StepView",
    "StoppingCriterion",
    "TargetReached",
    "check_rectangle_config",
    "cohen_kappa",
    "dawid_skene",
    "decode_brush_rle",
    "encode_brush_rle",
    "fleiss_kappa",
    "import_answers",
    "load_label_state",
    "majority_vote",
    "read_answer",
    "read_label_studio_boxes",
    "read_label_studio_export",
    "to_label_studio_box_tasks",
    "to_label_studio_tasks",
    "write_label_studio_tasks",
]

# Imported on first use: the command line reads checkpoints without loading Lightning.
_HOMES = {
    "QueryFiles": "annotator",
    "LabelState": "checkpoint",
    "import_answers": "sync",
    "load_label_state": "checkpoint",
    "LabelStudioAnswers": "label_studio",
    **dict.fromkeys(["cohen_kappa", "dawid_skene", "fleiss_kappa", "majority_vote"], "consensus"),
    "read_label_studio_export": "label_studio",
    "to_label_studio_tasks": "label_studio",
    "write_label_studio_tasks": "label_studio",
    **dict.fromkeys(["AnswerFormat", "read_answer"], "answers"),
    **dict.fromkeys(["decode_brush_rle", "encode_brush_rle"], "regions"),
    **dict.fromkeys(["check_rectangle_config", "to_label_studio_box_tasks"], "label_studio_detection"),
    "read_label_studio_boxes": "label_studio_boxes",
    **dict.fromkeys(
        ["LowUncertainty", "MetricPlateau", "StablePredictions", "StepView", "StoppingCriterion", "TargetReached"],
        "stopping",
    ),
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
