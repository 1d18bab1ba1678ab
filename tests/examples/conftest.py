from pathlib import Path

import numpy as np
import pytest

from tests.examples.idx_files import write_idx


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    """A folder of the four MNIST files holding 60 training and 20 test images (6 and 2 per class)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        labels = np.arange(n, dtype=np.uint8) % 10
        # Each class lights its own row band, so the tiny set is learnable.
        images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label : 2 * label + 4] = 255
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return tmp_path
