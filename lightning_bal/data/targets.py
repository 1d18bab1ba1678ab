"""Class labels of a dataset: given, read from a ``targets`` attribute, or read item by item."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightning_bal.data.views import target_of

__all__ = ["dataset_classes", "labelled_classes", "resolve_targets"]


def resolve_targets(targets: Any, dataset: Dataset, size: int) -> Tensor | None:
    """``targets`` (else ``dataset.targets``) as an int64 ``[size]`` copy, or ``None`` when neither is given.

    ``None`` too for a ``dataset.targets`` of dicts (a detection dataset's boxes per image).
    """
    if targets is None:
        targets = getattr(dataset, "targets", None)
        # A detection dataset's `targets` are boxes per image (dicts), not classes: there are no classes to read.
        if isinstance(targets, (list, tuple)) and targets and isinstance(targets[0], Mapping):
            return None
    if targets is None:
        return None
    # A copy, not a view: memory borrowed from numpy or from the dataset's own tensor came back as garbage in
    # `ddp_spawn` processes (seen as a bincount of ~1e19 classes).
    try:
        tensor = torch.tensor(np.asarray(targets)).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"Expected argument `targets` to hold integer class labels, but got {err}") from err
    if tensor.numel() != size:
        raise ValueError(
            f"Expected argument `targets` to have one label per sample ({size}), but got {tensor.numel()}."
        )
    if tensor.is_floating_point() or tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"Expected argument `targets` to hold integer class labels, but got dtype {tensor.dtype}.")
    if tensor.numel() and int(tensor.min()) < 0:
        raise ValueError(f"Expected argument `targets` to hold non-negative class labels, but got {int(tensor.min())}.")
    return tensor.long()


def labelled_classes(
    labelled: Tensor, annotations: Mapping[int, int | float], targets: Tensor | None, dataset: Dataset
) -> Tensor | None:
    """Classes of the ascending ``labelled`` indices: annotations first, then ``targets``, else each item's target.

    ``None`` when some label is not an integer class (a regression task).

    Examples:
        >>> labelled_classes(torch.tensor([1, 3]), {3: 2}, torch.tensor([0, 1, 1, 0]), dataset=None)
        tensor([1, 2])
    """
    if any(not isinstance(value, int) for value in annotations.values()):
        return None
    if targets is not None:
        # Vectorised: this runs at every step for the class histogram, over a D_L that keeps growing.
        classes = targets[labelled].clone()
        if annotations:
            annotated = torch.tensor(sorted(annotations), dtype=torch.long)
            classes[torch.searchsorted(labelled, annotated)] = torch.tensor(
                [annotations[i] for i in annotated.tolist()], dtype=torch.long
            )
        return classes
    values: list[int] = []
    for index in labelled.tolist():
        value: Any = annotations.get(index)
        if value is None:
            try:
                value = target_of(dataset[index])
            except TypeError:
                return None
        if isinstance(value, Tensor):
            if value.numel() != 1 or value.is_floating_point():
                return None
            value = value.item()
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        values.append(value)
    return torch.tensor(values, dtype=torch.long)


def dataset_classes(dataset: Dataset) -> Tensor:
    """Class labels of every item of ``dataset``: its ``targets`` attribute, else ``item[1]`` or ``item["target"]``."""
    size = len(dataset)  # type: ignore[arg-type]
    # A `targets` attribute spares decoding every item just for its label.
    known = resolve_targets(None, dataset, size)
    if known is not None:
        return known
    return torch.tensor([int(target_of(dataset[i])) for i in range(size)], dtype=torch.long)
