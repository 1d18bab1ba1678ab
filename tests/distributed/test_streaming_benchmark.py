"""benchmarks/streaming.py runs end to end at a tiny size and prints every figure docs/multi_node.md quotes."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("litdata")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_streaming_benchmark_prints_its_figures(tmp_path):
    command = [sys.executable, "-m", "benchmarks.streaming", "--items", "3000", "--iterations", "4"]
    command += ["--chunk-items", "1000", "--batch-size", "512", "--folder", str(tmp_path / "chunks")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "streamed pool: 3,000 items of 16 float16 in 3 chunks" in out
    for figure in (
        r"read only: +[\d.]+ s",
        r"eval pass: +[\d.]+ s +[\d,]+ items/s",
        r"pool pass \(callback\): +[\d.]+ s",
        r"pool pass / eval",
    ):
        assert re.search(figure, out), figure
    assert "peak resident memory" in out
