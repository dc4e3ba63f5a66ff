"""The documentation site builds with `mkdocs build --strict`, documents every public name, and works offline.

`--strict` turns every warning into a failure: a broken link or anchor, a
page left out of the navigation, a reference mkdocstrings cannot collect, a
docstring argument that is not in the signature.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("statefire.frame", "statefire.features", "statefire.plugins")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-6000:]
    return out


def test_every_guide_is_a_page(site: Path) -> None:
    """Each docs/*.md becomes a page, its `python no-run` blocks shown as code (strict mode fails on a page left
    out of the nav)."""
    guides = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
    assert {"index", "concepts", "writing-features", "four-levels", "notebooks"} <= set(guides)
    for guide in guides:
        html = (site / f"{guide}.html").read_text(encoding="utf-8")
        assert "no-run" not in html, f"{guide}: a `python no-run` fence shown as text"


@pytest.mark.parametrize("package", PACKAGES)
def test_reference_documents_every_public_name(site: Path, package: str) -> None:
    """Every name in the package's `__all__` has a heading in its reference page, with its docstring."""
    html = (site / "reference" / f"{package.split('.')[1]}.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'id="(statefire\.[\w.]+)"', html))
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not any(a.endswith(f".{name}") for a in anchors)]
    assert not missing, f"{package}: no reference entry for {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_has_a_description(site: Path, package: str) -> None:
    """Every reference entry has a docstring (a `#:` comment counts for a constant), read as the site reads it."""
    import griffe

    sys.path.insert(0, str(ROOT / "docs"))
    try:
        hooks = importlib.import_module("_hooks")
    finally:
        sys.path.remove(str(ROOT / "docs"))
    extensions = griffe.load_extensions(f"{ROOT / 'docs' / '_griffe_ext.py'}:ExampleSections")
    module = griffe.load(package, search_paths=[str(ROOT / "build" / "docs-api")], extensions=extensions,
                         resolve_aliases=True)
    undocumented = []
    for _, identifier in hooks.reference_identifiers(package):
        obj = module[identifier[len(package) + 1:]]
        obj = obj.final_target if obj.is_alias else obj
        if obj.docstring is None or not obj.docstring.value.strip():
            undocumented.append(identifier)
    assert not undocumented, f"no docstring for {undocumented}"


def test_reference_renders_docstring_examples_as_code(site: Path) -> None:
    """`Example:` sections (doctest lines) show as highlighted code, not as Markdown quotes."""
    html = (site / "reference" / "frame.html").read_text(encoding="utf-8")
    assert "<blockquote>" not in html
    assert 'class="highlight"' in html and "&gt;&gt;&gt;" in html


def test_site_fetches_nothing_at_view_time(site: Path) -> None:
    """No page or stylesheet loads a script, stylesheet or font from the network."""
    remote = re.compile(
        r"""<script[^>]*\ssrc=["']?(https?:)?//"""
        r"""|<link[^>]*\shref=["']?(https?:)?//[^>]*>"""
        r"""|url\(["']?(https?:)?//"""
        r"""|@import\s+["']?(url\()?["']?(https?:)?//"""
        r"""|fonts\.(googleapis|gstatic)\.com""",
        re.I,
    )
    offenders = []
    for path in site.rglob("*"):
        if path.suffix in (".html", ".css"):
            for match in remote.finditer(path.read_text(encoding="utf-8", errors="replace")):
                tag = match.group(0)
                # <link rel="canonical"> and the like name an address, they fetch nothing
                fetching = r"rel=[\"']?(stylesheet|preload|preconnect|modulepreload|icon)"
                if tag.startswith("<link") and not re.search(fetching, tag):
                    continue
                offenders.append(f"{path.relative_to(site)}: {tag[:120]}")
    assert not offenders, "\n".join(offenders)
    # search works from file:// (the offline plugin's inlined index, a local worker shim)
    assert (site / "search" / "search_index.js").is_file()
    assert (site / "assets" / "javascripts" / "iframe-worker-shim.js").is_file()
