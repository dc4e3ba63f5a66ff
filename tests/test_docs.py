"""Every ```python block of every docs/*.md runs: the blocks of a file in order, in one namespace.

Each file runs inside a fresh `frame.State()` and a temporary working
directory, so docs that create features or write files leave nothing
behind. A block fenced as ```python no-run is shown but not executed.
"""

from __future__ import annotations

import linecache
import re
from pathlib import Path

import pytest

from statefire import frame

DOCS = Path(__file__).resolve().parent.parent / "docs"
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The runnable python blocks of a Markdown text, with the line each starts on."""
    blocks = []
    for match in _FENCE.finditer(text):
        words = match["info"].split()
        if not words or words[0] not in ("python", "py") or "no-run" in words[1:]:
            continue
        line = text.count("\n", 0, match.start("body")) + 1
        indent = match["indent"]
        body = "".join(row[len(indent):] if row.startswith(indent) else row for row in match["body"].splitlines(True))
        blocks.append((line, body))
    return blocks


def test_block_extraction():
    """Python blocks are found in order; other languages and `python no-run` are skipped."""
    text = (
        "intro\n```python\na = 1\n```\n"
        "```bash\nmake test\n```\n"
        "```python no-run\nraise SystemExit\n```\n"
        "- item\n  ```python\n  b = a + 1\n  ```\n"
    )
    assert python_blocks(text) == [(3, "a = 1\n"), (13, "b = a + 1\n")]


DOC_FILES = sorted(DOCS.glob("*.md"))


def test_docs_exist():
    """The docs folder has guides to run (the parametrized test below is not empty)."""
    assert any(p.name == "concepts.md" for p in DOC_FILES)


@pytest.mark.parametrize("path", DOC_FILES, ids=[p.name for p in DOC_FILES])
def test_doc_code_blocks_run(path, tmp_path, monkeypatch):
    """The file's python blocks run in order in one namespace, in a fresh State and a temp dir."""
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    with frame.State():
        for line, code in blocks:
            filename = f"{path}:{line}"
            # registered as a notebook registers its cells: functions defined in a block have readable
            # source, which experiment trees hash to name their nodes
            linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
            compiled = compile(code, filename, "exec")
            try:
                exec(compiled, namespace)
            except Exception as error:
                if hasattr(error, "add_note"):  # Python 3.11+
                    error.add_note(f"in the python block at {path.name}:{line}")
                raise
