"""benchmarks/gpu_check.sh runs end to end on the CPU at its tiny size, so the GPU script cannot rot."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_gpu_check_runs_at_its_tiny_size_and_writes_every_figure(tmp_path):
    out = tmp_path / "figures.txt"
    env = {**os.environ, "GPU_CHECK_SIZE": "tiny", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)], env=env, capture_output=True, text=True
    )
    text = out.read_text()
    assert result.returncode == 0, text[-3000:]
    assert "gpu_check done: all steps ran" in text
    assert "MC pool pass float32" in text
    assert "MC pool pass bf16 autocast" in text
    assert "bf16 against float32: speed-up" in text
    assert "callback pool pass, 128 images 28x28, Gal CNN, K=4" in text
    assert "== heuristics benchmark" in text
    assert "ratio pool pass / eval pass" in text
    assert "scoring (BALD)" in text
    assert "SWAG against K full eval passes, 64 images 28x28, Gal CNN, K=4" in text
    assert "| PowerBALD draw |" in text
