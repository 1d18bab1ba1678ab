"""From a model's raw outputs to what a heuristic consumes: pick one output, then class log-probabilities or floats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor

__all__ = ["Masked", "OutputKey", "log_softmax_classes", "sample_mask", "select_output", "split_masked"]

#: Names one output of a model that returns several: a position in a tuple/list or a key of a dict.
OutputKey = int | str


def select_output(outputs: Any, key: OutputKey | None) -> Tensor:
    """The output named ``key`` of a model's outputs; ``None`` means the model returns a single tensor.

    Examples:
        >>> select_output({"logits": torch.zeros(2, 3)}, "logits").shape
        torch.Size([2, 3])
    """
    if key is None:
        if isinstance(outputs, Tensor):
            return outputs
        size = len(outputs) if isinstance(outputs, (Mapping, Sequence)) else "?"
        names = f" (keys {sorted(outputs)})" if isinstance(outputs, Mapping) else ""
        raise TypeError(
            f"Expected the model to return one tensor, but it returned a {type(outputs).__name__} of {size}"
            f" outputs{names}: name the output to score, e.g. `BALD(output=0)` or `BALD(output='logits')`."
        )
    if not isinstance(outputs, (Mapping, Sequence)) or isinstance(outputs, Tensor):
        # Indexing would silently pick the first item (key 0) of a single output instead of an output.
        raise KeyError(
            f"Expected the model to return a tuple or dict to pick `output={key!r}` from, but it returned a"
            f" {type(outputs).__name__}."
        )
    try:
        # A str key into a tuple raises TypeError, answered below like a missing key.
        selected = cast(Any, outputs)[key]
    except (KeyError, IndexError, TypeError) as err:
        available = sorted(outputs) if isinstance(outputs, Mapping) else f"positions 0..{len(outputs) - 1}"
        raise KeyError(f"Expected the model's outputs to hold `output={key!r}`, but they hold {available}") from err
    if not isinstance(selected, Tensor):
        raise TypeError(f"Expected output {key!r} of the model to be a tensor, but got {type(selected).__name__}.")
    return selected


def log_softmax_classes(outputs: Any) -> Tensor:
    """Class logits ``[B, K, C, ...]`` to float32 log-probabilities over the classes (dim 2).

    Refuses a tuple or dict of outputs, and a single class (a regression output would become all zeros).

    Examples:
        >>> log_softmax_classes(torch.zeros(1, 1, 4)).exp().tolist()
        [[[0.25, 0.25, 0.25, 0.25]]]
    """
    if not isinstance(outputs, Tensor):
        raise TypeError(
            f"Expected the model to return class logits as one tensor, but it returned a {type(outputs).__name__}:"
            " give a heuristic that names the output it scores (e.g. `BALD(output=0)`), or an `output_transform`."
        )
    if outputs.dim() < 3 or outputs.shape[2] < 2:
        raise ValueError(
            f"Expected class logits [B, K, C, ...] with C >= 2, but the model's outputs have shape"
            f" {tuple(outputs.shape)}: a regression output? Use a regression heuristic (e.g. `Variance`), or"
            " `output_transform=None` for raw outputs."
        )
    return _log_softmax(outputs.float(), dim=2)


def _log_softmax(x: Tensor, dim: int) -> Tensor:
    """``x.log_softmax(dim)``; on the CPU as ``x - max - log(sum(exp(x - max)))``, 2-3x faster over a few classes."""
    if x.device.type != "cpu" or x.numel() == 0:
        return x.log_softmax(dim)
    if dim == x.dim() - 1:
        # Unshifted, the sum over classes as one matrix-vector product; exact enough whenever no exp overflows
        # and no row's exps all underflow, which the finiteness check catches (then the shifted form below).
        ones = torch.ones(x.shape[-1], 1, dtype=x.dtype)
        log_sum = (x.exp().reshape(-1, x.shape[-1]) @ ones).log_().reshape(*x.shape[:-1], 1)
        if bool(torch.isfinite(log_sum).all()):
            return x - log_sum
    shifted = x - x.amax(dim, keepdim=True)
    return shifted.sub_(shifted.exp().sum(dim, keepdim=True).log_())


class Masked(NamedTuple):
    """What a heuristic with a ``mask`` scores: its input and which positions count.

    Attributes:
        values: ``[N, K, C, ...]`` log-probabilities, or ``[N, K, ...]`` raw outputs.
        mask: bool ``[N, ...]`` over the trailing dims ``...``: True where a position (pixel, token) counts.
    """

    values: Tensor
    mask: Tensor


def sample_mask(mask: Any, key: OutputKey = "mask") -> Tensor:
    """The validity mask ``[B, ...]`` of a model output ``[B, K, ...]`` (sample 0: validity must not be random).

    Examples:
        >>> sample_mask(torch.tensor([[[True, False]], [[True, True]]]))
        tensor([[ True, False],
                [ True,  True]])
    """
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(
            f"Expected output {key!r} of the model to be a bool mask (True where a position counts, e.g."
            f" `tokens != pad_id`), but got {got}."
        )
    if mask.dim() < 3:
        raise ValueError(
            f"Expected output {key!r} of the model to be a mask [B, ...] over the positions of each item (pixels,"
            f" tokens), i.e. [B, K, ...] after MC sampling, but got shape {tuple(mask.shape)}."
        )
    return mask[:, 0]


def split_masked(inputs: Any, mask: Tensor | None = None) -> tuple[Any, Tensor | None]:
    """``(values, mask)`` of a heuristic's input: a :class:`Masked` pair, or a tensor with an optional ``mask``.

    Examples:
        >>> values, mask = split_masked(Masked(torch.zeros(1, 2, 3), torch.ones(1, dtype=torch.bool)))
        >>> values.shape, mask
        (torch.Size([1, 2, 3]), tensor([True]))
    """
    if isinstance(inputs, Masked):
        if mask is not None:
            raise ValueError("Expected one mask, but got a `Masked` input and a `mask` argument.")
        return inputs.values, inputs.mask
    return inputs, mask
