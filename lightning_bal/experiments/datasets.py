"""Datasets for the experiments, read from local files (MNIST's IDX files) or scikit-learn (nothing is downloaded)."""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from lightning_bal.utilities.checks import check_argument, is_int

__all__ = ["MNIST_ENV", "MNIST_FILES", "load_digits", "load_mnist", "read_idx"]

MNIST_ENV = "LIGHTNING_BAL_MNIST"
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_UNSIGNED_BYTE = 0x08


def read_idx(path: str | Path) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes (the format of MNIST) into a ``uint8`` array of its shape.

    Examples:
        >>> import gzip, tempfile
        >>> path = Path(tempfile.mkdtemp()) / "tiny-labels-idx1-ubyte.gz"
        >>> _ = path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])))
        >>> read_idx(path)
        array([7, 2, 1], dtype=uint8)
    """
    check_argument("path", path, isinstance(path, (str, os.PathLike)) and bool(str(path)), "a file path", TypeError)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Expected argument `path` to be a gzipped IDX file, but {str(path)!r} is not a file.")
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UNSIGNED_BYTE:
        raise ValueError(
            f"Expected argument `path` to be a gzipped IDX file of unsigned bytes (header 00 00 08 <ndim>),"
            f" but got header {raw[:4].hex(' ')!r} in {path}."
        )
    ndim = raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise ValueError(
            f"Expected argument `path` to hold {ndim} dimension sizes after its header, but got {len(raw) - 4} bytes"
            f" in {path}."
        )
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    if data.size != math.prod(shape):
        raise ValueError(
            f"Expected argument `path` to hold {math.prod(shape)} data bytes for shape {shape}, but got {data.size}"
            f" in {path}."
        )
    return data.reshape(shape)


def _images_and_labels(root: Path, images: str, labels: str) -> TensorDataset:
    pixels = read_idx(root / MNIST_FILES[images])
    targets = read_idx(root / MNIST_FILES[labels])
    if pixels.ndim != 3 or targets.ndim != 1 or len(pixels) != len(targets):
        raise ValueError(
            f"Expected {MNIST_FILES[images]} to hold [N, H, W] images and {MNIST_FILES[labels]} N labels, but got"
            f" shapes {pixels.shape} and {targets.shape}."
        )
    # Copies: `frombuffer` arrays are read-only, which torch warns about.
    inputs = torch.tensor(pixels, dtype=torch.float32).unsqueeze(1) / 255.0
    dataset = TensorDataset(inputs, torch.tensor(targets, dtype=torch.long))
    dataset.targets = dataset.tensors[1]  # type: ignore[attr-defined]
    return dataset


def load_mnist(root: str | Path | None = None) -> tuple[TensorDataset, TensorDataset]:
    """The MNIST training and test sets as ``(image [1, 28, 28] in [0, 1], label)`` from a folder of IDX files.

    The folder is ``root``, else the environment variable ``LIGHTNING_BAL_MNIST`` (a ``ValueError`` when neither is
    set, a ``FileNotFoundError`` when a file is missing). The training set carries its labels as ``.targets``.
    """
    check_argument(
        "root", root, root is None or isinstance(root, (str, os.PathLike)), "a folder path or None", TypeError
    )
    if root is None:
        root = os.environ.get(MNIST_ENV)
    if not root:
        raise ValueError(
            f"Expected argument `root` (or the environment variable {MNIST_ENV}) to name the folder of the MNIST IDX"
            " files, but got None."
        )
    folder = Path(root).expanduser()
    missing = [name for name in MNIST_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Expected the MNIST files {sorted(MNIST_FILES.values())} in {folder}, but {missing}"
            " are missing (nothing is downloaded: copy them there)."
        )
    train = _images_and_labels(folder, "train_images", "train_labels")
    test = _images_and_labels(folder, "test_images", "test_labels")
    return train, test


def load_digits(seed: int = 0, test_size: int = 500) -> tuple[TensorDataset, TensorDataset]:
    """scikit-learn's 1,797 digits as ``(image [1, 8, 8] in [0, 1], label)``: a training pool and a held-out test set.

    ``seed`` draws the split; the training set carries its labels as ``.targets``.

    Examples:
        >>> train, test = load_digits(seed=0)
        >>> len(train), len(test), tuple(train[0][0].shape)
        (1297, 500, (1, 8, 8))
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "`load_digits` reads scikit-learn's bundled digits: install scikit-learn with"
            " `pip install 'lightning-bal[examples]'`."
        ) from err
    check_argument("seed", seed, is_int(seed), "an integer", TypeError)
    data = sklearn_digits()
    size = len(data.target)
    check_argument("test_size", test_size, is_int(test_size) and 0 < test_size < size, f"an integer in (0, {size})")
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    test, train = order[:test_size], order[test_size:]
    train_set = TensorDataset(images[train], labels[train])
    train_set.targets = labels[train]  # type: ignore[attr-defined]
    return train_set, TensorDataset(images[test], labels[test])
