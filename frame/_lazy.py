"""Lazy exports for the packages above frame: a name's module is imported on its first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], exports: dict[str, str]) -> tuple[
    Callable[[str], Any], Callable[[], list[str]]
]:
    """`__getattr__` and `__dir__` for `package`, whose public names live in the modules `exports` maps them to.

    Importing the package then imports none of those modules (nor torch):
    `from statefire.features import Engine` loads `features.engine` only.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports])

    return __getattr__, __dir__
