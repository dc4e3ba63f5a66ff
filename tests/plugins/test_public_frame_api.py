"""Plugins read a State through frame's public API only, and find run_on links by their tag."""

from __future__ import annotations

import re
from pathlib import Path

from statefire.features import Engine
from statefire.frame import State
from statefire.plugins import DataFlowGraph

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def test_plugins_use_no_private_frame_name():
    """No `frame._render`/`frame._names`, no `._sf`, `_sf_objects` or `_frame` in any plugin module.

    (`statefire.frame._lazy` in `__init__.py` is the packaging helper behind lazy exports.)
    """
    pattern = re.compile(r"frame\._(?!lazy\b)\w+|\._sf\b|_sf_objects|\._frame\b|\b_run_on_fire\b")
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(PLUGINS.glob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def test_the_graph_reads_the_run_on_tag_not_a_function_name():
    """An engine's run_on handle is tagged `run_on` and drawn as runs_on; the same method attached
    by hand, without the tag, is an ordinary trigger (the graph no longer matches the name)."""
    with State() as s:
        trainer = Engine("trainer", lambda e, b: b, data=[1])
        evaluator = Engine("evaluator", lambda e, b: b, data=[1], run_on=trainer.n_epoch_completed_ref)
        other = Engine("other", lambda e, b: b, data=[1])
        trainer.n_epoch_completed_ref.attach(other._run_on_fire)
        (handle,) = [h for h in trainer.n_epoch_completed_ref.handles if h.callback_owner is evaluator]
        assert handle.kind == "run_on"
        graph = DataFlowGraph(s).graph
        kinds = {(u, v): d["kind"] for u, v, d in graph.edges(data=True) if u == "engines.trainer.n_epoch_completed"}
    assert kinds[("engines.trainer.n_epoch_completed", "engines.evaluator")] == "runs_on"
    assert kinds[("engines.trainer.n_epoch_completed", "engines.other")] == "triggers"
