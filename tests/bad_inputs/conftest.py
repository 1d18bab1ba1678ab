"""Run ``test_coverage.py`` after the other bad-input modules: it reads what their refusals recorded."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the coverage check to the end of the run."""
    items.sort(key=lambda item: item.path.name == "test_coverage.py")
