"""Label Studio regions as label tensors: brush RLE masks, polygons, and text spans over tokens.

Pure tensor functions with no answer format: :mod:`lightning_bal.annotation.answers` reads a ``result`` with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["decode_brush_rle", "encode_brush_rle", "rasterize_polygon", "spans_to_labels"]

# Label Studio's brush RLE stores 4 bytes (RGBA) per pixel; the mask is where alpha is painted.
_CHANNELS = 4
# Run lengths of the encoder's runs: up to 2**16 values each (a selector picks one of four widths).
_RUN_BITS = (4, 8, 12, 16)


def token_bounds(offsets: Any, name: str) -> Tensor:
    try:
        bounds = torch.as_tensor(offsets, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        bounds = None
    if (
        bounds is None
        or bounds.dim() != 2
        or bounds.shape[1] != 2
        or bool((bounds != bounds.round()).any())
        or bool((bounds[:, 0] < 0).any() | (bounds[:, 1] <= bounds[:, 0]).any())
    ):
        raise ValueError(
            f"Expected {name} to be (start, end) character offsets with 0 <= start < end, got {offsets!r}."
        )
    return bounds.long()


def spans_to_labels(
    spans: Sequence[tuple[int, int, int]], tokens: Tensor, background: int = 0, where: str = "the answer"
) -> Tensor:
    """Per-token classes from character spans ``(start, end, class)`` (``end`` exclusive) and token offsets ``[T, 2]``.

    A token takes the class of every span it overlaps; a token that spans of two classes overlap is refused, and
    tokens no span touches take ``background``. Token offsets ``(i, i + 1)`` label each character.

    Examples:
        >>> spans_to_labels([(0, 5, 1)], torch.tensor([[0, 5], [6, 11]]))
        tensor([1, 0])
    """
    labels = torch.full((tokens.shape[0],), background, dtype=torch.long)
    given = torch.zeros(tokens.shape[0], dtype=torch.bool)
    for start, end, cls in spans:
        touched = (tokens[:, 0] < end) & (tokens[:, 1] > start)
        clash = touched & given & (labels != cls)
        if bool(clash.any()):
            position = int(clash.nonzero()[0])
            raise ValueError(
                f"Expected the spans of {where} not to overlap with different labels, but token {position} (characters"
                f" {tokens[position].tolist()}) has classes {int(labels[position])} and {cls}."
            )
        labels[touched] = cls
        given |= touched
    return labels


def _bits_to_int(bits: np.ndarray) -> int:
    return int(bits.astype(np.int64) @ (np.int64(1) << np.arange(bits.size - 1, -1, -1, dtype=np.int64)))


def decode_brush_rle(rle: Any, height: int, width: int, where: str = "the answer") -> Tensor:
    """The painted pixels ``BoolTensor[height, width]`` of a Label Studio brush RLE (a list of bytes).

    The format packs bits, most significant first: the number of values (32 bits, ``height * width * 4``: RGBA per
    pixel), the word size less one (5 bits), four run-length widths less one (4 bits each), then runs until every value
    is read: a repeat flag (1 bit), a width selector (2 bits), the run's length less one (in that width), then one
    word repeated (flag 1) or that many words (flag 0). A pixel is painted where its alpha byte is not 0.

    Examples:
        >>> mask = torch.tensor([[True, False], [False, True]])
        >>> bool((decode_brush_rle(encode_brush_rle(mask), 2, 2) == mask).all())
        True
    """
    if (
        not isinstance(rle, list)
        or not rle
        or not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in rle)
    ):
        raise ValueError(f"Expected the `value.rle` of {where} to be a non-empty list of bytes (0..255).")
    bits = np.unpackbits(np.asarray(rle, dtype=np.uint8))
    position = 0

    def take(count: int) -> np.ndarray:
        nonlocal position
        if position + count > bits.size:
            raise ValueError(
                f"Expected the `value.rle` of {where} to hold every value it announces, but it ends early."
            )
        position += count
        return bits[position - count : position]

    def read(count: int) -> int:
        return _bits_to_int(take(count))

    total = read(32)
    if total != height * width * _CHANNELS:
        raise ValueError(
            f"Expected the RLE of {where} to hold height * width * 4 = {height * width * _CHANNELS} values (RGBA of a"
            f" {height}x{width} image), but it holds {total}: a mask size mismatch."
        )
    word = read(5) + 1
    run_bits = [read(4) + 1 for _ in range(4)]
    values = np.zeros(total, dtype=np.int64)
    done = 0
    while done < total:
        repeat = read(1)
        end = done + 1 + read(run_bits[read(2)])
        if end > total:
            raise ValueError(
                f"Expected the runs of the RLE of {where} to stop at {total} values, but one runs to {end}."
            )
        if repeat:
            values[done:end] = read(word)
        else:
            words = take((end - done) * word).reshape(end - done, word).astype(np.int64)
            values[done:end] = words @ (np.int64(1) << np.arange(word - 1, -1, -1, dtype=np.int64))
        done = end
    return torch.from_numpy(values.reshape(height, width, _CHANNELS)[..., _CHANNELS - 1] != 0)


def encode_brush_rle(mask: Tensor) -> list[int]:
    """A Label Studio brush RLE of ``mask`` ``[H, W]`` (painted where true: RGBA ``(255, 255, 255, 255)``), in bytes.

    Runs of equal bytes only, up to ``2**16`` each: a valid RLE that :func:`decode_brush_rle` and Label Studio read,
    for pre-annotations and tests.

    Examples:
        >>> encode_brush_rle(torch.ones(1, 1, dtype=torch.bool))[:4]
        [0, 0, 0, 4]
    """
    if not isinstance(mask, Tensor) or mask.dim() != 2:
        raise ValueError(f"Expected argument `mask` to be a 2-D tensor, but got {mask!r:.80}.")
    flat = (mask.bool().reshape(-1, 1).expand(-1, _CHANNELS).reshape(-1).numpy() * 255).astype(np.int64)
    bits: list[str] = [f"{flat.size:032b}", f"{8 - 1:05b}", *(f"{b - 1:04b}" for b in _RUN_BITS)]
    changes = np.flatnonzero(np.diff(flat)) + 1
    starts = np.concatenate([[0], changes])
    ends = np.concatenate([changes, [flat.size]])
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        while start < end:
            length = min(end - start, 1 << _RUN_BITS[-1])
            selector = next(i for i, b in enumerate(_RUN_BITS) if length <= 1 << b)
            bits.append(f"1{selector:02b}{length - 1:0{_RUN_BITS[selector]}b}{int(flat[start]):08b}")
            start += length
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return [int(stream[i : i + 8], 2) for i in range(0, len(stream), 8)]


def rasterize_polygon(points: Any, height: int, width: int, where: str = "the answer") -> Tensor:
    """The pixels ``BoolTensor[height, width]`` whose centre lies inside a polygon of ``[x, y]`` percent vertices.

    Label Studio gives vertices in percent of the image's width and height; the even-odd rule decides, one edge
    at a time over every pixel at once.

    Examples:
        >>> rasterize_polygon([[0, 0], [100, 0], [100, 50], [0, 50]], 4, 2).int().tolist()
        [[1, 1], [1, 1], [0, 0], [0, 0]]
    """
    try:
        vertices = torch.as_tensor(points, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        vertices = None
    if vertices is None or vertices.dim() != 2 or vertices.shape[1] != 2:
        raise ValueError(
            f"Expected the `value.points` of {where} to be a list of [x, y] pairs, but got {points!r:.80}."
        )
    if vertices.shape[0] < 3:
        raise ValueError(
            f"Expected each polygon of {where} to have at least 3 points, but one has {vertices.shape[0]}."
        )
    if not bool(torch.isfinite(vertices).all()):
        raise ValueError(f"Expected the `value.points` of {where} to be finite numbers, but got {points!r:.80}.")
    xs = vertices[:, 0] * width / 100
    ys = vertices[:, 1] * height / 100
    row = torch.arange(height, dtype=torch.float64).add_(0.5)[:, None]
    column = torch.arange(width, dtype=torch.float64).add_(0.5)[None, :]
    inside = torch.zeros(height, width, dtype=torch.bool)
    for i in range(vertices.shape[0]):
        x0, y0, x1, y1 = xs[i - 1], ys[i - 1], xs[i], ys[i]
        if y0 == y1:
            continue  # a horizontal edge crosses no horizontal ray
        crosses = (y0 > row) != (y1 > row)
        at = x0 + (row - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (column < at)
    return inside
