"""Seeded dropout masks from a counter-based hash, so every rank draws the same mask for the same item.

A mask element is kept when ``hash(seed, layer, [dataset index,] k, element) >= p * 2**32``. The hash
(:mod:`lightning_bal.utilities.hashing`) gives the same bits on every device and does not depend on batch order,
batch size or the number of ranks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightning_bal.utilities.hashing import combine, combine_, hash_uniform32

__all__ = ["MaskSampler", "apply_dropout", "mask_shape"]

_CHANNEL_TYPES = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.FeatureAlphaDropout)
_ALPHA_TYPES = (nn.AlphaDropout, nn.FeatureAlphaDropout)
# SELU's negative saturation value, the constant torch's alpha dropout uses.
_SELU_ALPHA = 1.7580993408473766


def mask_shape(layer: nn.Module, feature_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one item's mask: per element, or per channel (dim 1 of the input) for channel-wise dropout.

    Example:
        >>> mask_shape(nn.Dropout2d(), (8, 5, 5)), mask_shape(nn.Dropout(), (8, 5, 5))
        ((8, 1, 1), (8, 5, 5))
    """
    if isinstance(layer, _CHANNEL_TYPES) and len(feature_shape) > 1:
        return (feature_shape[0],) + (1,) * (len(feature_shape) - 1)
    return feature_shape


def apply_dropout(layer: nn.Module, x: Tensor, keep: Tensor) -> Tensor:
    r"""Apply a built-in dropout ``layer`` to ``x`` with the given keep mask, exactly as the layer would in training.

    Standard dropout: :math:`x \odot m / (1 - p)`; alpha dropout keeps SELU's mean and variance:
    :math:`a (x \odot m + \alpha' (1 - m)) + b`.

    Args:
        layer: a built-in dropout layer (its ``p`` is read).
        x: input activations.
        keep: boolean mask broadcastable to ``x``.

    Returns:
        Tensor shaped like ``x``.

    Example:
        >>> apply_dropout(nn.Dropout(0.5), torch.ones(1, 3), torch.tensor([True, False, True])).tolist()
        [[2.0, 0.0, 2.0]]
    """
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


def _numel(shape: tuple[int, ...]) -> int:
    numel = 1
    for size in shape:
        numel *= size
    return numel


class MaskSampler:
    """Draws the keep masks of one MC pass from ``(seed, layer, k)`` or ``(seed, layer, dataset index, k)``.

    With ``consistent=True`` sample ``k`` uses one mask for every pool item (the K samples are K fixed
    sub-networks); otherwise every item gets its own masks. Either way the masks depend only on the seed, the
    layer's position in the model, the dataset index and ``k``.

    Args:
        seed: any Python integer.
        consistent: one mask per sample shared by all items, or one per item and sample.

    Example:
        >>> sampler = MaskSampler(seed=0, consistent=True)
        >>> sampler.keep(0, 0.5, (4,), range(3)).shape
        torch.Size([3, 4])
    """

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
            self._cache[key] = (hash_uniform32(keys, _numel(shape)) >= _threshold(p)).view(len(ks), *shape)
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
        threshold, numel = _threshold(p), _numel(shape)
        idx = indices.to(dtype=torch.int64)
        h = torch.full_like(idx, self._layer_key(layer_id))
        h = combine_(combine_(h, idx), idx >> 32)
        ks_t = torch.arange(ks.start, ks.stop, device=idx.device, dtype=torch.int64)
        keys = combine_(h.unsqueeze(1).repeat(1, len(ks)), ks_t.expand(len(idx), -1))
        return (hash_uniform32(keys, numel) >= threshold).view(len(idx), len(ks), *shape)
