"""What the posteriors share: reading pool batches, and putting a model's weights in and out of one vector."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from lightning_utilities import apply_to_collection
from torch import Tensor, nn

from lightning_bal.mc.pool_batches import IndexLedger, module_device, unpack_batch

__all__ = ["finish", "input_batches", "stack_samples"]


def input_batches(module: nn.Module, dataloader: Iterable[Any]) -> Iterator[tuple[Any, Tensor]]:
    """``(inputs on the model's device, dataset_indices [B])`` of each batch, as the MC engine reads them."""
    device = module_device(module)
    seen, numbered = IndexLedger(), 0
    for batch in dataloader:
        inputs, indices = unpack_batch(batch, device, numbered)
        seen.check(indices)
        numbered += indices.numel()
        yield inputs, indices


def stack_samples(samples: list[Any]) -> Any:
    """Stack K per-sample outputs ``[B, ...]`` (tensors, or tuples/dicts of them) into ``[B, K, ...]``."""
    first = samples[0]
    if isinstance(first, Tensor):
        return torch.stack(samples, dim=1)
    if isinstance(first, dict):
        return {key: stack_samples([sample[key] for sample in samples]) for key in first}
    return type(first)(stack_samples([sample[i] for sample in samples]) for i in range(len(first)))


def finish(outputs: Any, output_transform: Any) -> Any:
    """The yielded outputs: ``output_transform(outputs)``, or float32 outputs without a transform."""
    return apply_to_collection(outputs, Tensor, Tensor.float) if output_transform is None else output_transform(outputs)
