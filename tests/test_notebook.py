"""examples/quickstart.ipynb runs in a real Jupyter kernel: no cell errors, no notable warning.

The notebook runs with nbclient and ipykernel (the test extra), in an empty
directory, as a user runs it top to bottom; then its outputs are checked
for what the notebook promises to show.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
# stderr a cell may print without failing the test: none for now
ALLOWED_STDERR: tuple[str, ...] = ()
NOTABLE = re.compile(r"Warning|Traceback|Error", re.I)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cwd = tmp_path_factory.mktemp("notebook")
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
        startup_timeout=60,
    )  # fmt: skip
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    return notebook


def _outputs(notebook: nbformat.NotebookNode) -> list[tuple[int, dict]]:
    return [(i, out) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" for out in cell.outputs]


def test_no_cell_prints_a_warning_or_an_error(executed: nbformat.NotebookNode) -> None:
    """Nothing goes to stderr that looks like a warning or an error, and no output is an error."""
    notable = []
    for i, out in _outputs(executed):
        if out.output_type == "error":
            notable.append(f"cell {i}: {out.ename}: {out.evalue}")
        elif out.output_type == "stream" and out.name == "stderr":
            text = out.text
            if NOTABLE.search(text) and not any(allowed in text for allowed in ALLOWED_STDERR):
                notable.append(f"cell {i}: {text[:500]}")
    assert not notable, "\n".join(notable)


def test_shows_the_state_as_html(executed: nbformat.NotebookNode) -> None:
    """The state and a feature display as HTML tables holding their state objects' values."""
    html = [out.data["text/html"] for _, out in _outputs(executed) if "text/html" in out.get("data", {})]
    assert any("val_evaluator" in h and "n_epoch_completed" in h and "<table" in h for h in html)
    assert any("val_evaluator_accuracy" in h and "n_written" in h for h in html)


def test_rerun_cell_explains_itself_and_variant_state_is_separate(executed: nbformat.NotebookNode) -> None:
    """Re-creating a feature prints the NameConflictError's message; the `with State()` variant trains apart."""
    text = "".join(out.text for _, out in _outputs(executed) if out.output_type == "stream" and out.name == "stdout")
    assert "'val_evaluator' already exists" in text
    variant, main = (float(m) for m in re.findall(r"val accuracy (\d\.\d+)", text)[-2:])
    assert main > 0.93 and 0.0 < variant < 1.0


def test_graph_and_charts_data_shown_inline(executed: nbformat.NotebookNode) -> None:
    """The data-flow graph and the comparison plot are PNG images; the curves' values are printed per engine."""
    pngs = [out.data["image/png"] for _, out in _outputs(executed) if "image/png" in out.get("data", {})]
    assert len(pngs) >= 2
    text = "".join(out.text for _, out in _outputs(executed) if out.output_type == "stream" and out.name == "stdout")
    for engine in ("train_evaluator", "val_evaluator"):
        for tag in ("accuracy", "loss"):
            line = re.search(rf"^{engine}\s+{tag}\s+(.*)$", text, re.M)
            assert line is not None and len(line[1].split()) == 5, (engine, tag)  # one point per epoch
