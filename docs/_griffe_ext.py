"""A griffe extension for the statefire reference (mkdocs.yml, mkdocstrings `extensions`).

- The docstrings use Google style with an `Example:` section of doctest lines.
  griffe reads only the plural, `Examples:`, as examples (code); the singular
  would render the `>>>` lines as Markdown quotes. This reads one as the other.
- Module constants are documented by `#:` comments on the lines above them
  (`RUN_ON_PRIORITY`, `CATEGORIES`); griffe reads only string docstrings, so
  such a comment becomes the attribute's docstring.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


@functools.cache
def _lines(path: Path) -> tuple[str, ...]:
    return tuple(path.read_text(encoding="utf-8").splitlines())


def comment_docstring(obj: griffe.Object) -> str | None:
    """The `#:` comment lines right above an attribute's first line, without the markers."""
    if not isinstance(obj.filepath, Path) or not obj.lineno:
        return None
    lines = _lines(obj.filepath)
    found: list[str] = []
    i = obj.lineno - 2  # the line above, 0-based
    while i >= 0 and lines[i].lstrip().startswith("#:"):
        found.insert(0, lines[i].lstrip()[2:].strip())
        i -= 1
    return " ".join(found) or None


class ExampleSections(griffe.Extension):
    """Reads a docstring's `Example:` section as `Examples:`, and `#:` comments as attribute docstrings."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.is_attribute and obj.docstring is None:
            text = comment_docstring(obj)
            if text:
                obj.docstring = griffe.Docstring(text, parent=obj)
        if obj.docstring is not None and "Example:" in obj.docstring.value:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
