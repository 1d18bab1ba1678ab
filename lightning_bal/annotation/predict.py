"""The model's deterministic guess for some items: what annotators are shown, and what stop sets compare."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_bal.functional.outputs import OutputKey, select_output

__all__ = ["predict_classes"]


def predict_classes(
    pl_module: pl.LightningModule, loader: DataLoader, output: OutputKey | None = None
) -> tuple[Tensor, Tensor]:
    """Classes and their probabilities ``([N], [N])`` of the model in eval mode over ``(inputs, indices)`` batches.

    The module's training mode is restored afterwards; ``output`` names the logits of a model with several outputs.

    Examples:
        >>> from torch.utils.data import TensorDataset
        >>> class Fixed(pl.LightningModule):
        ...     def forward(self, x):
        ...         return x
        >>> loader = DataLoader(TensorDataset(torch.tensor([[0.0, 2.0], [3.0, 0.0]]), torch.arange(2)))
        >>> classes, probabilities = predict_classes(Fixed(), loader)
        >>> classes.tolist(), [round(p, 3) for p in probabilities.tolist()]
        ([1, 0], [0.881, 0.953])
    """
    was_training = pl_module.training
    pl_module.eval()
    classes, confidences = [], []
    try:
        with torch.no_grad():
            for inputs, _ in loader:
                inputs = inputs.to(pl_module.device) if isinstance(inputs, Tensor) else inputs
                logits = select_output(pl_module(inputs), output)
                confidence, predicted = logits.float().softmax(-1).max(-1)
                classes.append(predicted.cpu())
                confidences.append(confidence.cpu())
    finally:
        pl_module.train(was_training)
    if not classes:
        return torch.empty(0, dtype=torch.long), torch.empty(0)
    return torch.cat(classes), torch.cat(confidences)
