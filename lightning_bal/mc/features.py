"""Features of each pool batch, taken from the MC pass itself: a forward hook, no extra forward."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from lightning_bal.mc.layers import has_stochastic_layers
from lightning_bal.mc.sampling import SampleRunner
from lightning_bal.mc.split import MCSplit

__all__ = ["FeatureTap"]


class FeatureTap:
    """Records the features of every batch of an MC pass, at the deterministic split or at a named layer.

    Pass it to :func:`~lightning_bal.mc.mc_batches` (or ``MCDropout.batches``) as ``features=``; after each batch is
    yielded, :attr:`latest` holds that batch's features ``[B, ...]`` (float32, in the batch's item order). The
    features come from a forward hook on a layer the pass runs anyway, so they cost no forward of their own.

    Where the features are taken (``layer=None``):

    - a model with ``mc_split()``: the output of its ``features`` module;
    - a plain ``nn.Sequential`` (or a module wrapping one): the output of the last layer before the first stochastic
      layer, i.e. the end of the shared prefix;
    - any other model: there is no split, name a layer.

    A named ``layer`` (a name of ``module.named_modules()``, e.g. ``"net.1"``) must run before every stochastic layer:
    its output is then the same for all K samples. Where the model runs whole K times, the first sample's rows are
    taken (identical to the others for such a layer).

    Args:
        layer: name of the submodule whose output is the features; ``None`` for the split.

    Example:
        >>> import torch
        >>> from lightning_bal.mc import mc_batches
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 4))
        >>> tap = FeatureTap()
        >>> for indices, log_probs in mc_batches(net, [torch.randn(5, 3)], iterations=10, seed=0, features=tap):
        ...     print(log_probs.shape, tap.latest.shape)
        torch.Size([5, 10, 4]) torch.Size([5, 8])
    """

    def __init__(self, layer: str | None = None) -> None:
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"Expected argument `layer` to be a submodule name or None, but got {layer!r}.")
        self.layer = layer
        self.latest: Tensor | None = None
        self._parts: list[tuple[Tensor, bool]] = []
        self._ready: list[Tensor] = []
        self._runner: SampleRunner | None = None

    def _target(self, module: nn.Module, split: MCSplit) -> nn.Module:
        if self.layer is not None:
            modules = dict(module.named_modules())
            if self.layer not in modules:
                names = [name for name in modules if name][:10]
                raise ValueError(
                    f"Expected argument `layer` to name a submodule of the model, but got {self.layer!r}."
                    f" Some names: {names}."
                )
            return modules[self.layer]
        if split.features is not None:
            return split.features
        if split.layers is not None:
            first = next((i for i, layer in enumerate(split.layers) if has_stochastic_layers(layer)), 0)
            if first > 0:
                return split.layers[first - 1]
        raise ValueError(
            "Expected a model with a deterministic part before its first stochastic layer to take features at the"
            " split, but the MC pass runs it whole K times (no split found, or the first layer is stochastic)."
            " Pass `FeatureTap(layer=...)` naming a layer that runs before every stochastic layer, or define"
            " `mc_split()`."
        )

    @contextmanager
    def attach(self, module: nn.Module, split: MCSplit, runner: SampleRunner) -> Iterator[None]:
        """Hook the target layer of ``module`` for the duration of an MC pass (called by the engine)."""
        target = self._target(module, split)
        self._runner, self._parts, self._ready, self.latest = runner, [], [], None
        handle = target.register_forward_hook(self._hook)
        try:
            yield
        finally:
            handle.remove()
            self._runner = None

    def _hook(self, _: nn.Module, __: Any, output: Any) -> None:
        if not isinstance(output, Tensor):
            raise TypeError(f"Expected the feature layer to return a tensor, but got {type(output).__name__}.")
        runner = self._runner
        items_first = True if runner is None else runner._items_first
        self._parts.append((output.detach(), items_first))

    def publish(self, rows: int) -> None:
        """Make the features of the ``rows`` items about to be yielded :attr:`latest` (called by the engine)."""
        ready, self._ready = self._ready, []
        latest = ready[0] if len(ready) == 1 else torch.cat(ready)
        if latest.shape[0] != rows:
            raise RuntimeError(f"Expected features for {rows} items, but {latest.shape[0]} were taken.")
        self.latest = latest

    def finish(self, batch: int) -> None:
        """Assemble the features ``[batch, ...]`` of the items that have just run (called by the engine)."""
        parts, self._parts = self._parts, []
        if not parts:
            raise RuntimeError(
                f"Expected the feature layer {self.layer or '(the split)'} to run during the MC pass, but it did not"
                " run: it is not part of the model's forward, or it is a Linear that the engine folds with the"
                " dropout before it (name a layer before the first stochastic layer)."
            )
        rows = sum(part.shape[0] for part, _ in parts)
        if rows == batch:
            self._ready.append(parts[0][0].float() if len(parts) == 1 else torch.cat([p for p, _ in parts]).float())
            return
        first, items_first = parts[0]
        if not items_first and first.shape[0] % batch == 0:
            # The whole model runs on replicas, sample-major: the first `batch` rows are sample 0.
            self._ready.append(first[:batch].float())
            return
        raise ValueError(
            f"Expected the feature layer {self.layer!r} to run before every stochastic layer (once per item), but it"
            f" saw {rows} rows for a batch of {batch}: it runs after a stochastic layer. Name an earlier layer."
        )
