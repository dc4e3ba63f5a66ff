"""mkdocs hooks for the statefire site (listed under `hooks:` in mkdocs.yml).

- The API reference pages hold one marker each, `<!-- api: statefire.features -->`;
  it becomes one mkdocstrings block per name of that package's `__all__`, so a
  name another branch exports (its `_EXPORTS` entry) appears without editing a page.
  `statefire.features` and `statefire.plugins` export lazily (a module `__getattr__`),
  which a static reader cannot follow: each name is documented at the module
  that defines it, found in the package's `_EXPORTS` map.
- A fence's `no-run` (the docs test's marker for blocks it does not run) is
  dropped, so the block is highlighted as the language it names.
- Guides that land from other branches are listed in the nav already; until their
  file exists, the nav leaves them out (only those listed in `PENDING_PAGES`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.statefire")

#: Pages other branches add; the nav names them and drops each one until it exists.
#: Once all have landed this set can be emptied: a missing page then fails the build.
PENDING_PAGES = {"runs.md", "trees.md", "distributed.md", "migrating-from-lightning.md"}

_MARKER = re.compile(r"^<!-- api: (?P<package>[\w.]+) -->$", re.M)
# ```python no-run: a block the docs test shows but does not run; the site shows it as python
_NO_RUN = re.compile(r"^(?P<fence>[ \t]*```[\w-]+)[ \t]+no-run[ \t]*$", re.M)

#: Titles of the features/plugins modules, for the reference's sections (others get their module name).
_MODULE_TITLES = {
    "engine": "Engines",
    "output_handler": "Output handlers",
    "metrics": "Metrics",
    "ignite_metric": "Metrics",
    "components": "Torch components",
    "supervised": "Pipelines",
    "tensorboard": "Charts and writers",
    "charts": "Charts and writers",
    "checkpoint": "Checkpoints",
    "handlers": "Handlers",
    "progress": "Handlers",
    "clock": "Handlers",
    "distributed": "Distributed training",
    "dataflow": "Data flow",
    "trace": "Event trace",
    "describe": "Inspection",
    # modules other branches add
    "runs": "Runs and the registry",
    "registry": "Runs and the registry",
    "mlflow": "Runs and the registry",
    "trees": "Experiment trees",
    "cli": "The statefire command",
}


def _prune_nav(nav: list[Any], docs_dir: Path) -> list[Any]:
    kept: list[Any] = []
    for item in nav:
        if isinstance(item, dict):
            (title, target), = item.items()
            if isinstance(target, list):
                target = _prune_nav(target, docs_dir)
            elif isinstance(target, str) and target in PENDING_PAGES and not (docs_dir / target).exists():
                log.info("nav: %s is not in docs/ yet, left out", target)
                continue
            kept.append({title: target})
        elif isinstance(item, str) and item in PENDING_PAGES and not (docs_dir / item).exists():
            continue
        else:
            kept.append(item)
    return kept


def link_packages(root: Path) -> Path:
    """`root/build/docs-api/statefire/{frame,features,plugins}` -> the folders at the root.

    The repository keeps its packages at the root and installs them as
    `statefire.*` (a setuptools package-dir mapping, which a static reader does
    not see): these links give griffe the installed layout, always current.
    """
    api = root / "build" / "docs-api" / "statefire"
    api.mkdir(parents=True, exist_ok=True)
    for name in ("frame", "features", "plugins"):
        link = api / name
        if not link.is_symlink() or link.resolve() != (root / name).resolve():
            if link.is_symlink() or link.exists():
                link.unlink()
            try:
                link.symlink_to(root / name, target_is_directory=True)
            except FileExistsError:  # a build running at the same time made it
                pass
    return api.parent


# At import, which mkdocs does while it reads mkdocs.yml: before mkdocstrings keeps
# the handler's `paths` (it drops one that does not exist yet).
link_packages(Path(__file__).resolve().parent.parent)


def on_config(config: Any) -> Any:
    config["nav"] = _prune_nav(config["nav"], Path(config["docs_dir"]))
    return config


def reference_identifiers(package: str) -> list[tuple[str, str]]:
    """`(section, identifier)` for every public name of `package`, in `__all__` order.

    The identifier is what mkdocstrings documents: `statefire.features.engine.Engine`
    for a lazily exported name (its defining module, from `_EXPORTS`), else
    `statefire.frame.State` (a static import griffe follows).
    """
    module = importlib.import_module(package)
    exports: dict[str, str] = getattr(module, "_EXPORTS", {})
    entries = []
    # in the order of the package's export map (engines first), else of __all__
    order = {name: i for i, name in enumerate(exports)}
    for name in sorted(module.__all__, key=lambda n: order.get(n, len(order))):
        if name in exports:
            entries.append((_MODULE_TITLES.get(exports[name], exports[name]), f"{package}.{exports[name]}.{name}"))
        elif importlib.util.find_spec(f"{package}.{name}") is not None and not inspect.ismodule(getattr(module, name)):
            # a submodule of the same name (frame's `state` instance in `frame/state.py`):
            # griffe would document the module, so name the member inside it
            entries.append(("", f"{package}.{name}.{name}"))
        else:
            entries.append(("", f"{package}.{name}"))
    return entries


def api_markdown(package: str) -> str:
    """The Markdown of one package's reference: sections by module, one block per name."""
    entries = reference_identifiers(package)
    sections: dict[str, list[str]] = {}
    for section, identifier in entries:
        sections.setdefault(section, []).append(identifier)
    lines = []
    for section, identifiers in sections.items():
        if section:
            lines += [f"## {section}", ""]
        for identifier in identifiers:
            lines += [f"::: {identifier}", f"    options:", f"      heading_level: {3 if section else 2}", ""]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    markdown = _NO_RUN.sub(r"\g<fence>", markdown)
    return _MARKER.sub(lambda m: api_markdown(m["package"]), markdown)
