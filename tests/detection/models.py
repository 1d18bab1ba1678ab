"""A small detector in pure torch and a dataset of coloured squares, for the detection tests.

The detector predicts, for every cell of a stride-4 grid, the class of the square whose centre falls in it (the
background elsewhere) and that square's box, behind dropout in its head; in eval mode it returns torchvision's
format (with ``class_probs``), in training mode ``model(images, targets)`` returns a dict of losses.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import Dataset

SIZE, STRIDE, CLASSES = 32, 4, 2  # image side, grid stride, object classes (num_classes = CLASSES + 1)


class Squares(Dataset):
    """``n`` RGB images of ``SIZE`` pixels with 0-2 squares each; a square of class c lights channel c - 1."""

    def __init__(self, n: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = 0.1 * torch.rand(n, 3, SIZE, SIZE, generator=generator)
        self.targets: list[dict[str, Tensor]] = []
        for image in self.images:
            count = int(torch.randint(0, 3, (1,), generator=generator))
            sides = torch.randint(6, 12, (count,), generator=generator)
            x1 = (torch.rand(count, generator=generator) * (SIZE - sides)).floor()
            y1 = (torch.rand(count, generator=generator) * (SIZE - sides)).floor()
            labels = torch.randint(1, CLASSES + 1, (count,), generator=generator)
            boxes = torch.stack([x1, y1, x1 + sides, y1 + sides], 1).float()
            for (a, b, c, d), label in zip(boxes.long().tolist(), labels.tolist(), strict=True):
                image[label - 1, b:d, a:c] = 1.0
            self.targets.append({"boxes": boxes.reshape(-1, 4), "labels": labels.long()})

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.images[index], self.targets[index]


class TinyDetector(pl.LightningModule):
    """A grid detector: a conv backbone (stride 4), dropout, a 1x1 head of class logits and box sizes per cell."""

    def __init__(self, threshold: float = 0.2, lr: float = 0.01, dropout: float = 0.3) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(32, CLASSES + 1 + 4, 1)
        self.threshold, self.lr = threshold, lr

    def _raw(self, images: Any) -> tuple[Tensor, Tensor]:
        images = torch.stack(list(images)) if isinstance(images, (list, tuple)) else images
        out = self.head(self.dropout(self.backbone(images)))
        return out[:, : CLASSES + 1], out[:, CLASSES + 1 :]

    def _cells(self) -> Tensor:
        grid = (torch.arange(SIZE // STRIDE, device=self.device) + 0.5) * STRIDE
        return torch.stack(torch.meshgrid(grid, grid, indexing="xy"), 0)  # [2 (x, y), h, w]

    def forward(self, images: Any, targets: list[dict[str, Tensor]] | None = None) -> Any:
        logits, offsets = self._raw(images)
        if self.training and targets is not None:
            return self._losses(logits, offsets, targets)
        probs = logits.softmax(1)
        centre = self._cells()[None] + offsets[:, :2] * STRIDE
        half = 4.0 * offsets[:, 2:].exp()
        boxes = torch.cat([centre - half, centre + half], 1).clamp(0, SIZE)
        detections = []
        for p, b in zip(probs, boxes, strict=True):
            p, b = p.flatten(1).T, b.flatten(1).T
            score, label = p[:, 1:].max(1)
            keep = (score > self.threshold) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
            detections.append(
                {"boxes": b[keep], "labels": label[keep] + 1, "scores": score[keep], "class_probs": p[keep]}
            )
        return detections

    def _losses(self, logits: Tensor, offsets: Tensor, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        cells = SIZE // STRIDE
        classes = torch.zeros(logits.shape[0], cells, cells, dtype=torch.long, device=self.device)
        box_loss = logits.new_zeros(())
        for i, target in enumerate(targets):
            boxes = target["boxes"]
            if not boxes.numel():
                continue
            centre = (boxes[:, :2] + boxes[:, 2:]) / 2
            column, row = (centre / STRIDE).long().clamp(0, cells - 1).unbind(1)
            classes[i, row, column] = target["labels"]
            cell_centre = (torch.stack([column, row], 1).float() + 0.5) * STRIDE
            wanted = torch.cat([(centre - cell_centre) / STRIDE, ((boxes[:, 2:] - boxes[:, :2]) / 8.0).log()], 1)
            box_loss = box_loss + F.smooth_l1_loss(offsets[i, :, row, column].T, wanted, reduction="sum")
        weight = torch.ones(CLASSES + 1, device=self.device)
        weight[0] = 0.1
        return {"classification": F.cross_entropy(logits, classes, weight=weight), "box": box_loss / len(targets)}

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        images, targets = batch[0], batch[1]
        return sum(self(images, targets).values())  # type: ignore[return-value]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)
