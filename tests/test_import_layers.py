"""The package's import graph: no circle between modules, and every import across subpackages points down the layers.

Imports are read with ``ast`` from every module of ``lightning_bal``, wherever they stand: at the top, inside a
function, or under ``if TYPE_CHECKING:`` (a circle that only the type checker follows is still a circle in the
design). ``from package import name`` counts as an import of ``package.name`` when that is a module, else of
``package`` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lightning_bal

ROOT = Path(lightning_bal.__file__).parent
PACKAGE = ROOT.name

# The layers, bottom first, as the code has them: a module may import its own subpackage and any lower layer.
# `data` sits below `mc` because the posteriors read the datamodule's pool (`mc/posterior.py`); `heuristics` and
# `posteriors` share a layer and never import each other; `annotation` builds on data and is driven by `callbacks`.
LAYERS: list[tuple[str, ...]] = [
    ("__about__",),
    ("utilities",),
    ("functional",),
    ("tasks",),
    ("data",),
    ("mc",),
    ("heuristics", "posteriors"),
    ("annotation",),
    ("callbacks",),
    ("experiments",),
    ("",),  # the top-level `lightning_bal/__init__.py`
]
LEVEL = {part: level for level, parts in enumerate(LAYERS) for part in parts}



def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _part(module: str) -> str:
    """The subpackage (or top-level module) of ``module``: ``"data"`` for ``lightning_bal.data.ledger``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            child = next(successors, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return circles


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} -> {target}"
        for source, targets in graph.items()
        for target in targets
        if _part(source) != _part(target)
        and LEVEL[_part(target)] >= LEVEL[_part(source)]
    )


def test_every_subpackage_has_a_layer():
    assert {_part(name) for name in _modules()} == set(LEVEL)


def test_no_import_circle():
    assert _circles(_graph()) == []


def test_imports_point_down_the_layers():
    assert _upward(_graph()) == []


@pytest.mark.parametrize(
    ("graph", "circles", "upward"),
    [
        # The ledger circle of issue #28: ledger <-> ledger_state (one side under TYPE_CHECKING).
        (
            {"lightning_bal.data.ledger": {"lightning_bal.data.ledger_state"}, "lightning_bal.data.ledger_state": {}},
            [],
            [],
        ),
        (
            {
                "lightning_bal.data.ledger": {"lightning_bal.data.ledger_state"},
                "lightning_bal.data.ledger_state": {"lightning_bal.data.ledger"},
            },
            [["lightning_bal.data.ledger", "lightning_bal.data.ledger_state"]],
            [],
        ),
        # A hash filed under dropout and imported by a heuristic function: functional -> mc points up.
        (
            {"lightning_bal.functional.diversity": {"lightning_bal.mc.masks"}, "lightning_bal.mc.masks": set()},
            [],
            ["lightning_bal.functional.diversity -> lightning_bal.mc.masks"],
        ),
        # A longer circle inside one layer, and a downward import that is fine.
        (
            {
                "lightning_bal.callbacks.w": {"lightning_bal.utilities.x"},
                "lightning_bal.utilities.x": {"lightning_bal.utilities.y"},
                "lightning_bal.utilities.y": {"lightning_bal.utilities.z"},
                "lightning_bal.utilities.z": {"lightning_bal.utilities.x"},
            },
            [["lightning_bal.utilities.x", "lightning_bal.utilities.y", "lightning_bal.utilities.z"]],
            [],
        ),
    ],
)
def test_the_checks_find_what_they_look_for(graph, circles, upward):
    """The checks themselves, on small graphs: they find a circle and an upward import, and pass a clean graph."""
    graph = {name: set(targets) for name, targets in graph.items()}
    assert _circles(graph) == circles
    assert _upward(graph) == upward


def test_imports_are_read_wherever_they_stand(tmp_path):
    """Imports inside functions, under TYPE_CHECKING and relative ones all count."""
    path = tmp_path / "mod.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from lightning_bal.data.ledger import LabelLedger\n"
        "def f():\n    from .views import ResumableLoader\n    import lightning_bal.utilities.checks\n"
        "from lightning_bal.data import datamodule, ActiveDataModule\n"
    )
    modules = _modules()
    assert _imports("lightning_bal.data.mod", path, modules) == {
        "lightning_bal.data.ledger",
        "lightning_bal.data.views",
        "lightning_bal.utilities.checks",
        "lightning_bal.data.datamodule",
        "lightning_bal.data",
    }
