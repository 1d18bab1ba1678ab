"""Modules of one job each: those of the step (callbacks, heuristics, stopping) hold at most 400 lines (#28)."""

from pathlib import Path

import pytest

import lightning_bal

ROOT = Path(lightning_bal.__file__).parent
LIMIT = 400
STEP_MODULES = sorted(
    [*ROOT.glob("callbacks/*.py"), *ROOT.glob("heuristics/*.py")]
    + [ROOT / "annotation" / name for name in ("stopping.py",)]
)


@pytest.mark.parametrize("path", STEP_MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_a_module_of_the_step_holds_at_most_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= LIMIT, f"{path.relative_to(ROOT)} holds {lines} lines: split it by concern"
