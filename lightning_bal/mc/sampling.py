"""The K-sample forward of one batch: layer by layer over a flat ``nn.Sequential``, or whole callables on replicas."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from lightning_utilities import apply_to_collection
from lightning_utilities.core.apply_func import apply_to_collections
from torch import Tensor, nn

from lightning_bal.mc.dropconnect import DROPCONNECT_TYPES, DropConnectWeight
from lightning_bal.mc.layers import BUILTIN_STOCHASTIC_TYPES, has_stochastic_layers, stochastic_layers
from lightning_bal.mc.masks import MaskSampler, apply_dropout, mask_shape
from lightning_bal.tasks import Task

__all__ = ["SampleRunner", "call_module", "first_tensor", "is_random"]

# Layers that only move features around: a mask commutes with them, so it can be carried to the next Linear.
_RESHAPES = (nn.Flatten, nn.Identity)


def call_module(fn: Callable[..., Tensor], inputs: Any) -> Tensor:
    """Call ``fn`` on a batch: ``fn(x)`` for a tensor, ``fn(*x)`` for a tuple/list, ``fn(**x)`` for a dict."""
    if isinstance(inputs, dict):
        return fn(**inputs)
    if isinstance(inputs, (tuple, list)):
        return fn(*inputs)
    return fn(inputs)


def first_tensor(outputs: Any) -> Tensor:
    """The first tensor of a model's outputs (a tensor, or a tuple/list/dict holding tensors)."""
    found: list[Tensor] = []
    apply_to_collection(outputs, Tensor, found.append)
    if not found:
        raise TypeError(f"Expected the model to return a tensor, or a tuple or dict of tensors, but got {outputs!r}.")
    return found[0]


def _place(start: int, stop: int, out: Tensor, chunk: Tensor) -> Tensor:
    """Copy a ``[K_c, B, ...]`` chunk into samples ``start:stop`` of the ``[B, K, ...]`` outputs."""
    return out[:, start:stop].copy_(chunk.transpose(0, 1))


def _split_rows(samples: int, rows: int, output: Tensor) -> Tensor:
    """A sample-major ``[samples * rows, ...]`` output as ``[samples, rows, ...]``."""
    return output.view(samples, rows, *output.shape[1:])


def _repeat(inputs: Any, times: int, rows: int) -> Any:
    # Repeat every tensor holding the batch (dim 0 == rows) `times` over, sample-major.
    def repeat(x: Tensor) -> Tensor:
        return x.repeat(times, *([1] * (x.dim() - 1))) if x.dim() and x.shape[0] == rows and times > 1 else x

    return apply_to_collection(inputs, Tensor, repeat)


def is_random(layer: nn.Module, dropconnect: bool) -> bool:
    """Whether ``layer`` holds a stochastic layer, or (under ``dropconnect``) a weight that DropConnect masks."""
    return has_stochastic_layers(layer) or (
        dropconnect and any(isinstance(m, DROPCONNECT_TYPES) for m in layer.modules())
    )


def _spread(shared: Tensor, pending: Tensor | None, k: int) -> Tensor:
    """``[B, ...]`` activations as ``[B, K, ...]``: times each sample's pending mask, else repeated as a view."""
    if pending is not None:
        return shared.unsqueeze(1) * pending.unsqueeze(0)
    return shared.unsqueeze(1).expand(shared.shape[0], k, *shared.shape[1:])


def _rowwise(layer: nn.Module, y: Tensor) -> Tensor:
    """Run ``layer`` on ``[B, K, ...]`` activations as ``B * K`` rows and give them back as ``[B, K, ...]``."""
    b, k = y.shape[:2]
    out = layer(y.reshape(b * k, *y.shape[2:]))
    return out.view(b, k, *out.shape[1:])


