"""What every view of a data-flow graph shares: its units, colours and labels.

A view (the picture, DOT, Mermaid) draws *units*: features, containers and
functions, each holding the state objects shown with it. These functions read
a graph shaped like `DataFlowGraph.graph` (node attribute `kind`, edge
attribute `kind`) and know nothing of the State it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from statefire.features._files import write_atomically

__all__ = [
    "CATEGORY_COLORS",
    "CONTAINER_COLOR",
    "EDGE_STYLE",
    "FUNCTION_COLOR",
    "OTHER_COLOR",
    "color",
    "edge_label",
    "legend_name",
    "unit_of",
    "unit_title",
    "units",
    "write_atomic",
]

CATEGORY_COLORS = {
    "engines": "#4C72B0",
    "metrics": "#55A868",
    "output_handlers": "#8172B2",
    "charts": "#C44E52",
    "writers": "#937860",
    "handlers": "#DD8452",
    "components": "#7F7F7F",
    "params": "#B8A136",
    "plugins": "#3A9BB8",
}
OTHER_COLOR = "#6B8E23"
FUNCTION_COLOR = "#555555"
CONTAINER_COLOR = "#999999"

#: kind: (color, matplotlib linestyle, width), in the order a legend lists the kinds
#: (the same order as `dataflow.EDGE_KINDS`; a test keeps them in step).
EDGE_STYLE: dict[str, tuple[str, Literal["-", "--", "-.", ":"], float]] = {
    "owns": ("#BBBBBB", ":", 0.8),
    "triggers": ("#333333", "-", 1.0),
    "runs_on": ("#D62728", "-", 2.2),
    "reads": ("#1F77B4", "--", 1.0),
    "sets": ("#2CA02C", "-.", 1.4),
}


def units(graph: nx.MultiDiGraph) -> tuple[list[str], dict[str, list[str]]]:
    """The units to draw and, for each, its objects shown."""
    found = [n for n, d in graph.nodes(data=True) if d["kind"] != "object"]
    objects: dict[str, list[str]] = {u: [] for u in found}
    for node, data in graph.nodes(data=True):
        if data["kind"] == "object":
            owner = data["owner"]
            if owner not in objects:  # the owner is hidden: show the object on its own
                found.append(node)
                objects[node] = []
            else:
                objects[owner].append(node)
    return found, objects


def unit_of(graph: nx.MultiDiGraph, node: str) -> str:
    """The unit a node is drawn in: an object's owner when shown, else the node itself."""
    data = graph.nodes[node]
    if data["kind"] == "object" and data["owner"] in graph:
        return data["owner"]
    return node


def color(data: dict[str, Any]) -> str:
    """A unit's colour, from its node attributes: functions, containers, then by category."""
    if data["kind"] == "function":
        return FUNCTION_COLOR
    if data["kind"] == "container":
        return CONTAINER_COLOR
    return CATEGORY_COLORS.get(data.get("category", ""), OTHER_COLOR)


def unit_title(graph: nx.MultiDiGraph, unit: str) -> str:
    """The header of a unit: `trainer (SupervisedTrainer)`, `metrics (container)`, `ƒ report`."""
    data = graph.nodes[unit]
    if data["kind"] == "feature":
        return f"{data['label']} ({data['cls']})"
    if data["kind"] == "container":
        return f"{data['label']} (container)"
    if data["kind"] == "function":
        return f"ƒ {data['label']}"
    return unit


def edge_label(data: dict[str, Any]) -> str:
    """The text an edge carries: its filter, `runs on`, `read as <attribute>`, `sets`."""
    kind = data["kind"]
    flt = data.get("filter") or ""
    if kind == "runs_on":
        return f"runs on ({flt})" if flt else "runs on"
    if kind == "reads":
        return f"read as {data.get('attribute', '')}"
    if kind == "sets":
        return "sets"
    return flt


def legend_name(data: dict[str, Any]) -> str:
    """The legend entry a unit's colour stands for."""
    if data["kind"] == "feature":
        return data["category"]
    return {"container": "containers", "function": "functions"}.get(data["kind"], data["kind"])


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` so a crash leaves the old file or the new one, never half of one."""
    write_atomically(Path(path), lambda file: file.write(data))
