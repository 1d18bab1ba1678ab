"""Reading a pool loader's batches: inputs alone or ``(inputs, dataset_indices)``, on the model's device."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch import Tensor, nn

__all__ = ["IndexLedger", "module_device", "unpack_batch"]


def module_device(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (or buffer); the CPU for a module without either."""
    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    return torch.device("cpu") if first is None else first.device


def unpack_batch(batch: Any, device: torch.device, numbered: int) -> tuple[Any, Tensor]:
    """``(inputs, dataset_indices)`` of a batch; a batch of inputs alone is numbered from ``numbered`` on."""
    pair = isinstance(batch, (tuple, list)) and len(batch) == 2
    if pair and _is_index_vector(batch[1], batch[0]):
        inputs, indices = batch
    elif pair and isinstance(batch[1], Tensor):
        raise TypeError(
            "Expected each pool batch to be inputs alone or a pair `(inputs, dataset_indices)` with `dataset_indices`"
            f" an integer tensor [B], but got a second element of dtype {batch[1].dtype} and shape"
            f" {tuple(batch[1].shape)}: a loader of `(inputs, targets)`? Pass a loader of inputs alone."
        )
    else:
        inputs = batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 1 else batch
        indices = torch.arange(numbered, numbered + _batch_size(inputs))
    return move_data_to_device(inputs, device), indices.to(device=device, dtype=torch.int64)


def _is_index_vector(value: Any, inputs: Any) -> bool:
    if not isinstance(value, Tensor) or value.dim() != 1 or value.dtype.is_floating_point or value.dtype == torch.bool:
        return False
    return value.shape[0] == _batch_size(inputs, default=value.shape[0])


def _batch_size(inputs: Any, default: int | None = None) -> int:
    """Rows of the first tensor in ``inputs`` (a tensor, or a tuple/list/dict holding tensors)."""
    if isinstance(inputs, Tensor) and inputs.dim() > 0:
        return int(inputs.shape[0])
    values = inputs.values() if isinstance(inputs, dict) else inputs if isinstance(inputs, (tuple, list)) else []
    for value in values:
        if isinstance(value, (Tensor, tuple, list, dict)):
            return _batch_size(value, default)
    if default is not None:
        return default
    raise TypeError(f"Expected each pool batch to hold a tensor of inputs, but got {type(inputs).__name__}.")


class IndexLedger:
    """Refuses a dataset index that comes twice within one pass: the sign of a loader of ``(inputs, targets)``."""

    def __init__(self) -> None:
        self.seen = torch.zeros(0, dtype=torch.bool)
        # One past the largest index recorded: a rising batch wholly above it repeats nothing.
        self.top = 0

    def check(self, indices: Tensor) -> None:
        """Record a batch's dataset ``indices``; raise if one is negative or came before in this pass."""
        cpu = indices.cpu()
        if cpu.numel() == 0:
            return
        if int(cpu.min()) < 0:
            raise ValueError(f"Expected non-negative dataset indices, but got {int(cpu.min())}.")
        top = int(cpu.max()) + 1
        if top > self.seen.numel():
            grown = torch.zeros(max(top, 2 * self.seen.numel()), dtype=torch.bool)
            grown[: self.seen.numel()] = self.seen
            self.seen = grown
        if int(cpu[0]) >= self.top and bool((cpu[1:] > cpu[:-1]).all()):
            # The pool loader's batches come in ascending index order: no sort for `unique` (4% of a 1M-item pass).
            self.seen[cpu] = True
            self.top = top
            return
        unique, counts = torch.unique(cpu, return_counts=True)
        repeated = torch.cat([unique[counts > 1], unique[self.seen[unique]]]).unique()
        if repeated.numel():
            raise ValueError(
                f"Expected every dataset index to come once per pass, but {repeated[:5].tolist()} came again. The"
                " loader's second element is read as dataset indices: is it yielding `(inputs, targets)`? Pass a"
                " loader of inputs alone (numbered in loader order), or `(inputs, dataset_indices)`."
            )
        self.seen[unique] = True
        self.top = max(self.top, top)
