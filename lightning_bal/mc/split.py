"""Finding the deterministic prefix of a model: the part that runs once per batch instead of K times."""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from torch import nn

from lightning_bal.mc.dropconnect import DROPCONNECT_TYPES, check_dropconnect_layers
from lightning_bal.mc.layers import check_stochastic_layers, has_stochastic_layers

__all__ = ["MCSplit", "SplitModule", "describe_split", "flatten_sequential", "split_module", "wrapped_sequential"]


@runtime_checkable
class SplitModule(Protocol):
    """A model that declares where its deterministic prefix ends.

    ``mc_split()`` returns ``(features, head)`` with ``module(x) == head(features(x))`` and no stochastic layer in
    ``features``, which then runs once per batch; see docs/user_guide.md#the-fast-mc-path-for-a-model-of-your-own.
    Returning ``(nn.Identity(), self.net)`` for an ``nn.Sequential`` ``self.net`` lets the engine split inside it.

    Examples:
        >>> class Net(nn.Sequential):
        ...     def mc_split(self):
        ...         return self[0], self[1:]
        >>> isinstance(Net(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2)), SplitModule)
        True
    """

    def mc_split(self) -> tuple[nn.Module, nn.Module]:
        """Return ``(features, head)`` with ``forward(x) == head(features(x))``."""
        ...


class MCSplit(NamedTuple):
    """What runs once per batch (``features``), and what runs K times (``head``, as flat ``layers`` when known).

    ``unverified``: a ``head`` guessed from the structure, used once the first batch shows it computes ``forward``.
    """

    features: nn.Module | None
    layers: list[nn.Module] | None
    head: nn.Module
    unverified: bool = False


def flatten_sequential(module: nn.Module) -> list[nn.Module] | None:
    """The layers of a plain ``nn.Sequential`` (one whose ``forward`` is not overridden), nested ones inlined."""
    if not isinstance(module, nn.Sequential) or type(module).forward is not nn.Sequential.forward:
        return None
    layers: list[nn.Module] = []
    for child in module:
        inner = flatten_sequential(child)
        layers.extend([child] if inner is None else inner)
    return layers


def wrapped_sequential(module: nn.Module) -> nn.Sequential | None:
    """The plain ``nn.Sequential`` child holding all of ``module``'s state, as in ``self.net = nn.Sequential(...)``.

    Whether ``forward`` really is ``self.net(x)`` cannot be read from the structure: callers must check it.
    """
    state = {id(t) for t in [*module.parameters(), *module.buffers()]}
    for child in module.children():
        if flatten_sequential(child) is None:
            continue
        if state and state == {id(t) for t in [*child.parameters(), *child.buffers()]}:
            return child  # type: ignore[return-value]
    return None


def _maskable(module: nn.Module) -> bool:
    return any(isinstance(m, DROPCONNECT_TYPES) for m in module.modules())


def split_module(module: nn.Module, dropconnect: bool = False) -> MCSplit:
    """Split ``module`` into a deterministic ``features`` part and the rest, where the structure allows it.

    A :class:`SplitModule` gives its split; a plain ``nn.Sequential`` (or, once checked, a module wrapping one) is
    split layer by layer by the engine; any other module runs whole, K times. With ``dropconnect``, declared
    ``features`` holding a Linear/Conv layer run whole too: their weights differ in every sample.
    """
    if isinstance(module, SplitModule):
        pair = module.mc_split()
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(m, nn.Module) for m in pair)):
            raise TypeError(f"Expected `mc_split()` to return a `(features, head)` pair of modules, but got {pair!r}")
        features, head = pair
        if has_stochastic_layers(features):
            raise ValueError(
                "Expected the `features` returned by `mc_split()` to hold no stochastic layer, but got one:"
                " it would run once per batch, so its randomness would be shared by all MC samples."
            )
        if dropconnect and _maskable(features):
            return MCSplit(None, None, module)
        return MCSplit(features, flatten_sequential(head), head)
    layers = flatten_sequential(module)
    if layers is None and (inner := wrapped_sequential(module)) is not None:
        return MCSplit(None, flatten_sequential(inner), inner, unverified=True)
    return MCSplit(None, layers, module)


def describe_split(module: nn.Module, dropconnect: bool = False) -> str:
    """Which MC path the engine takes for ``module`` (with MC-DropConnect on, if ``dropconnect``), and why.

    Logged at setup, so the slow path is never silent. Refuses a module with nothing stochastic in it.
    """
    if dropconnect:
        check_dropconnect_layers(module)
    else:
        check_stochastic_layers(module)
    name = type(module).__name__
    try:
        split = split_module(module, dropconnect)
    except (TypeError, ValueError) as err:
        return f"K full passes: {err}"
    if dropconnect and isinstance(module, SplitModule) and split.features is None:
        return (
            f"K full passes of the whole `{name}`: MC-DropConnect masks the Linear/Conv layers of its declared"
            " `mc_split()` features, so they cannot run once per batch"
        )
    if split.layers is None and split.features is not None:
        # The user already split the model: the head as a whole is what runs K times, nothing more to share.
        return "declared `mc_split()`: its features run once per batch, its head (not a plain nn.Sequential) K times"
    if split.layers is None:
        return (
            f"K full passes of the whole `{name}`: its `forward` is custom (not a plain nn.Sequential, nor one wrapping"
            " a single nn.Sequential). Define `mc_split()` returning `(features, head)` with the deterministic part in"
            " `features` to run it once per batch (see the user guide)."
        )

    def stochastic(layer: nn.Module) -> bool:
        return (dropconnect and _maskable(layer)) or has_stochastic_layers(layer)

    first = next((i for i, layer in enumerate(split.layers) if stochastic(layer)), None)
    shared = ", ".join(type(layer).__name__ for layer in split.layers[:first][-2:])
    prefix = (
        "declared `mc_split()`: its features run once per batch; in its head, " if split.features is not None else ""
    )
    checked = (
        " (a module wrapping an nn.Sequential: checked against `forward` on the first batch)"
        if split.unverified
        else ""
    )
    if first is None:
        # Stochastic (checked above) outside these layers: e.g. a dropout `forward` applies around a wrapped Sequential.
        return (
            f"{prefix}none of its {len(split.layers)} plain layers is stochastic (its randomness is outside){checked}"
        )
    if first == 0:
        return f"{prefix}no shared layers: the first layer is stochastic, all {len(split.layers)} run K times{checked}"
    return (
        f"{prefix or 'shared prefix: '}layers 0-{first - 1} of {len(split.layers)} (up to {shared}) run once per batch,"
        f" the {len(split.layers) - first} from {type(split.layers[first]).__name__} on run K times{checked}"
    )
