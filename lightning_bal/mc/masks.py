"""Seeded dropout masks from a counter-based hash, so every rank draws the same mask for the same item.

A mask element is kept when ``hash(seed, layer, [dataset index,] k, element) >= p * 2**32``: the same bits on every
device, whatever the batch order, batch size or number of ranks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lightning_bal.utilities.hashing import combine, combine_, hash_uniform32

__all__ = ["MaskSampler", "apply_dropout", "mask_shape"]

_CHANNEL_TYPES = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.FeatureAlphaDropout)
_ALPHA_TYPES = (nn.AlphaDropout, nn.FeatureAlphaDropout)
# SELU's negative saturation value, the constant torch's alpha dropout uses.
_SELU_ALPHA = 1.7580993408473766


def mask_shape(layer: nn.Module, feature_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one item's mask: per element, or per channel (dim 1 of the input) for channel-wise dropout."""
    if isinstance(layer, _CHANNEL_TYPES) and len(feature_shape) > 1:
        return (feature_shape[0],) + (1,) * (len(feature_shape) - 1)
    return feature_shape


def apply_dropout(layer: nn.Module, x: Tensor, keep: Tensor) -> Tensor:
    """Apply a built-in dropout ``layer`` to ``x`` with the bool ``keep`` mask, as the layer would in training."""
    p = float(layer.p)  # type: ignore[arg-type]
    if p >= 1.0:
        return x * 0.0
    if isinstance(layer, _ALPHA_TYPES):
        a = 1.0 / ((_SELU_ALPHA**2 * p + 1.0) * (1.0 - p)) ** 0.5
        noise = keep.to(x.dtype)
        return x * (noise * a) + ((noise - 1.0) * (_SELU_ALPHA * a) + _SELU_ALPHA * a * p)
    return x * (keep.to(x.dtype) * (1.0 / (1.0 - p)))


def _threshold(p: float) -> int:
    return min(int(round(p * 2**32)), 2**32)


class MaskSampler:
    """Draws an MC pass's keep masks from ``(seed, layer, k)``, or per item (``consistent=False``) with its index."""

    def __init__(self, seed: int, consistent: bool) -> None:
        self.seed = int(seed)
        self.consistent = consistent
        self._cache: dict[tuple[int, float, tuple[int, ...], int, int, str], Tensor] = {}

    def consistent_keep(
        self, layer_id: int, p: float, shape: tuple[int, ...], ks: range, device: torch.device | None = None
    ) -> Tensor:
        """Boolean keep masks ``[len(ks), *shape]`` shared by all items, whatever :attr:`consistent` says."""
        device = torch.device("cpu") if device is None else device
        key = (layer_id, p, shape, ks.start, ks.stop, str(device))
        if key not in self._cache:
            base = self._layer_key(layer_id)
            keys = torch.tensor([combine(base, k) for k in ks], dtype=torch.int64, device=device)
            self._cache[key] = (hash_uniform32(keys, math.prod(shape)) >= _threshold(p)).view(len(ks), *shape)
        return self._cache[key]

    def _layer_key(self, layer_id: int) -> int:
        h = combine(combine(0x5BD1E995, self.seed), self.seed >> 32)
        return combine(h, layer_id)

    def keep(
        self,
        layer_id: int,
        p: float,
        shape: tuple[int, ...],
        ks: range,
        indices: Tensor | None = None,
        device: torch.device | None = None,
    ) -> Tensor:
        """Boolean keep masks ``[len(ks), *shape]`` if consistent, else ``[B, len(ks), *shape]`` for ``indices [B]``."""
        if self.consistent:
            return self.consistent_keep(layer_id, p, shape, ks, device)
        if indices is None:
            raise ValueError("Expected argument `indices` to be a tensor of dataset indices, but got None")
        threshold, numel = _threshold(p), math.prod(shape)
        idx = indices.to(dtype=torch.int64)
        h = torch.full_like(idx, self._layer_key(layer_id))
        h = combine_(combine_(h, idx), idx >> 32)
        ks_t = torch.arange(ks.start, ks.stop, device=idx.device, dtype=torch.int64)
        keys = combine_(h.unsqueeze(1).repeat(1, len(ks)), ks_t.expand(len(idx), -1))
        return (hash_uniform32(keys, numel) >= threshold).view(len(idx), len(ks), *shape)
