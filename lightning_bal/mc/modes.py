"""Switching a model into MC-Dropout mode and restoring every submodule's mode exactly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from torch import nn

from lightning_bal.mc.dropconnect import mc_dropconnect
from lightning_bal.mc.layers import check_stochastic_layers, is_stochastic

__all__ = ["mc_dropout", "switch_modes"]


@contextmanager
def switch_modes(module: nn.Module, train: Callable[[nn.Module], bool]) -> Iterator[nn.Module]:
    """Train mode for each submodule where ``train(submodule)``, eval mode elsewhere; every flag restored on exit."""
    saved = [(sub, sub.training) for sub in module.modules()]
    try:
        # Set flags directly: `.train()`/`.eval()` recurse and a user override of them could touch other state.
        for sub, _ in saved:
            sub.training = train(sub)
        yield module
    finally:
        for sub, flag in saved:
            sub.training = flag


@contextmanager
def mc_dropout(module: nn.Module, *, dropconnect: float | None = None) -> Iterator[nn.Module]:
    r"""Keep dropout active at prediction time: MC-Dropout (Gal and Ghahramani, 2016).

    The model goes to eval mode (BatchNorm uses its running statistics) and only the stochastic layers (the dropout
    types and layers marked with :func:`~lightning_bal.mc.layers.mark_stochastic`) run in training mode. Every
    submodule's ``.training`` is restored on exit, also after an exception. A model with nothing stochastic is refused.

    Args:
        module: The model; yielded.
        dropconnect: If given, also drop each weight of every Linear/Conv layer with this probability
            (MC-DropConnect), for models without dropout; the weights are restored on exit.

    Examples:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout(0.5))
        >>> with mc_dropout(net):
        ...     [m.training for m in net]
        [False, False, True]
        >>> [m.training for m in net]
        [True, True, True]
    """
    if dropconnect is None:
        check_stochastic_layers(module)
    with ExitStack() as stack:
        stack.enter_context(switch_modes(module, is_stochastic))
        if dropconnect is not None:
            stack.enter_context(mc_dropconnect(module, dropconnect))
        yield module
