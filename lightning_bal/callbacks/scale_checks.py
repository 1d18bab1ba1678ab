"""Setup checks of the pool pass at scale: shardable pool and strategy, a memory budget that fits a batch, autocast."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from lightning_bal.data import ActiveDataModule
from lightning_bal.heuristics import Heuristic
from lightning_bal.heuristics.stochastic import StochasticHeuristic
from lightning_bal.mc.pool_batches import module_device
from lightning_bal.mc.posterior import MCDropout, Posterior

__all__ = ["check_autocast", "check_memory_budget", "check_pool_pass", "check_shardable"]

#: Strategies that run collectives inside the model's forward: every rank must run the same batches, in step.
_SHARDED_MODEL_STRATEGIES = ("FSDPStrategy", "DeepSpeedStrategy", "ModelParallelStrategy")


def check_pool_pass(
    strategy: Any, module: nn.Module, datamodule: ActiveDataModule, heuristic: Heuristic, posterior: Posterior
) -> None:
    """Raise a clear error at setup for a pool pass that could not run: see the three checks below."""
    check_shardable(strategy, datamodule, heuristic)
    if isinstance(posterior, MCDropout):
        check_memory_budget(posterior.memory_budget, datamodule)
        check_autocast(posterior.autocast_dtype, module_device(module))


def check_shardable(strategy: Any, datamodule: ActiveDataModule, heuristic: Heuristic) -> None:
    """The pool must split into independent uneven per-rank shards (no collective in the forward, at most 2**32 items).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> class FSDPStrategy:
        ...     world_size = 2
        >>> dm = ActiveDataModule(TensorDataset(torch.zeros(4, 1)), seed=0)
        >>> check_shardable(FSDPStrategy(), dm, Heuristic())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: The pool pass scores an uneven shard of the pool on each rank independently, but the strategy ...
    """
    name = type(strategy).__name__
    if int(getattr(strategy, "world_size", 1)) > 1 and name in _SHARDED_MODEL_STRATEGIES:
        raise ValueError(
            f"The pool pass scores an uneven shard of the pool on each rank independently, but the strategy {name}"
            " runs collectives inside the model's forward, which needs every rank to run the same batches. Score"
            ' the pool under DDP (`strategy="ddp"`) or on one device.'
        )
    if isinstance(heuristic, StochasticHeuristic) and heuristic.mode == "softrank" and len(datamodule) > 2**32:
        raise ValueError(
            f"Expected a pool of at most 2**32 items for {type(heuristic).__name__} (its ranks are merged across"
            f" processes by 64-bit keys that hold the dataset index in 32 bits), but got {len(datamodule)}."
        )


def check_memory_budget(memory_budget: int | None, datamodule: ActiveDataModule) -> None:
    """``memory_budget`` must hold at least the inputs of one pool batch (``pool_batch_size`` rows).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> dm = ActiveDataModule(TensorDataset(torch.zeros(100, 8)), pool_batch_size=64, seed=0)
        >>> check_memory_budget(1024, dm)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected `MCDropout(memory_budget=...)` to hold at least one pool batch, but got 1024 bytes: ...
    """
    if memory_budget is None or datamodule.num_pool == 0:
        return
    inputs = datamodule.pool_dataloader(datamodule.pool_indices[:1]).dataset[0][0]
    row_bytes = _bytes(inputs)
    batch_bytes = row_bytes * datamodule.pool_batch_size
    if batch_bytes > memory_budget:
        raise ValueError(
            f"Expected `MCDropout(memory_budget=...)` to hold at least one pool batch, but got {memory_budget} bytes:"
            f" the inputs of one batch of `pool_batch_size={datamodule.pool_batch_size}` alone take {batch_bytes}"
            " bytes. Raise the budget or lower `pool_batch_size`."
        )


def check_autocast(dtype: torch.dtype | None, device: torch.device) -> None:
    """Autocast with ``dtype`` must be supported on ``device`` (torch would otherwise silently switch it off).

    Example:
        >>> check_autocast(torch.bfloat16, torch.device("cpu"))
        >>> check_autocast(torch.float64, torch.device("cpu"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Expected `MCDropout(autocast_dtype=...)` to be a dtype that autocast supports on cpu, but got ...
    """
    if dtype is None:
        return
    supported = torch.amp.autocast_mode.is_autocast_available(device.type)
    if supported and device.type == "cuda" and dtype == torch.bfloat16:
        supported = torch.cuda.is_bf16_supported()
    if supported:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.autocast(device.type, dtype=dtype):
                pass
        supported = not any("not supported" in str(warning.message) for warning in caught)
    if not supported:
        raise ValueError(
            f"Expected `MCDropout(autocast_dtype=...)` to be a dtype that autocast supports on {device.type}, but got"
            f" {dtype}: torch would switch autocast off."
        )


def _bytes(inputs: Any) -> int:
    if isinstance(inputs, Tensor):
        return inputs.numel() * inputs.element_size()
    if isinstance(inputs, dict):
        return sum(_bytes(value) for value in inputs.values())
    if isinstance(inputs, (tuple, list)):
        return sum(_bytes(value) for value in inputs)
    return int(getattr(inputs, "nbytes", 0))
