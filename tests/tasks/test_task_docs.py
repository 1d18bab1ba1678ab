"""docs/tasks.md against the code: the Task members it describes and the interfaces its detection plan plugs into."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from lightning_bal.tasks import Task

ROOT = Path(__file__).parents[2]
DOC = (ROOT / "docs" / "tasks.md").read_text()


def _section(title: str) -> str:
    return DOC.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _exists(hook: str) -> bool:
    """Whether ``module:attribute.path`` names something that imports."""
    module_name, _, path = hook.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError:
        return False
    for part in path.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


HOOKS = re.search(r"```hooks\n(.*?)```", _section("Plan: object detection"), re.S).group(1).split()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_interface_the_plan_names_exists(hook):
    assert _exists(hook), f"docs/tasks.md names {hook}, which does not import"


@pytest.mark.parametrize(
    ("hook", "expected"),
    [
        ("lightning_bal.tasks:Task.stack_samples", True),
        ("lightning_bal.tasks:Task.stack_items", False),
        ("lightning_bal.tasks.detection:Segmentation", False),
        ("lightning_bal.mc.engine:_cat_rows", False),
    ],
)
def test_the_check_tells_a_missing_interface(hook, expected):
    assert _exists(hook) is expected


def test_the_plan_names_hooks_and_files_in_existing_packages():
    plan = _section("Plan: object detection")
    files = re.findall(r"^\| `((?:lightning_bal|tests)/[\w/]+\.py)`", plan, re.M)
    assert len(HOOKS) >= 10
    assert len(files) == 7
    assert all((ROOT / path).parent.is_dir() for path in files), files


def test_every_member_the_table_describes_is_a_member_of_task():
    members = re.findall(r"^\| `(\w+)", _section("Adding a task"), re.M)
    assert members == ["name", "check_label", "batched_samples", "stack_samples", "cat_items", "metric"]
    assert all(hasattr(Task, member) for member in members)
