"""Writing tiny IDX files (the format of MNIST) for the tests: CI has no MNIST."""

import gzip
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def write_idx(path: Path, array: np.ndarray) -> Path:
    """The inverse of `lightning_bal.experiments.read_idx`: header 00 00 08 <ndim>, big-endian uint32 sizes, bytes."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()))
    return path
