"""A griffe extension for the statefire reference (mkdocs.yml, mkdocstrings `extensions`).

The docstrings use Google style with an `Example:` section of doctest lines.
griffe reads only the plural, `Examples:`, as examples (code); the singular
would render the `>>>` lines as Markdown quotes. This reads one as the other.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    """Reads a docstring's `Example:` section as `Examples:`."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and "Example:" in obj.docstring.value:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
