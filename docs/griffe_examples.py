"""Griffe extension for the API reference: read the library's ``Example:`` sections as examples.

The library's docstrings head their doctests ``Example:`` (Google style allows the singular). Griffe knows only
``Examples:`` as a section and renders any other heading as an admonition of plain Markdown, where doctest output
such as ``[True, False]`` reads as a reference link and breaks the strict build. Renaming the heading on load gives
the doctests their code blocks without touching the library.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

__all__ = ["ExampleSections"]

_SINGULAR = re.compile(r"^Example:[ \t]*$", re.MULTILINE)


class ExampleSections(Extension):
    """Rename each docstring's ``Example:`` section heading to ``Examples:`` as objects are loaded."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        """Rewrite the heading in ``obj``'s docstring, if it has one."""
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub("Examples:", obj.docstring.value)
