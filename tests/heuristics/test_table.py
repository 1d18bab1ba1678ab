"""The generated table of heuristics in docs/heuristics.md: complete, and current."""

from pathlib import Path

import pytest

from lightning_bal.heuristics import available_heuristics
from lightning_bal.heuristics import table as heuristics_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "heuristics.md"


def test_the_doc_holds_the_current_table():
    text = DOC.read_text()
    assert heuristics_table.update_table(text) == text, "run `python -m lightning_bal.heuristics.table`"
    assert heuristics_table.main([str(DOC), "--check"]) == 0


def test_every_registered_name_has_a_row_and_a_cost():
    rows = heuristics_table.heuristic_table().splitlines()[2:]
    assert [row.split(" | ")[0].strip("| `") for row in rows] == available_heuristics()
    assert "| `batchbald` | `BatchBALD` | yes | - | yes |" in "\n".join(rows)
    assert "| `epig` | `EPIG` | yes | yes | - |" in "\n".join(rows)


def test_a_stale_table_is_found_and_rewritten(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(f"# Doc\n{heuristics_table.BEGIN}\n| old |\n{heuristics_table.END}\nafter\n")
    assert heuristics_table.main([str(path), "--check"]) == 1
    assert "| old |" in path.read_text()  # --check writes nothing
    assert heuristics_table.main([str(path)]) == 0
    assert heuristics_table.main([str(path), "--check"]) == 0
    assert path.read_text().endswith(f"{heuristics_table.END}\nafter\n")


def test_missing_markers_are_an_error():
    with pytest.raises(ValueError, match="markers"):
        heuristics_table.update_table("# no table here\n")


def test_each_built_in_heuristic_declares_its_cost_on_its_class():
    """Issue #28: a heuristic is one class in one module; its table row needs no list kept elsewhere."""
    assert heuristics_table.HEURISTICS, "the package registers its heuristics on import"
    for name, cls in heuristics_table.HEURISTICS.items():
        assert isinstance(vars(cls).get("cost"), str), f"{cls.__name__} ({name!r}) declares no `cost` of its own"
