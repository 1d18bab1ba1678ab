"""MC-DropConnect: dropout on the weights of Linear and Conv layers, for models that have no dropout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["DROPCONNECT_TYPES", "DropConnectWeight", "check_dropconnect_layers", "mc_dropconnect"]

#: Layers whose ``weight`` MC-DropConnect masks.
DROPCONNECT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class DropConnectWeight(nn.Module):
    """Weight parametrization ``W * M / (1 - p)``, ``M ~ Bernoulli(1 - p)``: a fresh mask from torch's generator.

    The MC engine sets :attr:`mask_fn` to draw seeded masks instead (one per MC sample, shared by the batch's items).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = _check_p(p)
        self.mask_fn: Callable[[Tensor], Tensor] | None = None

    def forward(self, weight: Tensor) -> Tensor:
        """The masked, rescaled ``weight``."""
        if self.mask_fn is None:
            return nn.functional.dropout(weight, self.p, training=True)
        return weight * self.mask_fn(weight)


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"Expected argument `dropconnect` to be a float in [0, 1), but got {p!r}")
    return float(p)


def check_dropconnect_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of ``module`` (itself included) that MC-DropConnect masks; refuses none (every sample alike)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"Expected argument `module` to be a `torch.nn.Module`, but got {type(module).__name__}.")
    layers = [layer for layer in module.modules() if isinstance(layer, DROPCONNECT_TYPES)]
    if not layers:
        names = ", ".join(t.__name__ for t in DROPCONNECT_TYPES)
        raise ValueError(
            f"Expected argument `module` to hold a layer MC-DropConnect can mask ({names}), but"
            f" `{type(module).__name__}` has none: its weights cannot be dropped."
        )
    return layers


@contextmanager
def mc_dropconnect(module: nn.Module, p: float) -> Iterator[list[DropConnectWeight]]:
    """Mask the weights of every Linear/Conv layer of ``module`` while the context is open.

    The original ``weight`` parameters (the same objects, so optimizers keep working) come back on exit, also after
    an exception.

    Args:
        module: The model; it must hold a layer to mask.
        p: Probability of dropping each weight, in ``[0, 1)``.

    Yields:
        The parametrizations, one per masked layer, in registration order.

    Examples:
        >>> net = nn.Linear(4, 2)
        >>> weight = net.weight
        >>> with mc_dropconnect(net, 0.5) as params:
        ...     len(params)
        1
        >>> net.weight is weight
        True
    """
    p = _check_p(p)
    layers = check_dropconnect_layers(module)
    # Parametrizing re-registers `weight` after `bias`; remember the order so state_dict keys come back as they were.
    orders = [list(layer._parameters) for layer in layers]
    done: list[nn.Module] = []
    params: list[DropConnectWeight] = []
    try:
        for layer in layers:
            param = DropConnectWeight(p)
            parametrize.register_parametrization(layer, "weight", param, unsafe=True)
            done.append(layer)
            params.append(param)
        yield params
    finally:
        for layer, order in reversed(list(zip(done, orders, strict=True))):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
            layer._parameters = {name: layer._parameters[name] for name in order}
