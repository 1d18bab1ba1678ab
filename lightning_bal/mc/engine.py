"""Scoring a pool with MC-Dropout: K samples per item, streamed per batch or gathered."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, nullcontext
from typing import Any, NamedTuple

import torch
from lightning.pytorch import LightningModule
from lightning_utilities import apply_to_collection
from torch import Tensor, nn

from lightning_bal.data.datamodule import ActiveDataModule
from lightning_bal.functional.outputs import log_softmax_classes
from lightning_bal.mc.dropconnect import mc_dropconnect
from lightning_bal.mc.features import FeatureTap
from lightning_bal.mc.layers import check_stochastic_layers, is_marked
from lightning_bal.mc.masks import MaskSampler
from lightning_bal.mc.modes import switch_modes
from lightning_bal.mc.pool_batches import IndexLedger, module_device, unpack_batch
from lightning_bal.mc.sampling import SampleRunner, call_module, is_random
from lightning_bal.mc.split import MCSplit, split_module
from lightning_bal.tasks import Task

__all__ = ["ItemChunker", "MCPrediction", "finish", "input_batches", "mc_batches", "mc_predict", "task_of"]

#: Bytes of K-sample outputs one run of items may hold on CPU when no budget is given.
CPU_MEMORY_BUDGET = 256 * 2**20
#: Activation bytes of one forward chunk on CPU when no budget is given: near the cache's size (docs/scale.md).
CPU_CHUNK_BUDGET = 32 * 2**20


class MCPrediction(NamedTuple):
    """Result of :func:`mc_predict`.

    Attributes:
        indices: dataset indices ``[N]``, in the order the loader gave them.
        log_probs: transformed outputs ``[N, K, C, ...]`` (a tuple/dict of them for a model with several outputs),
            or ``None`` when a ``score_fn`` was given.
        scores: ``score_fn`` of each item ``[N]``, or ``None`` without ``score_fn``.
    """

    indices: Tensor
    log_probs: Any
    scores: Tensor | None


def mc_batches(
    module: nn.Module,
    dataloader: Iterable[Any],
    iterations: int,
    *,
    seed: int | None = None,
    consistent_masks: bool = True,
    output_transform: Callable[[Tensor], Tensor] | None = log_softmax_classes,
    share_prefix: bool = True,
    chunk_rows: int | None = None,
    memory_budget: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    dropconnect: float | None = None,
    features: FeatureTap | None = None,
    task: Task | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Stream K MC-Dropout samples of every pool batch: yields ``(dataset_indices [B], outputs [B, K, C, ...])``.

    The model stays in MC mode (eval, dropout on by the engine's own seeded masks) until the iterator is exhausted or
    closed, then every submodule's mode is restored. Each batch runs under ``torch.inference_mode`` on the model's
    device. Masks depend neither on batch order, nor on chunking, nor on the number of ranks; how the pass shares
    work and memory is in docs/scale.md#how-the-pass-runs.

    Args:
        module: the model (any ``nn.Module``, e.g. a ``LightningModule``; its ``forward`` is called).
        dataloader: yields ``(inputs, dataset_indices)``, or inputs alone (items are then numbered in loader
            order); ``inputs`` a tensor (``module(x)``), a tuple/list (``module(*x)``) or a dict (``module(**x)``).
            An index that repeats within the pass is refused (the usual cause: a loader of ``(inputs, targets)``).
        iterations: K, the number of MC samples.
        seed: seeds all masks; ``None`` draws one from the OS. Give the same seed on every rank for the same samples.
        consistent_masks: one mask per sample shared by all items (default: K fixed sub-networks, as BatchBALD
            assumes), or one per item and sample.
        output_transform: maps the raw outputs ``[B, K, C, ...]`` (or a tuple/dict of them) to what is yielded;
            the default is ``log_softmax`` over the classes (dim 2); ``None`` yields the raw outputs as float32.
        share_prefix: run the deterministic prefix once per batch where the structure allows it.
        chunk_rows: most rows (items x samples) per forward after the prefix; ``None``: from ``memory_budget``.
        memory_budget: bytes of activations per forward chunk and of K-sample outputs per run of items (default on
            CPU: 32 MiB and 256 MiB; on GPU a quarter of free memory for both).
        autocast_dtype: run under ``torch.autocast`` with this dtype (e.g. ``torch.bfloat16``).
        dropconnect: also drop Linear/Conv weights with this probability (MC-DropConnect).
        features: a :class:`~lightning_bal.mc.features.FeatureTap` given each yielded batch's features.
        task: how the K samples are combined and runs of items joined; ``None`` takes the task of the
            ``ActiveDataModule`` the model trains with (see :func:`task_of`).

    Examples:
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 4))
        >>> loader = [(torch.randn(5, 3), torch.arange(5))]
        >>> [(idx.shape, out.shape) for idx, out in mc_batches(net, loader, iterations=10, seed=0)]
        [(torch.Size([5]), torch.Size([5, 10, 4]))]
    """
    for name, value, kind in (
        ("iterations", iterations, "a positive integer"),
        ("chunk_rows", chunk_rows, "a positive integer or None"),
        ("memory_budget", memory_budget, "a positive integer or None"),
    ):
        if (value is not None or name == "iterations") and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"Expected argument `{name}` to be {kind}, but got {value!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"Expected argument `seed` to be an int or None, but got {type(seed).__name__}")
    if not hasattr(dataloader, "__iter__"):
        raise TypeError(f"Expected argument `dataloader` to be an iterable of batches, but got {dataloader!r}.")
    if dropconnect is None:
        check_stochastic_layers(module)
    split = split_module(module, dropconnect is not None) if share_prefix else MCSplit(None, None, module)
    masks = MaskSampler(secrets.randbits(63) if seed is None else seed, consistent_masks)
    task = task_of(module) if task is None else task

    # A generator of its own, so that the arguments above are checked when `mc_batches` is called.
    def iterate() -> Iterator[tuple[Tensor, Tensor]]:
        device = module_device(module)
        if memory_budget is not None:
            budget = chunk_budget = memory_budget
        elif device.type == "cuda":
            budget = chunk_budget = max(CPU_MEMORY_BUDGET, torch.cuda.mem_get_info(device)[0] // 4)
        else:
            budget, chunk_budget = CPU_MEMORY_BUDGET, CPU_CHUNK_BUDGET
        batches = input_batches(module, dataloader)
        first = next(batches, None)
        if first is None:
            return
        unsafe = split.unverified and not _same_outputs(module, split.head, first[0])
        shared = MCSplit(None, None, module) if unsafe else split
        trunk: list[nn.Module] = []
        layers, head = shared.layers, shared.head
        if layers is not None and dropconnect is not None:
            # DropConnect needs one forward per sample (the weights differ), so only the layers before the first
            # Linear/Conv are shared.
            first_random = next((i for i, layer in enumerate(layers) if is_random(layer, True)), len(layers))
            trunk, head, layers = layers[:first_random], nn.Sequential(*layers[first_random:]), None
        with ExitStack() as stack:
            # Built-in dropout stays in eval mode (identity): the engine applies its own seeded masks in hooks.
            stack.enter_context(switch_modes(module, is_marked))
            params = stack.enter_context(mc_dropconnect(module, dropconnect)) if dropconnect is not None else []
            sampler = SampleRunner(module, iterations, masks, chunk_rows, chunk_budget, params, task)
            stack.enter_context(sampler.hooks(module))
            chunker = ItemChunker(budget, task)
            if features is not None:
                stack.enter_context(features.attach(module, shared, sampler))

            def run(inputs: Any, indices: Tensor) -> Any:
                autocast = (
                    nullcontext() if autocast_dtype is None else torch.autocast(device.type, dtype=autocast_dtype)
                )
                with torch.inference_mode(), autocast:
                    x = inputs if shared.features is None else call_module(shared.features, inputs)
                    if layers is not None and isinstance(x, Tensor):
                        outputs = sampler.run_layers(layers, x, indices)
                    else:
                        for layer in trunk:
                            x = layer(x)
                        outputs = sampler.run_replicated(head, x, indices)
                if features is not None:
                    features.finish(indices.numel())
                return outputs

            for inputs, indices in itertools.chain([first], batches):
                # Runs of items whose [b, K, ...] outputs fit the budget: a large output (segmentation) never holds a
                # whole batch's K samples at once.
                for run_indices, outputs in chunker.run(run, inputs, indices):
                    if features is not None:
                        features.publish(run_indices.numel())
                    with torch.inference_mode():
                        outputs = finish(outputs, output_transform)
                    yield run_indices, outputs

    return iterate()


def input_batches(module: nn.Module, dataloader: Iterable[Any]) -> Iterator[tuple[Any, Tensor]]:
    """``(inputs on the model's device, dataset_indices [B])`` of each batch; an index seen twice is refused."""
    device = module_device(module)
    seen, numbered = IndexLedger(), 0
    for batch in dataloader:
        inputs, indices = unpack_batch(batch, device, numbered)
        seen.check(indices)
        numbered += indices.numel()
        yield inputs, indices


def finish(outputs: Any, output_transform: Callable[[Any], Any] | None) -> Any:
    """The yielded outputs: ``output_transform(outputs)``, or float32 outputs without a transform."""
    return apply_to_collection(outputs, Tensor, Tensor.float) if output_transform is None else output_transform(outputs)


def task_of(module: nn.Module) -> Task:
    """The task of the ``ActiveDataModule`` that a ``LightningModule`` trains with, else ``Task()``."""
    try:
        # `datamodule` is set by `Trainer.fit`, hence not declared on the class.
        datamodule = getattr(module.trainer, "datamodule", None) if isinstance(module, LightningModule) else None
    except RuntimeError:  # not attached to a Trainer
        datamodule = None
    return datamodule.ledger.task_type if isinstance(datamodule, ActiveDataModule) else Task()


def _same_outputs(module: nn.Module, head: nn.Module, inputs: Any) -> bool:
    """Whether ``module`` and the ``head`` guessed from its structure give the same deterministic outputs."""
    with switch_modes(module, lambda _: False), torch.inference_mode():
        expected, got = call_module(module, inputs), call_module(head, inputs)
    return isinstance(expected, Tensor) and isinstance(got, Tensor) and torch.equal(expected, got)


def mc_predict(
    module: nn.Module,
    dataloader: Iterable[Any],
    iterations: int,
    *,
    score_fn: Callable[[Tensor], Tensor] | None = None,
    **kwargs: Any,
) -> MCPrediction:
    """Run :func:`mc_batches` over the whole pool and gather the outputs, or only their scores.

    With ``score_fn`` (``[B, K, C, ...] -> [B]``, e.g. BALD) each batch is scored as it comes and only the
    ``[N]`` scores are kept; without it the ``[N, K, C, ...]`` log-probabilities are returned. ``kwargs`` go to
    :func:`mc_batches`.

    Examples:
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 4))
        >>> loader = [(torch.randn(5, 3), torch.arange(5)), (torch.randn(2, 3), torch.arange(5, 7))]
        >>> pred = mc_predict(net, loader, iterations=10, seed=0)
        >>> pred.indices.tolist(), pred.log_probs.shape, pred.scores
        ([0, 1, 2, 3, 4, 5, 6], torch.Size([7, 10, 4]), None)
    """
    task = kwargs.setdefault("task", task_of(module))
    indices, outputs, scores = [], [], []
    for batch_indices, batch_outputs in mc_batches(module, dataloader, iterations, **kwargs):
        indices.append(batch_indices)
        if score_fn is None:
            outputs.append(batch_outputs)
            continue
        batch_scores = score_fn(batch_outputs)
        if not isinstance(batch_scores, Tensor) or batch_scores.shape != batch_indices.shape:
            shape = tuple(batch_scores.shape) if isinstance(batch_scores, Tensor) else type(batch_scores).__name__
            raise ValueError(
                f"Expected `score_fn` to return a tensor of shape {tuple(batch_indices.shape)}, but got {shape}"
            )
        scores.append(batch_scores)
    if not indices:
        raise ValueError("Expected argument `dataloader` to yield at least one batch, but got none")
    return MCPrediction(
        torch.cat(indices),
        task.cat_items(outputs) if score_fn is None else None,
        torch.cat(scores) if score_fn is not None else None,
    )


def _slice_items(inputs: Any, start: int, stop: int, rows: int) -> Any:
    """Items ``start:stop`` of a batch of ``rows`` items: every tensor whose dim 0 is ``rows`` is sliced (nested)."""
    return apply_to_collection(inputs, Tensor, lambda x: x[start:stop] if x.dim() > 0 and x.shape[0] == rows else x)


def _output_bytes(outputs: Any) -> int:
    sizes: list[int] = []
    apply_to_collection(outputs, Tensor, lambda x: sizes.append(x.numel() * x.element_size()))
    return sum(sizes)


class ItemChunker:
    """Runs a batch's K samples a few items at a time, so that no ``[b, K, ...]`` output exceeds ``budget`` bytes.

    The first item is run alone to measure one item's outputs. A batch that fits is yielded whole, its runs joined
    by ``task.cat_items``.

    Examples:
        >>> chunker = ItemChunker(budget=64)  # 64 bytes: two items of 8 float32 outputs each
        >>> run = lambda x, idx: x[:, None].expand(-1, 8).float()  # one "sample" row of 8 floats per item
        >>> [idx.tolist() for idx, _ in chunker.run(run, torch.arange(5), torch.arange(5))]
        [[0], [1, 2], [3, 4]]
    """

    def __init__(self, budget: int, task: Task | None = None) -> None:
        self.budget = budget
        self.task = Task() if task is None else task
        self.bytes_per_item: float | None = None

    def _items(self) -> int:
        assert self.bytes_per_item is not None
        return max(1, int(self.budget // max(1.0, self.bytes_per_item)))

    def run(self, sample: Callable[[Any, Tensor], Any], inputs: Any, indices: Tensor) -> Iterator[tuple[Tensor, Any]]:
        """Yield ``(indices [b], sample(inputs[b], indices[b]))`` over the batch, ``b`` items at a time."""
        rows = int(indices.shape[0])
        start, parts = 0, []
        if self.bytes_per_item is None:
            probe = sample(_slice_items(inputs, 0, 1, rows), indices[:1])
            self.bytes_per_item = float(_output_bytes(probe))
            if rows == 1 or self._items() < rows:
                yield indices[:1], probe
            else:
                parts.append(probe)
            start = 1 if rows else 0
        if start == 0 and self._items() >= rows:
            yield indices, sample(inputs, indices)
            return
        while start < rows:
            stop = min(rows, start + self._items())
            out = sample(_slice_items(inputs, start, stop, rows), indices[start:stop])
            if parts:
                parts.append(out)
            else:
                yield indices[start:stop], out
            start = stop
        if parts:
            yield indices, self.task.cat_items(parts)
