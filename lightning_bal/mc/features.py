"""Features of each pool batch, taken from the MC pass itself: a forward hook, no extra forward."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lightning_bal.mc.layers import has_stochastic_layers
from lightning_bal.mc.sampling import SampleRunner
from lightning_bal.mc.split import MCSplit
from lightning_bal.utilities.checks import check_bool

__all__ = ["FeatureTap"]


class FeatureTap:
    """Records the features of every batch of an MC pass, at the deterministic split or at a named layer.

    Pass it to :func:`~lightning_bal.mc.mc_batches` (or ``MCDropout.batches``) as ``features=``; after each batch is
    yielded, :attr:`latest` holds its features ``[B, ...]`` (float32, in item order). A layer after a stochastic one
    gives its MC mean over the K samples; see docs/diversity.md#embeddings-from-the-pool-pass-at-no-extra-forward.

    Args:
        layer: Name of a submodule (of ``module.named_modules()``) whose output is the features; ``None`` for the
            end of the model's deterministic prefix; :attr:`LAST_LINEAR` for the input of its last ``nn.Linear``.
        inputs: Take the layer's input instead of its output.

    Examples:
        >>> from lightning_bal.mc import mc_batches
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 4))
        >>> tap = FeatureTap()
        >>> for indices, log_probs in mc_batches(net, [torch.randn(5, 3)], iterations=10, seed=0, features=tap):
        ...     print(log_probs.shape, tap.latest.shape)
        torch.Size([5, 10, 4]) torch.Size([5, 8])
    """

    #: ``layer`` value for the input of the model's last ``nn.Linear`` (what BADGE's gradients need).
    LAST_LINEAR: ClassVar[str] = "<input of the last nn.Linear>"

    def __init__(self, layer: str | None = None, *, inputs: bool = False) -> None:
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"Expected argument `layer` to be a submodule name or None, but got {layer!r}.")
        check_bool("inputs", inputs)
        self.layer = layer
        self.inputs = inputs or layer == self.LAST_LINEAR
        self.latest: Tensor | None = None
        self._parts: list[tuple[Tensor, bool, range]] = []
        self._fallback: list[tuple[Tensor, bool, range]] = []
        self._ready: list[Tensor] = []
        self._runner: SampleRunner | None = None

    def _split(self, split: MCSplit) -> nn.Module | None:
        if split.features is not None:
            return split.features
        if split.layers is not None:
            first = next((i for i, layer in enumerate(split.layers) if has_stochastic_layers(layer)), 0)
            if first > 0:
                return split.layers[first - 1]
        return None

    def _target(self, module: nn.Module, split: MCSplit) -> nn.Module:
        if self.layer == self.LAST_LINEAR:
            linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise ValueError(
                    "Expected the model to hold an nn.Linear for `FeatureTap.LAST_LINEAR`, but found none."
                )
            return linears[-1]
        if self.layer is not None:
            modules = dict(module.named_modules())
            if self.layer not in modules:
                names = [name for name in modules if name][:10]
                raise ValueError(
                    f"Expected argument `layer` to name a submodule of the model, but got {self.layer!r}."
                    f" Some names: {names}."
                )
            return modules[self.layer]
        target = self._split(split)
        if target is None:
            raise ValueError(
                "Expected a model with a deterministic part before its first stochastic layer to take features at the"
                " split, but the MC pass runs it whole K times (no split found, or the first layer is stochastic)."
                " Pass `FeatureTap(layer=...)` naming a layer, or define `mc_split()`."
            )
        return target

    @contextmanager
    def attach(self, module: nn.Module, split: MCSplit, runner: SampleRunner) -> Iterator[None]:
        """Hook the target layer of ``module`` for the duration of an MC pass (called by the engine)."""
        target = self._target(module, split)
        self._runner, self._parts, self._fallback, self._ready, self.latest = runner, [], [], [], None
        if self.inputs:
            handles = [target.register_forward_pre_hook(lambda _, args: self._record(self._parts, args[0]))]
        else:
            handles = [target.register_forward_hook(lambda _, __, out: self._record(self._parts, out))]
        fallback = self._split(split) if self.layer == self.LAST_LINEAR else None
        if fallback is not None:
            # A last Linear right after the first dropout is folded into one GEMM and never runs as a module: its
            # input is then the split's output (dropout has mean one).
            handles.append(fallback.register_forward_hook(lambda _, __, out: self._record(self._fallback, out)))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            self._runner = None

    def _record(self, parts: list[tuple[Tensor, bool, range]], value: Any) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"Expected the feature layer to see a tensor, but got {type(value).__name__}.")
        runner = self._runner
        layout = (True, range(1)) if runner is None else (runner._items_first, runner._ks)
        parts.append((value.detach(), *layout))

    def publish(self, rows: int) -> None:
        """Make the features of the ``rows`` items about to be yielded :attr:`latest` (called by the engine)."""
        ready, self._ready = self._ready, []
        latest = ready[0] if len(ready) == 1 else torch.cat(ready)
        if latest.shape[0] != rows:
            raise RuntimeError(f"Expected features for {rows} items, but {latest.shape[0]} were taken.")
        self.latest = latest

    def finish(self, batch: int) -> None:
        """Assemble the features ``[batch, ...]`` of the items that have just run (called by the engine)."""
        parts, fallback, self._parts, self._fallback = self._parts, self._fallback, [], []
        parts = parts or fallback
        if not parts:
            raise RuntimeError(
                f"Expected the feature layer {self.layer or '(the split)'} to run during the MC pass, but it did not"
                " run: it is not part of the model's forward, or it is a Linear that the engine folds with the"
                " dropout before it (name the layer before that dropout)."
            )
        self._ready.append(_assemble(parts, batch, self._runner.iterations if self._runner else 1, self.layer))


def _assemble(parts: list[tuple[Tensor, bool, range]], batch: int, iterations: int, layer: str | None) -> Tensor:
    """Features ``[batch, ...]`` from what the hook saw: per-item rows, or the MC mean of per-sample rows."""
    rows = sum(part.shape[0] for part, _, _ in parts)
    if rows == batch:
        return parts[0][0].float() if len(parts) == 1 else torch.cat([part for part, _, _ in parts]).float()
    if all(items_first for _, items_first, _ in parts) and rows == batch * iterations:
        # After a stochastic layer, run item by item: [b * K] rows, items first; the MC mean over the K samples.
        return torch.cat([p.float().view(-1, iterations, *p.shape[1:]).mean(1) for p, _, _ in parts])
    if not any(items_first for _, items_first, _ in parts):
        # The whole model on replicas: [K_c * batch] rows per forward, sample-major; the MC mean over all K. A
        # forward that repeats samples already seen (the engine's one-sample measuring run) is skipped.
        seen: set[int] = set()
        total = None
        for part, _, ks in parts:
            if seen.intersection(ks) or part.shape[0] != len(ks) * batch:
                continue
            seen.update(ks)
            chunk = part.float().view(len(ks), batch, *part.shape[1:]).sum(0)
            total = chunk if total is None else total + chunk
        if total is not None and len(seen) == iterations:
            return total / iterations
    raise ValueError(
        f"Expected the feature layer {layer!r} to see one row per item or per item and sample, but it saw {rows} rows"
        f" for {batch} items and {iterations} samples."
    )
