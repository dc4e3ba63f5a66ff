"""How the debugger shows a feature: its values first, its refs under one `refs` entry.

A feature answers both `x` (the value) and `x_ref` (its ref), so that
editors complete both; a plain debugger view would list every value next
to its ref. This module is a type resolver for pydevd, the debugger of
debugpy (VS Code, Jupyter) and PyCharm, installed where pydevd looks for
extensions (`pydevd_plugins/extensions/pydevd_plugin_*.py`). pydevd loads it
only while debugging; statefire itself never imports it.

The view of a feature, top to bottom: pydevd's own groups (special,
function and protected variables), then the state objects' values in the
order the class declares them (the shown ones, then the hidden resume
bookkeeping), then the feature's other public attributes, then `refs`,
the dict of its refs by name.
"""

from __future__ import annotations

import sys
from typing import Any

from _pydevd_bundle.pydevd_extension_api import TypeResolveProvider


def _feature_class() -> type | None:
    """statefire's Feature if statefire is in use; never imports it."""
    module = sys.modules.get("statefire.frame.feature")
    return None if module is None else module.Feature


def _entries(feature: Any) -> list[tuple[str, Any, str]]:
    """(name, value, evaluate-name suffix) rows of a feature, values first."""
    cls = type(feature)
    objects = cls.state_objects()
    values = feature.values()
    shown = [name for name in objects if not getattr(objects[name], "hidden", False)]
    hidden = [name for name in objects if name not in shown]
    refs = {f"{name}_ref" for name in objects}
    rows = [(name, values[name], f".{name}") for name in [*shown, *hidden]]
    for name in dir(feature):
        if name in objects or name in refs or name == "refs":
            continue
        try:
            value = getattr(feature, name)
        except Exception as error:  # a property that fails shows its error, as pydevd does
            value = f"<error: {error!r}>"
        rows.append((name, value, f".{name}"))
    rows.append(("refs", feature.refs, ".refs"))
    return rows


class FeatureResolver:
    """pydevd's resolver for every statefire `Feature` subclass."""

    def can_provide(self, type_object: type, type_name: str) -> bool:
        feature = _feature_class()
        return feature is not None and isinstance(type_object, type) and issubclass(type_object, feature)

    def resolve(self, var: Any, attribute: str) -> Any:
        return var.refs if attribute == "refs" else getattr(var, attribute)

    def get_dictionary(self, var: Any) -> dict[str, Any]:
        return {name: value for name, value, _ in _entries(var)}

    def get_contents_debug_adapter_protocol(self, obj: Any, fmt: Any = None) -> list[tuple[str, Any, str]]:
        return _entries(obj)


TypeResolveProvider.register(FeatureResolver)

__all__ = ["FeatureResolver"]
