"""`describe(thing)`: what a ref or a feature is, its value, who fires it, who reads it."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from statefire.frame import Feature, FilteredRef, Ref, State, summarize
from statefire.frame.state import Container

__all__ = ["describe"]

_INDENT = "  "


def describe(thing: Any, state: State | None = None, *, file: TextIO | None = None) -> None:
    """Print what `thing` is, its current value, who triggers it and who reads it.

    Args:
        thing: a ref (`state.trainer.n_samples_ref`), a filtered ref, a
            feature, or a path (`"engines.trainer.n_samples"`, also without
            the category: `"trainer.n_samples"`, `"trainer"`); a State
            prints its whole tree (`state.tree()`).
        state: where to look up a path and the wiring; the thing's own State
            (or the current one) by default.
        file: where to print; standard output by default.

    Raises:
        KeyError: a path that names nothing in the state (close names suggested).
        TypeError: anything else than a ref, a feature or a path.

    Example:
        >>> from statefire.frame import State
        >>> from statefire.features import Engine
        >>> with State() as s:
        ...     engine = Engine("engine", lambda e, b: b, data=[1, 2])
        ...     handle = engine.n_epoch_completed_ref.attach(print, every=2)
        ...     describe("engine.n_epoch_completed")
        engines.engine.n_epoch_completed
          what:     Counter of engine (Engine): epochs completed, over all runs
          value:    0
          triggers: fn:print  (every=2)
          read by:  nothing
          set by:   engines.engine
    """
    from .dataflow import DataFlowGraph

    if isinstance(thing, State):
        print(thing.tree(), file=file or sys.stdout)
        return
    if state is None:
        owner = getattr(thing, "owner", thing)
        state = getattr(owner, "state", None) if isinstance(owner, Feature) else None
        if isinstance(owner, Container):
            state = owner.state
        if state is None:
            state = State.current()
    flow = DataFlowGraph(state)
    if not isinstance(thing, (Ref, FilteredRef, Feature, Container, str)):
        raise TypeError(
            "describe() takes a ref (state.trainer.n_samples_ref), a feature, a path "
            f"like 'engines.trainer.n_samples' or a State, got {type(thing).__name__}: {thing!r}"
        )
    node = flow.node(thing)
    data = flow.graph.nodes[node]
    lines = _describe_object(flow, node, thing) if data["kind"] == "object" else _describe_unit(flow, node)
    print("\n".join(lines), file=file or sys.stdout)


def _describe_object(flow: Any, node: str, thing: Any) -> list[str]:
    graph = flow.graph
    data = graph.nodes[node]
    owner_data = graph.nodes.get(data["owner"], {})
    owner_text = f"{owner_data.get('label', data['owner'])} ({owner_data.get('cls', '?')})"
    what = f"{data['cls']} of {owner_text}" + (f": {data['doc']}" if data["doc"] else "")
    lines = [node, f"{_INDENT}what:     {what}"]
    if isinstance(thing, FilteredRef):
        lines.append(f"{_INDENT}filter:   {thing.filter!r} (this filtered ref fires its followers only then)")
    lines.append(f"{_INDENT}value:    {_current_value(flow, node)}")
    triggers = []
    for _, target, edge in sorted(graph.out_edges(node, data=True), key=lambda e: -e[2].get("priority", 0)):
        if edge["kind"] not in ("triggers", "runs_on"):
            continue
        notes = []
        if edge["kind"] == "runs_on":
            notes.append("runs the engine")
        if edge.get("filter"):
            notes.append(edge["filter"])
        if not target.startswith("fn:"):
            notes.append(edge["callback"])
        if edge.get("priority"):
            notes.append(f"priority {edge['priority']}")
        triggers.append(f"{target}  ({', '.join(notes)})" if notes else target)
    lines += _listed("triggers", triggers)
    reads = [f"{v} (as {d.get('attribute')})" for _, v, d in graph.out_edges(node, data=True) if d["kind"] == "reads"]
    lines += _listed("read by", reads)
    setters = [u for u, _, d in graph.in_edges(node, data=True) if d["kind"] in ("owns", "sets")]
    lines += _listed("set by", list(dict.fromkeys(setters)))
    return lines


def _describe_unit(flow: Any, node: str) -> list[str]:
    graph = flow.graph
    data = graph.nodes[node]
    if data["kind"] == "function":
        lines = [f"{node} (a callback that belongs to no feature)"]
    else:
        lines = [f"{node} ({data['cls']}, category {data['category']})"]
        feature = _feature(flow.state, node)
        doc = (type(feature).__doc__ or "").strip().splitlines() if feature is not None else []
        if doc:
            lines.append(f"{_INDENT}{doc[0]}")
        if feature is not None:
            values = [f"{name}={summarize(value)}" for name, value in feature.shown_values().items()]
            lines += _listed("values", values, per_line=4)
    fired_by = [
        f"{u} -> {d['callback']}" + (f" ({d['filter']})" if d.get("filter") else "")
        for u, _, d in graph.in_edges(node, data=True) if d["kind"] in ("triggers", "runs_on")
    ]
    lines += _listed("fired by", fired_by)
    reads = [f"{u} (as {d.get('attribute')})" for u, _, d in graph.in_edges(node, data=True) if d["kind"] == "reads"]
    lines += _listed("reads", reads)
    followed = []
    for _, obj, d in graph.out_edges(node, data=True):
        if d["kind"] != "owns":
            continue
        targets = [v for _, v, k in graph.out_edges(obj, data="kind") if k in ("triggers", "runs_on", "reads")]
        if targets:
            followed.append(f"{graph.nodes[obj]['name']} -> {', '.join(dict.fromkeys(targets))}")
    lines += _listed("followed", followed)
    return lines


def _listed(title: str, items: list[str], per_line: int = 1) -> list[str]:
    head = f"{_INDENT}{title + ':':<10}"
    if not items:
        return [head + "nothing"]
    rows = ["  ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return [head + rows[0]] + [" " * len(head) + row for row in rows[1:]]


def _feature(state: State, node: str) -> Feature | None:
    for feature in state.features:
        if feature.path == node:
            return feature
    return None


def _current_value(flow: Any, node: str) -> str:
    owner_path, _, name = node.rpartition(".")
    feature = _feature(flow.state, owner_path)
    if feature is not None:
        return summarize(getattr(feature, name, None))  # through the descriptor: live for a Component
    return flow.graph.nodes[node].get("value", "?")
