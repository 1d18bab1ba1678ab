"""Every ```python block of the README and of docs/ runs, top to bottom, one namespace per file."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_code_blocks_run(path, tmp_path, monkeypatch):
    blocks = BLOCK.findall(path.read_text())
    if not blocks:
        pytest.skip(f"{path.name} has no python blocks")
    monkeypatch.chdir(tmp_path)  # whatever a block writes lands in a temporary folder
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    for number, block in enumerate(blocks, start=1):
        try:
            exec(compile(block, f"{path.name}[block {number}]", "exec"), namespace)
        except Exception as err:
            raise AssertionError(f"{path.name}, python block {number} failed: {err!r}") from err


def test_readme_quick_start_prints_only_what_helps(tmp_path):
    # A user copies the block into a fresh interpreter: run it in one, and read what it prints there.
    block = BLOCK.findall((ROOT / "README.md").read_text())[0]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "Tip:" not in output, "Lightning's logger tip is printed"
    assert "Warning" not in output, output
    assert "deprecated" not in output, output
