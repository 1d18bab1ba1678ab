"""Which layers make a forward pass stochastic, and a way for users to mark their own."""

from __future__ import annotations

from torch import nn

__all__ = [
    "BUILTIN_STOCHASTIC_TYPES",
    "check_stochastic_layers",
    "has_stochastic_layers",
    "is_marked",
    "is_stochastic",
    "mark_stochastic",
    "stochastic_layers",
]

#: Dropout variants whose masks the MC engine draws itself (seeded, consistent or per item).
BUILTIN_STOCHASTIC_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)

_MARK = "_lightning_bal_stochastic"


def mark_stochastic(layer: nn.Module) -> nn.Module:
    """Mark a custom layer as stochastic, so that MC-Dropout switches it to training mode.

    Unlike the built-in dropout types, it draws from torch's global generator: neither seeded nor consistent.

    Examples:
        >>> is_stochastic(mark_stochastic(nn.Identity()))
        True
    """
    if not isinstance(layer, nn.Module):
        raise TypeError(f"Expected argument `layer` to be a `torch.nn.Module`, but got {type(layer).__name__}")
    setattr(layer, _MARK, True)
    return layer


def is_marked(layer: nn.Module) -> bool:
    """Whether ``layer`` was marked by :func:`mark_stochastic`."""
    return bool(getattr(layer, _MARK, False))


def is_stochastic(layer: nn.Module) -> bool:
    """Whether ``layer`` itself (not its children) is a built-in dropout type or user-marked."""
    return isinstance(layer, BUILTIN_STOCHASTIC_TYPES) or is_marked(layer)


def stochastic_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """All stochastic submodules of ``module`` (itself included), as ``(name, layer)`` in registration order."""
    return [(name, layer) for name, layer in module.named_modules() if is_stochastic(layer)]


def has_stochastic_layers(module: nn.Module) -> bool:
    """Whether ``module`` holds at least one stochastic layer."""
    return any(is_stochastic(layer) for layer in module.modules())


def check_stochastic_layers(module: nn.Module) -> None:
    """Refuse a ``module`` with no stochastic layer: all its MC samples would be identical."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"Expected argument `module` to be a `torch.nn.Module`, but got {type(module).__name__}")
    if not has_stochastic_layers(module):
        names = ", ".join(t.__name__ for t in BUILTIN_STOCHASTIC_TYPES)
        raise ValueError(
            f"Expected argument `module` to contain a stochastic layer ({names}, or a layer marked with"
            f" `mark_stochastic`), but got `{type(module).__name__}` with none: all MC samples would be identical."
            " Add dropout, mark a stochastic layer, or switch on MC-DropConnect (`dropconnect=p`)."
        )
