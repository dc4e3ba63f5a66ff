"""The data-flow graph as text: Mermaid, Graphviz DOT and GraphML.

The Mermaid and DOT writers take the graph a view shows
(`DataFlowGraph._shown`); GraphML takes the whole graph. None needs a system
Graphviz.
"""

from __future__ import annotations

import collections
import io
import re
from typing import Any

import networkx as nx

from . import _dataflow_view as view

__all__ = ["graphml_ready", "to_dot", "to_mermaid", "write_graphml", "write_text"]


def write_text(path: str, text: str) -> None:
    """Write `text` as UTF-8, atomically (a crash leaves the old file or the new one)."""
    view.write_atomic(path, text.encode("utf-8"))


def write_graphml(path: str, graph: nx.MultiDiGraph) -> None:
    """Write the whole graph as GraphML, atomically."""
    buffer = io.BytesIO()
    nx.write_graphml(graphml_ready(graph), buffer)
    view.write_atomic(path, buffer.getvalue())


def graphml_ready(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy whose attributes GraphML can hold (no None values)."""
    clean = nx.MultiDiGraph()
    for node, data in graph.nodes(data=True):
        clean.add_node(node, **{k: v for k, v in data.items() if v is not None})
    for u, v, data in graph.edges(data=True):
        clean.add_edge(u, v, **{k: v2 for k, v2 in data.items() if v2 is not None})
    return clean



def _mermaid_id(node: str, used: dict[str, str]) -> str:
    if node in used:
        return used[node]
    base = re.sub(r"\W+", "_", node).strip("_") or "node"
    candidate = f"n_{base}"
    n = 2
    while candidate in used.values():
        candidate = f"n_{base}_{n}"
        n += 1
    used[node] = candidate
    return candidate


def _mermaid_text(text: str) -> str:
    for char, entity in (('"', "#quot;"), ("|", "#124;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, entity)
    return '"' + text + '"'


def to_mermaid(graph: nx.MultiDiGraph) -> str:
    units, objects = view.units(graph)
    ids: dict[str, str] = {}
    lines = ["flowchart LR"]
    classes: dict[str, list[str]] = collections.defaultdict(list)
    for unit in sorted(units, key=lambda u: (graph.nodes[u].get("category", "~"), u)):
        title = _mermaid_text(view.unit_title(graph, unit))
        uid = _mermaid_id(unit, ids)
        kind = graph.nodes[unit]["kind"]
        style_class = graph.nodes[unit].get("category", kind) if kind != "function" else "function"
        members = objects[unit]
        if members:
            lines.append(f"  subgraph {uid}[{title}]")
            for obj in sorted(members):
                lines.append(f"    {_mermaid_id(obj, ids)}({_mermaid_text(graph.nodes[obj]['name'])})")
                classes["object"].append(_mermaid_id(obj, ids))
            lines.append("  end")
            lines.append(f"  style {uid} fill:#f7f7f7,stroke:{view.color(graph.nodes[unit])},stroke-width:2px")
        elif kind == "function":
            lines.append(f"  {uid}{{{{{title}}}}}")
            classes[style_class].append(uid)
        else:
            lines.append(f"  {uid}[{title}]")
            classes[style_class].append(uid)
    arrows = {"triggers": "-->", "runs_on": "==>", "reads": "-.->", "sets": "-.->"}
    for u, v, data in sorted(graph.edges(data=True), key=lambda e: (e[0], e[1], e[2]["kind"])):
        kind = data["kind"]
        if kind == "owns":
            continue  # drawn as containment
        label = view.edge_label(data)
        arrow = arrows[kind]
        text = f"|{_mermaid_text(label)}|" if label else ""
        lines.append(f"  {_mermaid_id(u, ids)} {arrow}{text} {_mermaid_id(v, ids)}")
    lines.append("  classDef object fill:#ffffff,stroke:#888888")
    lines.append(f"  classDef function fill:#eeeeee,stroke:{view.FUNCTION_COLOR}")
    for category, color in view.CATEGORY_COLORS.items():
        if classes.get(category):
            lines.append(f"  classDef {category} fill:{color},color:#ffffff,stroke:{color}")
    for name, members in classes.items():
        if members and (name in view.CATEGORY_COLORS or name in ("object", "function")):
            lines.append(f"  class {','.join(members)} {name}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: Any) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: nx.MultiDiGraph) -> str:
    units, objects = view.units(graph)
    lines = [
        "digraph dataflow {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for i, unit in enumerate(sorted(units)):
        data = graph.nodes[unit]
        color = view.color(data)
        shape = {"function": "hexagon", "container": "folder"}.get(data["kind"], "box")
        unit_line = (
            f"{_dot_quote(unit)} [label={_dot_quote(view.unit_title(graph, unit))}, shape={shape}, "
            f'style="filled,rounded", fillcolor={_dot_quote(color)}, fontcolor="white", '
            f"kind={_dot_quote(data['kind'])}];"
        )
        members = objects[unit]
        if not members:
            lines.append("  " + unit_line)
            continue
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_dot_quote(unit)}; color={_dot_quote(color)};")
        lines.append("    " + unit_line)
        for obj in sorted(members):
            od = graph.nodes[obj]
            lines.append(
                f"    {_dot_quote(obj)} [label={_dot_quote(od['name'] + ' = ' + od['value'])}, "
                f'shape=box, style=rounded, kind="object"];'
            )
        lines.append("  }")
    for u, v, data in sorted(graph.edges(data=True), key=lambda e: (e[0], e[1], e[2]["kind"])):
        color, style, width = view.EDGE_STYLE[data["kind"]]
        dot_style = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dashed"}[style]
        attrs = [f"kind={_dot_quote(data['kind'])}", f"color={_dot_quote(color)}",
                 f"style={dot_style}", f"penwidth={width}"]
        label = view.edge_label(data)
        if label:
            attrs.append(f"label={_dot_quote(label)}")
        lines.append(f"  {_dot_quote(u)} -> {_dot_quote(v)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"

