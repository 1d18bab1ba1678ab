"""The API reference (docs/api/*.md, built by mkdocs) documents every public name, and mkdocs.yml lists every page.

A pure text check, so that it runs without mkdocs: a new public name without a page entry fails here, not only in the
docs build. A name counts as documented when its package's page has a ``::: package`` directive whose ``members``
list holds it, or a directive of its own (``::: package.name`` or, for a function that shares its module's name,
``::: package.module.name``).
"""

import importlib
import re
from pathlib import Path

import pytest

import lightning_bal

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
DIRECTIVE = re.compile(r"^::: *(?P<path>[\w.]+) *\n(?P<options>(?:[ \t]+.*\n|[ \t]*\n)*)", re.MULTILINE)
MEMBERS = re.compile(
    r"^(?P<indent>[ \t]+)members:[ \t]*\n(?P<items>(?:(?P=indent)[ \t]+- *\w+[ \t]*\n)+)", re.MULTILINE
)


def _public_packages() -> list[str]:
    # Read from the folder, not from `_SUBPACKAGES`: a package added without being declared must get a page too.
    found = ["lightning_bal"]
    for folder in sorted(Path(lightning_bal.__file__).parent.iterdir()):
        if (folder / "__init__.py").is_file() and not folder.name.startswith("_"):
            found.append(f"lightning_bal.{folder.name}")
    return found


def _exported(package: str) -> set[str]:
    """``__all__`` and the lazily imported names (``_HOMES``), less dunders such as ``__version__``."""
    module = importlib.import_module(package)
    names = set(getattr(module, "__all__", ())) | set(getattr(module, "_HOMES", {}))
    return {name for name in names if not name.startswith("__")}


def _page(package: str) -> Path:
    return API / f"{package.rsplit('.', 1)[-1]}.md"


def _documented(package: str, text: str) -> set[str]:
    names = set()
    for directive in DIRECTIVE.finditer(text):
        path = directive["path"]
        if path == package:
            for members in MEMBERS.finditer(directive["options"]):
                names.update(re.findall(r"- *(\w+)", members["items"]))
        elif path.startswith(f"{package}."):
            rest = path[len(package) + 1 :].split(".")
            # `::: package.name`, or `::: package.module.name` where the module shares the function's name (griffe
            # then sees the submodule under `package.name`, not the function).
            if len(rest) == 1 or (len(rest) == 2 and rest[0] == rest[1]):
                names.add(rest[-1])
    return names


PACKAGES = [package for package in _public_packages() if _exported(package)]


def test_packages_found():
    assert {"lightning_bal", "lightning_bal.callbacks", "lightning_bal.heuristics"} <= set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_documented(package):
    page = _page(package)
    assert page.is_file(), f"{package} exports {sorted(_exported(package))} but has no API page {page.name}"
    documented = _documented(package, page.read_text(encoding="utf-8"))
    missing = sorted(_exported(package) - documented)
    assert not missing, f"docs/api/{page.name} does not document {missing} of {package}"
    stale = sorted(documented - _exported(package))
    assert not stale, f"docs/api/{page.name} documents {stale}, which {package} does not export"


def test_every_page_is_in_the_nav():
    nav = set(re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE))
    pages = {path.relative_to(ROOT / "docs").as_posix() for path in (ROOT / "docs").rglob("*.md")}
    assert pages == nav, f"pages not in the nav: {sorted(pages - nav)}; nav entries with no page: {sorted(nav - pages)}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "::: lightning_bal.mc\n    options:\n      members:\n        - mc_dropout\n        - FeatureTap\n",
            {"mc_dropout", "FeatureTap"},
        ),
        ("::: lightning_bal.mc\n    options:\n      members: false\n", set()),
        ("::: lightning_bal.mc.FeatureTap\n", {"FeatureTap"}),
        ("::: lightning_bal.mc.modes.mc_dropout\n", set()),
        ("::: lightning_bal.functional.bald.bald\n    options:\n      show_root_heading: true\n", set()),
        ("::: lightning_bal.callbacks\n    options:\n      members:\n        - Plateau\n", set()),
        ("The `::: lightning_bal.mc` directive.\n", set()),
    ],
)
def test_documented_reads_directives(text, expected):
    assert _documented("lightning_bal.mc", text) == expected


def test_documented_reads_a_function_named_after_its_module():
    text = "::: lightning_bal.functional.bald.bald\n    options:\n      show_root_heading: true\n"
    assert _documented("lightning_bal.functional", text) == {"bald"}
