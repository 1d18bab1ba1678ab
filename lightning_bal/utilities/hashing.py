"""A counter-based 32-bit hash (MurmurHash3's finalizer): the same bits from the same keys on every device and rank."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["combine", "combine_", "hash_uniform32"]

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _fmix(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def _fmix_(h: Tensor) -> Tensor:
    # In place on int64 holding 32-bit values; the products may wrap past 2**63 but their low 32 bits are exact.
    h.bitwise_xor_(h >> 16)
    h.mul_(0x85EBCA6B).bitwise_and_(_M32)
    h.bitwise_xor_(h >> 13)
    h.mul_(0xC2B2AE35).bitwise_and_(_M32)
    return h.bitwise_xor_(h >> 16)


def combine(h: int, word: int) -> int:
    """Mix the low 32 bits of ``word`` into the 32-bit hash ``h``."""
    return _fmix((h ^ ((word & _M32) + _GOLDEN + ((h << 6) & _M32) + (h >> 2))) & _M32)


def combine_(h: Tensor, word: Tensor) -> Tensor:
    """:func:`combine` element-wise on int64 tensors, in place on ``h``.

    Examples:
        >>> combine_(torch.tensor([0]), torch.tensor([1])).item() == combine(0, 1)
        True
    """
    mixed = (word & _M32) + _GOLDEN + ((h << 6) & _M32) + (h >> 2)
    return _fmix_(h.bitwise_xor_(mixed).bitwise_and_(_M32))


def hash_uniform32(keys: Tensor, numel: int) -> Tensor:
    r"""Hash every pair (key, element) to a 32-bit integer, uniformly spread.

    .. math:: u_{ij} = \mathrm{fmix32}(\mathrm{key}_i \oplus \mathrm{fmix32}(j)), \quad j < \mathrm{numel}

    ``keys`` (int64 ``[...]``, values in ``[0, 2**32)``) give int64 ``[..., numel]`` with values in ``[0, 2**32)``.

    Examples:
        >>> u = hash_uniform32(torch.tensor([0, 1]), 100_000)
        >>> u.shape, bool(u.min() >= 0), bool(u.max() < 2**32), round(u.double().mean().item() / 2**32, 2)
        (torch.Size([2, 100000]), True, True, 0.5)
    """
    counters = _fmix_(
        torch.arange(1, numel + 1, device=keys.device, dtype=torch.int64).mul_(_GOLDEN).bitwise_and_(_M32)
    )
    return _fmix_(keys.unsqueeze(-1).bitwise_xor(counters))
