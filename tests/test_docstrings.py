"""Every docstring example (`>>>`) of statefire runs, against the installed modules.

Modules are found by their installed names (`statefire.frame.state`, ...),
imported once, and their examples run with `doctest`. pytest's own
`--doctest-modules` would import each file a second time under its folder
name (`frame.state`), giving two global states; the last test here fails if
any module is ever loaded under two names.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

PACKAGES = ["statefire.frame", "statefire.features", "statefire.plugins"]


def module_names() -> list[str]:
    """Every module of the three packages, by installed name, packages included."""
    names = []
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        names += [info.name for info in pkgutil.iter_modules(package.__path__, package_name + ".")]
    return sorted(names)


MODULES = module_names()


def test_modules_are_found():
    """The walk sees the modules the docs rely on (the parametrized test below is not vacuous)."""
    assert {"statefire.frame.state", "statefire.features.engine", "statefire.plugins.dataflow"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    """The module's examples pass; each runs in a temp working directory."""
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures: list[str] = []
    for test in finder.find(module, name):  # each example sees its module's globals, as pytest gives them
        runner.run(test, out=failures.append)
    assert not failures, "".join(failures)


def test_examples_are_counted():
    """The runner does run examples: the public classes carry dozens of them."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    examples = sum(len(test.examples) for name in MODULES for test in finder.find(importlib.import_module(name)))
    assert examples > 100, examples


def test_no_module_is_loaded_under_two_names():
    """Each source file of statefire is imported once: no `frame.x` beside `statefire.frame.x`."""
    for name in MODULES:
        importlib.import_module(name)
    by_file: dict[Path, list[str]] = {}
    for module_name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and module_name.split(".")[0] in ("statefire", "frame", "features", "plugins"):
            by_file.setdefault(Path(file).resolve(), []).append(module_name)
    twice = {str(file): names for file, names in by_file.items() if len(names) > 1}
    assert not twice, f"modules loaded under two names: {twice}"
    assert not {"frame", "features", "plugins"} & set(sys.modules), "a top-level frame/features/plugins was imported"
