"""torchvision's detectors (untrained, ``weights=None``) through the callback, with dropout added to their heads.

PyPI's Linux torchvision wheel links CUDA torch; ``tests/detection/torchvision_cpu.py`` makes it importable on a CPU
torch. Where it still cannot be imported, these tests are skipped with the reason.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor, nn

from lightning_bal import ActiveDataModule, ActiveLearningCallback
from lightning_bal.callbacks import DetectionMAP
from lightning_bal.tasks.detection import detection_collate
from tests.detection.models import CLASSES, SIZE, Squares
from tests.detection.torchvision_cpu import torchvision_or_reason

torchvision, REASON = torchvision_or_reason()
pytestmark = pytest.mark.skipif(torchvision is None, reason=REASON)


def with_head_dropout(name: str) -> nn.Module:
    """The detector ``name`` for ``CLASSES`` classes and tiny images, with dropout before its class scores."""
    builder = getattr(torchvision.models.detection, name)
    model = builder(weights=None, weights_backbone=None, num_classes=CLASSES + 1, min_size=SIZE * 2, max_size=SIZE * 2)
    if name.startswith("fasterrcnn"):
        predictor = model.roi_heads.box_predictor
        predictor.cls_score = nn.Sequential(nn.Dropout(0.3), predictor.cls_score)
    else:
        head = model.head.classification_head
        head.cls_logits = nn.Sequential(nn.Dropout2d(0.3), head.cls_logits)
    return model


class Wrapped(pl.LightningModule):
    """A torchvision detector as people train one in Lightning: ``model(images, targets)`` gives the losses."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None) -> Any:
        return self.model(list(images)) if targets is None else self.model(list(images), targets)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return sum(self(batch[0], batch[1]).values())  # type: ignore[return-value]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_fpn", "retinanet_resnet50_fpn", "fcos_resnet50_fpn"])
def test_a_torchvision_detector_runs_through_the_callback(tmp_path, name):
    pl.seed_everything(0)
    dm = ActiveDataModule(
        Squares(8),
        test_dataset=Squares(2, seed=1),
        task="detection",
        num_classes=CLASSES + 1,
        initial_labels=2,
        seed=0,
        batch_size=2,
        pool_batch_size=3,
        collate_fn=detection_collate,
    )
    callback = ActiveLearningCallback(
        "detection_bald", query_size=2, iterations=2, seed=0, evaluations=[DetectionMAP("test")]
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Wrapped(with_head_dropout(name)), datamodule=dm)
    assert dm.num_labelled == 2 + 2 * 2
    assert [set(figures) >= {"active/test_map", "active/num_boxes_labelled"} for figures in callback.history] == [
        True,
        True,
    ]
