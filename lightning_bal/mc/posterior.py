"""How the K predictive samples are drawn: the posterior the callback and the evaluations sample from."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from lightning_bal.mc.engine import mc_batches
from lightning_bal.mc.layers import check_stochastic_layers

__all__ = ["MCDropout"]


class MCDropout:
    """MC-Dropout (and MC-DropConnect): K samples of the model's predictions with its stochastic layers on.

    Every option is checked here, when the object is built, so a misspelled or invalid option fails before any
    training. Pass it to :class:`~lightning_bal.ActiveLearningCallback` as ``posterior=``; the engine itself is
    :func:`~lightning_bal.mc.mc_batches`.

    Args:
        consistent_masks: sample ``k`` uses the same masks for every item (K fixed sub-networks; what BatchBALD and
            EPIG need, and the fast path), or ``False`` for independent masks per item.
        share_prefix: run the deterministic prefix once per batch where the model's structure allows it.
        chunk_rows: most rows (items x samples) per forward after the prefix; ``None`` picks it from
            ``memory_budget``.
        memory_budget: activation bytes per chunk (default 256 MiB on CPU, a quarter of free GPU memory).
        autocast_dtype: run the forwards under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``).
        dropconnect: also drop Linear/Conv weights with this probability (MC-DropConnect); then the model needs no
            dropout layer.

    Example:
        >>> posterior = MCDropout(consistent_masks=False)
        >>> MCDropout(consistant_masks=False)
        Traceback (most recent call last):
        ...
        TypeError: MCDropout.__init__() got an unexpected keyword argument 'consistant_masks'
    """

    def __init__(
        self,
        *,
        consistent_masks: bool = True,
        share_prefix: bool = True,
        chunk_rows: int | None = None,
        memory_budget: int | None = None,
        autocast_dtype: torch.dtype | None = None,
        dropconnect: float | None = None,
    ) -> None:
        for name, flag in (("consistent_masks", consistent_masks), ("share_prefix", share_prefix)):
            if not isinstance(flag, bool):
                raise TypeError(f"Expected argument `{name}` to be a bool, but got {flag!r}.")
        for name, value in (("chunk_rows", chunk_rows), ("memory_budget", memory_budget)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"Expected argument `{name}` to be a positive integer or None, but got {value!r}.")
        if autocast_dtype is not None and not isinstance(autocast_dtype, torch.dtype):
            raise TypeError(
                f"Expected argument `autocast_dtype` to be a torch.dtype or None, but got {autocast_dtype!r}."
            )
        if dropconnect is not None and (
            isinstance(dropconnect, bool) or not isinstance(dropconnect, (int, float)) or not 0 < dropconnect < 1
        ):
            raise ValueError(f"Expected argument `dropconnect` to be a probability in (0, 1), but got {dropconnect!r}.")
        self.consistent_masks = consistent_masks
        self.share_prefix = share_prefix
        self.chunk_rows = chunk_rows
        self.memory_budget = memory_budget
        self.autocast_dtype = autocast_dtype
        self.dropconnect = None if dropconnect is None else float(dropconnect)

    def check(self, module: nn.Module) -> None:
        """Raise a clear error if ``module`` cannot be sampled (no stochastic layer and no DropConnect)."""
        if self.dropconnect is None:
            check_stochastic_layers(module)

    def batches(
        self,
        module: nn.Module,
        dataloader: Iterable[Any],
        iterations: int,
        seed: int,
        output_transform: Callable[[Any], Any] | None,
    ) -> Iterator[tuple[Tensor, Any]]:
        """``(dataset_indices [B], transformed outputs)`` of each batch: see :func:`~lightning_bal.mc.mc_batches`."""
        return mc_batches(
            module,
            dataloader,
            iterations,
            seed=seed,
            consistent_masks=self.consistent_masks,
            output_transform=output_transform,
            share_prefix=self.share_prefix,
            chunk_rows=self.chunk_rows,
            memory_budget=self.memory_budget,
            autocast_dtype=self.autocast_dtype,
            dropconnect=self.dropconnect,
        )

    def __repr__(self) -> str:
        defaults = MCDropout()
        changed = {k: v for k, v in vars(self).items() if getattr(defaults, k) != v}
        return f"MCDropout({', '.join(f'{k}={v!r}' for k, v in changed.items())})"
