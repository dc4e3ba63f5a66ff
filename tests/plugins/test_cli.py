"""The `statefire` command: graph and trace of a script's global state."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from statefire.plugins.cli import main

SCRIPT = textwrap.dedent(
    """
    import sys
    from statefire.frame import state
    from statefire.features import AverageOutput, Engine

    trainer = Engine("trainer", lambda e, b: b, data=[1.0, 2.0, 3.0], n_epochs=2)
    evaluator = Engine("evaluator", lambda e, b: b, data=[4.0], run_on=trainer.n_epoch_completed_ref)
    AverageOutput(engine=evaluator)
    trainer.run()
    print("script args", sys.argv[1:])
    if "--fail" in sys.argv:
        raise RuntimeError("failed on purpose")
    """
)


@pytest.fixture
def script(write_script):
    """A script using the global state, in a temp dir; the global state is cleared around the test."""
    return write_script(SCRIPT)


def test_graph_writes_a_picture(script, tmp_path, capsys):
    """`statefire graph SCRIPT -o flow.svg` runs the script, then draws its state; args after -- reach it."""
    assert main(["graph", str(script), "-o", "flow.svg", "--", "a", "b"]) == 0
    out = capsys.readouterr().out
    assert "script args ['a', 'b']" in out and "wrote flow.svg" in out
    root = ElementTree.parse(tmp_path / "flow.svg").getroot()
    assert root.tag.endswith("svg")
    assert "evaluator (Engine)" in (tmp_path / "flow.svg").read_text()


def test_graph_traced_to_graphml(script, tmp_path):
    """--traced adds the sets edges; the format follows the extension."""
    assert main(["graph", str(script), "-o", "flow.graphml", "--traced"]) == 0
    import networkx as nx

    graph = nx.read_graphml(tmp_path / "flow.graphml", force_multigraph=True)
    kinds = {d["kind"] for _, _, d in graph.edges(data=True)}
    assert {"owns", "triggers", "runs_on", "reads", "sets"} <= kinds


def test_trace_writes_chrome_json_and_prints_summary(script, tmp_path, capsys):
    """`statefire trace SCRIPT -o trace.json` writes a Chrome trace and prints the top callbacks."""
    assert main(["trace", str(script), "-o", "trace.json", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "callback" in out and "total_s" in out and "wrote trace.json" in out
    document = json.loads((tmp_path / "trace.json").read_text())
    names = {e["name"] for e in document["traceEvents"] if e["ph"] == "X"}
    assert "engines.evaluator.n_iteration_completed" in names
    assert "Engine._run_on_fire[evaluator]" in names


def test_a_failing_script_still_writes(script, tmp_path, capsys):
    """A script that raises: the error is reported, what ran is written, exit status 1."""
    assert main(["trace", str(script), "-o", "trace.json", "--", "--fail"]) == 1
    assert "failed on purpose" in capsys.readouterr().err
    assert (tmp_path / "trace.json").exists()


def test_clear_errors(script, tmp_path, capsys):
    """A missing script, a bad extension and a script leaving no feature say what is wrong."""
    assert main(["graph", "missing.py"]) == 2
    assert "no such script: missing.py" in capsys.readouterr().err
    assert main(["graph", str(script), "-o", "flow.jpg"]) == 2
    assert "cannot write a graph as 'flow.jpg'" in capsys.readouterr().err
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert main(["graph", str(empty)]) == 1
    assert "left no feature in the global state" in capsys.readouterr().err


def test_console_script_runs(script, tmp_path):
    """The installed `statefire` entry point works end to end (a fresh process)."""
    exe = Path(sys.executable).with_name("statefire")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "statefire.plugins.cli"]
    result = subprocess.run([*command, "graph", str(script), "-o", "flow.png"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
