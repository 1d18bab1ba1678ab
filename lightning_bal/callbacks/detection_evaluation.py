"""The mAP of a detection model at every active learning step, against images and against boxes labelled."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import Subset

from lightning_bal.callbacks.evaluation import StepContext, StepEvaluation
from lightning_bal.callbacks.task_evaluation import Split, check_split
from lightning_bal.data import ActiveDataModule
from lightning_bal.data.views import target_of
from lightning_bal.functional.detection import check_detections
from lightning_bal.mc.modes import switch_modes
from lightning_bal.mc.sampling import call_module
from lightning_bal.tasks.detection import Detection
from lightning_bal.utilities.distributed import shard

__all__ = ["DetectionMAP", "num_boxes_labelled"]


def num_boxes_labelled(datamodule: ActiveDataModule, cache: dict[int, int] | None = None) -> int:
    """The number of boxes of D_L: annotators' labels first, else the dataset's targets (``cache``: counts by index).

    Examples:
        >>> from lightning_bal.tasks.detection import Detection
        >>> dm = ActiveDataModule([(torch.zeros(3, 4, 4), {"boxes": torch.zeros(0, 4), "labels": []})] * 3,
        ...                       task=Detection())
        >>> dm.label([0, 1], labels=[{"boxes": [[0, 0, 1, 1], [1, 1, 2, 2]], "labels": [1, 2]}] * 2)
        >>> dm.label([2])
        >>> num_boxes_labelled(dm)
        4
    """
    cache = {} if cache is None else cache
    total = 0
    for index in datamodule.labelled_indices.tolist():
        annotation = datamodule.ledger.annotations.get(index)
        if annotation is not None:
            total += int(annotation["labels"].numel())
            continue
        if index not in cache:
            cache[index] = len(target_of(datamodule.train_dataset[index])["labels"])
        total += cache[index]
    return total


class DetectionMAP(StepEvaluation):
    """COCO mAP and mAP@0.5 of the deterministic model on the validation or test set (torchmetrics' backend).

    Logs ``active/<split>_map``, ``active/<split>_map_50`` and ``active/num_boxes_labelled`` at every step, against
    the images labelled (the step's x-axis) and, through the last, against the boxes labelled (a second figure of the
    same run). Targets are ``item[1]`` (or ``item["target"]``) of the split: ``{"boxes": [n, 4], "labels": [n]}``.
    Each rank evaluates its own shard; the metric's states are synchronised when it is computed. Needs the
    ``detection`` extra (pycocotools or faster-coco-eval). See docs/detection.md.

    Args:
        split: ``"test"`` (default) or ``"val"``.

    Examples:
        >>> DetectionMAP(split="val")
        DetectionMAP(split='val')
    """

    def __init__(self, split: Split = "test") -> None:
        super().__init__()
        self.split = check_split(split)
        self._box_counts: dict[int, int] = {}

    def check(self, datamodule: ActiveDataModule) -> None:
        """Needs the split's dataset, a datamodule of the detection task, and the metric's backends installed."""
        self._require(datamodule, self.split)
        if not isinstance(datamodule.ledger.task_type, Detection):
            raise ValueError(
                "Expected `DetectionMAP` with `ActiveDataModule(task='detection')`, but the datamodule's task is"
                f" {datamodule.ledger.task_type!r}."
            )
        Detection().metric()  # at setup, not after the first step's training: the COCO backends may be missing

    def check_model(self, pl_module: pl.LightningModule, datamodule: ActiveDataModule) -> None:
        """Raise a clear error at fit start unless ``forward`` in eval mode gives torchvision's detection format."""
        dataset = datamodule.eval_dataset(self.split)
        if len(dataset) == 0:  # type: ignore[arg-type]
            return
        inputs = next(iter(datamodule._loader(Subset(dataset, [0]), 1)))[0]
        with switch_modes(pl_module, lambda _: False), torch.inference_mode():
            outputs = call_module(pl_module, move_data_to_device(inputs, pl_module.device))
        check_detections(outputs, "forward's outputs")

    def __call__(self, context: StepContext) -> dict[str, float]:
        """``{"<split>_map": ..., "<split>_map_50": ..., "num_boxes_labelled": ...}``."""
        datamodule, module, trainer = context.datamodule, context.pl_module, context.trainer
        dataset = datamodule.eval_dataset(self.split)
        local = shard(torch.arange(len(dataset)), trainer.global_rank, trainer.world_size)  # type: ignore[arg-type]
        metric = Detection().metric().to(module.device)
        with switch_modes(module, lambda _: False), torch.inference_mode():
            for batch in datamodule._loader(Subset(dataset, local.tolist()), datamodule.eval_batch_size):
                inputs, targets = batch[0], batch[1]
                outputs = check_detections(call_module(module, move_data_to_device(inputs, module.device)))
                if len(outputs) != len(targets):
                    raise ValueError(
                        f"Expected one detection dict per image of the batch ({len(targets)}), but got {len(outputs)}."
                    )
                metric.update(
                    [{key: output[key] for key in ("boxes", "labels", "scores")} for output in outputs],
                    [_target(target, module.device) for target in targets],
                )
        figures = metric.compute()
        return {
            f"{self.split}_map": float(figures["map"]),
            f"{self.split}_map_50": float(figures["map_50"]),
            "num_boxes_labelled": float(num_boxes_labelled(datamodule, self._box_counts)),
        }

    def __repr__(self) -> str:
        return f"DetectionMAP(split={self.split!r})"


def _target(target: Any, device: torch.device) -> dict[str, Any]:
    checked = Detection().check_label({key: target[key] for key in ("boxes", "labels")})
    return {key: value.to(device) for key, value in checked.items()}
