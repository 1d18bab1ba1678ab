"""Weighted combination of heuristics: one per output of a multi-output model, or several on one output."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from lightning_bal.functional.outputs import Masked, OutputKey, select_output
from lightning_bal.heuristics.base import Heuristic, is_output_key, with_mask

__all__ = ["CombineHeuristics"]


class CombineHeuristics(Heuristic):
    r"""Score output ``outputs[i]`` of the model with ``heuristics[i]`` and combine the scores.

    .. math:: s = \sum_i w_i \, \sigma_i s_i \Big/ \sum_i w_i, \quad \sigma_i = +1 \text{ if heuristic } i
        \text{ is higher-is-better else } -1

    The combined score is always higher-is-better. Scores are not rescaled: choose weights that put them on
    comparable scales. A masked member reduces its scores over the valid positions only (see ``docs/tasks.md``).

    Args:
        heuristics: Pointwise heuristics, each transforming its output as it declares; a member names no ``mask``.
        weights: Non-negative finite weights, one per heuristic, not all zero (default: all 1).
        outputs: The output each heuristic scores: tuple positions or dict keys (default: positions 0, 1, ...),
            shared or not; ``None`` for every member scores a model that returns one tensor.
        mask: The model output holding the validity mask ``[B, ...]``: one key for every member, or one key (or
            ``None``, unmasked) per member. It is none of ``outputs``. Default: no mask.

    Examples:
        >>> import torch
        >>> from lightning_bal.heuristics import BALD, Margin
        >>> combined = CombineHeuristics([BALD(), Margin()], weights=[1.0, 1.0])
        >>> log_probs = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.9, 0.1], [0.1, 0.9]]]).log()
        >>> combined.score([log_probs, log_probs])
        tensor([0.0000, 0.1840])
    """

    name = "combine"
    needs_mc_samples = True

    def __init__(
        self,
        heuristics: Sequence[Heuristic],
        weights: Sequence[float] | None = None,
        outputs: Sequence[OutputKey] | None = None,
        mask: OutputKey | Sequence[OutputKey | None] | None = None,
    ) -> None:
        super().__init__()
        if (
            not isinstance(heuristics, Sequence)
            or not heuristics
            or not all(isinstance(h, Heuristic) and not h.batch_aware for h in heuristics)
        ):
            raise ValueError(
                "Expected argument `heuristics` to be a non-empty sequence of pointwise heuristics,"
                f" but got {heuristics!r}."
            )
        given = [1.0] * len(heuristics) if weights is None else list(weights) if isinstance(weights, Sequence) else []
        numbers = all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in given)
        if len(given) != len(heuristics) or not numbers or any(w < 0 for w in given) or sum(given) <= 0:
            raise ValueError(
                f"Expected argument `weights` to be {len(heuristics)} non-negative numbers, not all zero,"
                f" but got {given if isinstance(weights, Sequence) else weights!r}."
            )
        if outputs is not None and (isinstance(outputs, (str, bytes)) or not isinstance(outputs, Sequence)):
            raise TypeError(f"Expected argument `outputs` to be a sequence of output names, but got {outputs!r}.")
        keys: list[OutputKey | None] = list(range(len(heuristics))) if outputs is None else list(outputs)
        if not all(map(is_output_key, keys)):
            raise TypeError(
                f"Expected argument `outputs` to hold tuple positions, dict keys or None, but got {outputs!r}."
            )
        if len(keys) != len(heuristics):
            raise ValueError(
                f"Expected argument `outputs` to name {len(heuristics)} outputs, one per heuristic,"
                f" but got {outputs!r}."
            )
        if None in keys and any(key is not None for key in keys):
            # A model returns either one tensor (None) or a tuple/dict of outputs, never both.
            raise ValueError(
                f"Expected argument `outputs` to be None for every member (a model returning one tensor) or for none,"
                f" but got {outputs!r}."
            )
        named = [h.mask for h in heuristics if h.mask is not None]
        if named:
            raise ValueError(
                f"Expected the members of `heuristics` to name no `mask` of their own, but got mask={named[0]!r}:"
                f" give it to `CombineHeuristics(mask={named[0]!r})`, which reads it from the model's outputs."
            )
        self.heuristics = list(heuristics)
        self.weights = [w / sum(given) for w in given]
        self.outputs = keys
        self.masks = _check_masks(mask, keys)

    def transform(self, outputs: Any) -> list[Any]:
        """Each member's input: its output of the model, transformed as the member declares, and its mask if any."""
        members = zip(self.heuristics, self.outputs, self.masks, strict=True)
        return [with_mask(outputs, h.transform(select_output(outputs, key)), mask) for h, key, mask in members]

    def score(self, log_probs: Sequence[Tensor | Masked]) -> Tensor:
        """One input per member (as :meth:`transform` makes it, or a ``Masked`` pair by hand) to ``[N]`` scores."""
        if isinstance(log_probs, Tensor) or len(log_probs) != len(self.heuristics):
            raise ValueError(
                f"Expected argument `log_probs` to be a sequence of {len(self.heuristics)} tensors (one per output),"
                f" but got {type(log_probs).__name__}."
            )
        terms = [
            heuristic.score(output) * (weight if heuristic.higher_is_better else -weight)
            for heuristic, weight, output in zip(self.heuristics, self.weights, log_probs, strict=True)
        ]
        return sum(terms[1:], terms[0])

    def __repr__(self) -> str:
        masks = "" if all(key is None for key in self.masks) else f", mask={self.masks!r}"
        return f"CombineHeuristics({self.heuristics!r}, weights={self.weights!r}{masks})"


def _check_masks(mask: Any, outputs: list[OutputKey | None]) -> list[OutputKey | None]:
    """One mask key (or ``None``) per member from ``CombineHeuristics(mask=...)``; refuses a scored output."""
    if is_output_key(mask):
        masks = [mask] * len(outputs)
    elif isinstance(mask, Sequence) and not isinstance(mask, bytes):
        masks = list(mask)
        if len(masks) != len(outputs):
            raise ValueError(
                f"Expected argument `mask` to name one output, or one output (or None) per heuristic ({len(outputs)}),"
                f" but got {mask!r}."
            )
    else:
        raise TypeError(
            f"Expected argument `mask` to be a tuple position, a dict key, or a sequence of them, got {mask!r}."
        )
    if not all(map(is_output_key, masks)):
        raise TypeError(f"Expected argument `mask` to hold tuple positions, dict keys or None, but got {mask!r}.")
    if None in outputs and any(key is not None for key in masks):
        raise ValueError(
            f"Expected no `mask` for a model returning one tensor (`outputs` of None), but got mask={mask!r}: name the"
            " outputs of a model that returns its mask beside them."
        )
    scored = [key for key in masks if key is not None and key in outputs]
    if scored:
        raise ValueError(
            f"Expected argument `mask` to name an output apart from the scored `outputs` {outputs!r}, but got"
            f" {scored[0]!r}."
        )
    return masks