class SampleRunner:
    """Runs the K MC samples of one batch; ``chunk_rows=None`` sizes forwards from ``memory_budget`` once measured."""

    def __init__(
        self,
        module: nn.Module,
        iterations: int,
        masks: MaskSampler,
        chunk_rows: int | None,
        memory_budget: int,
        dropconnect: Sequence[DropConnectWeight] = (),
        task: Task | None = None,
    ) -> None:
        self.iterations = iterations
        self.task = Task() if task is None else task
        self.masks = masks
        self.chunk_rows = chunk_rows
        self.memory_budget = memory_budget
        self.dropconnect = list(dropconnect)
        self._layer_ids = {id(layer): i for i, (_, layer) in enumerate(stochastic_layers(module))}
        self._row_bytes: float | None = None
        self._folded: dict[tuple[int, int], tuple[Tensor, Tensor | None]] = {}
        # What the forward hooks need to know about the rows currently flowing: samples, dataset indices, layout.
        self._ks = range(0)
        self._indices: Tensor | None = None
        self._items_first = False
        for i, param in enumerate(self.dropconnect):
            param.mask_fn = self._dropconnect_mask(len(self._layer_ids) + i, param.p)

    @contextmanager
    def hooks(self, module: nn.Module) -> Iterator[None]:
        """Let built-in dropout layers run as identities and apply the engine's masks in forward hooks."""
        handles = [
            layer.register_forward_hook(self._hook)
            for layer in module.modules()
            if isinstance(layer, BUILTIN_STOCHASTIC_TYPES)
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            for param in self.dropconnect:
                param.mask_fn = None

    def _hook(self, layer: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor:
        x = args[0]
        kc = len(self._ks)
        rows = x.shape[0] // kc
        y = x.view(rows, kc, *x.shape[1:]) if self._items_first else x.view(kc, rows, *x.shape[1:]).transpose(0, 1)
        y = self._drop(layer, y, self._indices)
        return y.reshape(x.shape) if self._items_first else y.transpose(0, 1).reshape(x.shape)

    def _dropconnect_mask(self, layer_id: int, p: float) -> Callable[[Tensor], Tensor]:
        def mask(weight: Tensor) -> Tensor:
            keep = self.masks.consistent_keep(layer_id, p, tuple(weight.shape), self._ks, weight.device)
            return keep[0].to(weight.dtype) * (1.0 / (1.0 - p))

        return mask

    def _drop(self, layer: nn.Module, y: Tensor, indices: Tensor | None) -> Tensor:
        """Apply ``layer``'s dropout to per-sample activations ``y`` ``[B, K_c, ...]`` for samples ``self._ks``."""
        shape = mask_shape(layer, tuple(y.shape[2:]))
        p = float(layer.p)  # type: ignore[arg-type]
        keep = self.masks.keep(self._layer_ids[id(layer)], p, shape, self._ks, indices, y.device)
        return apply_dropout(layer, y, keep if not self.masks.consistent else keep.unsqueeze(0))

    def _fit(self, most: int, beside: int, unmeasured: int) -> int:
        """How many of ``most`` (items, or samples) one forward takes beside ``beside`` of the other kind."""
        if self.chunk_rows is not None:
            return max(1, min(most, self.chunk_rows // beside))
        if self._row_bytes is None:
            return unmeasured
        return max(1, min(most, int(self.memory_budget // max(1.0, self._row_bytes * beside))))

    def _note(self, y: Tensor) -> None:
        # Peak bytes per (item, sample) row; input and output of a layer are alive together, hence the 2.
        per_row = 2.0 * y.numel() * y.element_size() / max(1, y.shape[0] * y.shape[1])
        self._row_bytes = max(self._row_bytes or 0.0, per_row)

    def run_layers(self, layers: Sequence[nn.Module], x: Tensor, indices: Tensor) -> Tensor:
        """K samples of a flat layer list on ``x`` ``[B, ...]``: returns ``[B, K, ...]``."""
        batch = x.shape[0]
        outs, start = [], 0
        while start < batch:
            items = self._fit(batch, self.iterations, min(batch, 4))
            stop = min(batch, start + items)
            outs.append(self._run_layers_chunk(layers, x[start:stop], indices[start:stop]))
            start = stop
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _run_layers_chunk(self, layers: Sequence[nn.Module], x: Tensor, indices: Tensor) -> Tensor:
        k = self.iterations
        self._ks, self._indices, self._items_first = range(k), indices, True
        shared, sampled = x, None
        pending: Tensor | None = None  # scaled consistent mask [K, *features] not yet applied to `shared`
        pending_from = -1
        for layer in layers:
            if sampled is None:
                if pending is None and self.masks.consistent and type(layer) is nn.Dropout:
                    p = float(layer.p)
                    keep = self.masks.keep(
                        self._layer_ids[id(layer)], p, tuple(shared.shape[1:]), self._ks, None, x.device
                    )
                    pending, pending_from = keep.to(shared.dtype) * (1.0 / (1.0 - p)), id(layer)
                    continue
                if pending is not None and isinstance(layer, _RESHAPES) and getattr(layer, "start_dim", 1) >= 1:
                    shared, pending = layer(shared), layer(pending)
                    continue
                if pending is not None and isinstance(layer, nn.Linear) and shared.dim() == 2 and not self.dropconnect:
                    sampled = self._fold(pending_from, layer, shared, pending)
                    self._note(sampled)
                    continue
                if pending is None and not is_random(layer, bool(self.dropconnect)):
                    shared = layer(shared)
                    continue
                sampled = _spread(shared, pending, k)
            if isinstance(layer, BUILTIN_STOCHASTIC_TYPES):
                sampled = self._drop(layer, sampled, indices)
            else:
                sampled = _rowwise(layer, sampled.contiguous())
            self._note(sampled)
        if sampled is None:
            sampled = _spread(shared, pending, k)
        self._note(sampled)
        return sampled

    def _fold(self, drop_id: int, linear: nn.Linear, x: Tensor, scale: Tensor) -> Tensor:
        # (x * m_k) W^T = x (W * m_k)^T: K masked weight copies side by side make one [B, K*O] GEMM.
        key = (drop_id, id(linear))
        if key not in self._folded:
            k, out_features = scale.shape[0], linear.out_features
            stacked = (linear.weight.unsqueeze(0) * scale.unsqueeze(1)).reshape(k * out_features, -1)
            self._folded[key] = (stacked, None if linear.bias is None else linear.bias.repeat(k))
        stacked, bias = self._folded[key]
        return nn.functional.linear(x, stacked, bias).view(x.shape[0], -1, linear.out_features)

    def run_replicated(self, fn: Callable[..., Any], inputs: Any, indices: Tensor) -> Any:
        """K samples of ``fn`` on a batch of ``B`` rows, ``K_c * B`` rows per forward: returns ``[B, K, ...]``.

        A task without ``batched_samples`` runs K forwards of ``B`` rows, combined by its ``stack_samples``.
        """
        batch = indices.shape[0]
        self._indices, self._items_first = indices, False
        if not self.task.batched_samples:
            samples = []
            for k in range(self.iterations):
                self._ks = range(k, k + 1)
                samples.append(call_module(fn, inputs))
            return self.task.stack_samples(samples)
        out: Any = None
        start = 0
        while start < self.iterations:
            kc = 1 if self.dropconnect else self._fit(self.iterations, max(1, batch), 1)
            self._ks = range(start, min(self.iterations, start + kc))
            kc = len(self._ks)
            chunk = apply_to_collection(
                call_module(fn, _repeat(inputs, kc, batch)), Tensor, functools.partial(_split_rows, kc, batch)
            )
            if self._row_bytes is None and self.chunk_rows is None:
                self._row_bytes = self._measure(fn, inputs, first_tensor(chunk))
            if kc == self.iterations:
                return apply_to_collection(chunk, Tensor, lambda part: part.transpose(0, 1).contiguous())
            # Each chunk is copied into its place in [B, K, ...] as it comes, then dropped: the samples are held
            # once, plus one chunk (not the chunks, their concatenation and its transpose).
            if out is None:
                out = apply_to_collection(
                    chunk, Tensor, lambda part: part.new_empty((batch, self.iterations, *part.shape[2:]))
                )
            apply_to_collections(out, chunk, Tensor, functools.partial(_place, self._ks.start, self._ks.stop))
            start = self._ks.stop
        return out

    def _measure(self, fn: Callable[..., Any], inputs: Any, out: Tensor) -> float:
        # Largest activation per row seen while running one sample of the batch again with size-recording hooks.
        peak = [float(out[0].numel() * out.element_size())]

        def record(_: nn.Module, __: Any, output: Any) -> None:
            if isinstance(output, Tensor) and output.dim() > 0:
                peak[0] = max(peak[0], output.numel() * output.element_size() / output.shape[0])

        modules = list(fn.modules()) if isinstance(fn, nn.Module) else []
        handles = [m.register_forward_hook(record) for m in modules]
        try:
            ks, self._ks = self._ks, range(self._ks.start, self._ks.start + 1)
            call_module(fn, inputs)
            self._ks = ks
        finally:
            for handle in handles:
                handle.remove()
        return 2.0 * peak[0]
