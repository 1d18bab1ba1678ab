"""The digit canvases: the label contract, determinism per (seed, index), boxes tight around the ink, MNIST digits."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from lightning_bal.data import check_boxes
from lightning_bal.experiments import DigitCanvases, detection_collate

INK = DigitCanvases.INK


@pytest.fixture(scope="module")
def canvases():
    return DigitCanvases(size=40, seed=3)


def test_items_follow_the_label_contract(canvases):
    counts = []
    for index in range(len(canvases)):
        image, target = canvases[index]
        assert image.shape == (1, 96, 96)
        assert image.dtype == torch.float32
        assert 0 <= float(image.min()) <= float(image.max()) <= 1
        assert target["boxes"].dtype == torch.float32
        assert target["labels"].dtype == torch.int64
        checked = check_boxes(f"canvas {index}", target["boxes"], target["labels"], 11, (96, 96))
        assert torch.equal(checked["boxes"], target["boxes"])
        counts.append(len(target["labels"]))
    assert min(counts) == 0  # an empty canvas: boxes [0, 4], labels [0]
    assert max(counts) <= 5
    assert len(set(counts)) >= 4


def test_an_empty_canvas_has_the_contracts_empty_shapes(canvases):
    empty = next(target for _, target in canvases if len(target["labels"]) == 0)
    assert empty["boxes"].shape == (0, 4)
    assert empty["labels"].shape == (0,)


@pytest.mark.parametrize("index", [0, 7, 39, -1])
def test_an_item_is_the_same_at_every_access_and_in_any_order(canvases, index):
    again = DigitCanvases(size=40, seed=3)
    for _ in range(3):
        again[(index + 5) % 40]  # reading other items first changes nothing
    first, second = canvases[index], again[index]
    assert torch.equal(first[0], second[0])
    assert torch.equal(first[1]["boxes"], second[1]["boxes"])
    assert torch.equal(first[1]["labels"], second[1]["labels"])


def test_seeds_and_splits_give_other_canvases():
    base = DigitCanvases(size=10, seed=0)
    other_seed = DigitCanvases(size=10, seed=1)
    other_split = DigitCanvases(size=10, seed=0, split="test")
    assert not all(torch.equal(base[i][0], other_seed[i][0]) for i in range(10))
    assert not all(torch.equal(base[i][0], other_split[i][0]) for i in range(10))


def test_boxes_hold_all_the_ink_and_touch_it_on_every_side(canvases):
    for index in range(len(canvases)):
        image, target = canvases[index]
        inside = torch.zeros(96, 96, dtype=torch.bool)
        for x1, y1, x2, y2 in target["boxes"].long().tolist():
            inside[y1:y2, x1:x2] = True
            ink = image[0, y1:y2, x1:x2] > INK
            # Tight: the first and last rows and columns of the box hold ink.
            edges = [bool(ink[0].any()), bool(ink[-1].any()), bool(ink[:, 0].any()), bool(ink[:, -1].any())]
            assert edges == [True] * 4, (index, x1, y1, x2, y2)
        assert not bool(((image[0] > INK) & ~inside).any()), index


def test_sizes_and_overlaps_vary():
    data = DigitCanvases(size=60, seed=0, min_size=14, max_size=40)
    sides, overlapping = [], 0
    for _, target in data:
        boxes = target["boxes"]
        sides.extend((boxes[:, 3] - boxes[:, 1]).tolist())
        if len(boxes) > 1:
            lo = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
            hi = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
            meet = ((hi - lo).clamp(min=0).prod(-1) > 0).float()
            overlapping += int(meet.sum() - len(boxes)) // 2
    assert min(sides) < 20
    assert max(sides) > 30
    assert overlapping > 0


@pytest.mark.parametrize("max_overlap", [0.0, 0.3])
def test_max_overlap_bounds_the_share_of_a_box_another_covers(max_overlap):
    data = DigitCanvases(size=30, seed=2, max_overlap=max_overlap)
    for _, target in data:
        boxes = target["boxes"]
        lo = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
        hi = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
        inter = (hi - lo).clamp(min=0).prod(-1)
        area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
        share = inter / torch.minimum(area[:, None], area[None, :])
        share.fill_diagonal_(0)
        if len(boxes):
            assert float(share.amax()) <= max_overlap + 1e-6


def test_collate_gives_torchvisions_lists(canvases):
    images, targets = detection_collate([canvases[0], canvases[1]])
    assert isinstance(images, list)
    assert isinstance(targets, list)
    assert torch.equal(images[1], canvases[1][0])
    assert targets[0].keys() == {"boxes", "labels"}


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_mnist_digits_when_a_folder_is_given(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 6), ("t10k", 4)):
        images = np.zeros((count, 28, 28), dtype=np.uint8)
        images[:, 6:22, 10:18] = 255  # a bar of ink: its box is known
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count))
    data = DigitCanvases(size=20, seed=0, root=tmp_path, min_size=28, max_size=28, split="test")
    assert data.digits.shape == (4, 1, 28, 28)
    boxes = torch.cat([target["boxes"] for _, target in data])
    assert len(boxes) > 0
    assert torch.equal(boxes[:, 2] - boxes[:, 0], torch.full((len(boxes),), 8.0))
    assert torch.equal(boxes[:, 3] - boxes[:, 1], torch.full((len(boxes),), 16.0))
