"""How an experiment tree is drawn: a tidy top-down layout, a matplotlib picture, Mermaid text."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

__all__ = ["draw", "mermaid", "tidy_layout"]

_FILL = {"completed": "#cfe3f7", "failed": "#f4b6b6"}


def mermaid(graph: nx.DiGraph, labels: dict[str, str]) -> str:
    """The tree as a Mermaid flowchart, top down."""
    lines = ["graph TD"]
    for node_id, label in labels.items():
        text = label.replace('"', "#quot;").replace("\n", "<br/>")
        lines.append(f'    n{node_id[:12]}["{text}"]')
    lines += [f"    n{a[:12]} --> n{b[:12]}" for a, b in graph.edges]
    return "\n".join(lines) + "\n"


def tidy_layout(graph: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """x: leaves in depth-first order, a parent centred over its children; y: the depth."""
    positions: dict[str, tuple[float, float]] = {}
    next_x = [0.0]

    def place(node: str, depth: int) -> float:
        children = sorted(graph.successors(node), key=lambda c: graph.nodes[c]["path"])
        if not children:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            xs = [place(child, depth + 1) for child in children]
            x = (xs[0] + xs[-1]) / 2
        positions[node] = (x, -float(depth))
        return x

    for root in sorted((n for n in graph if graph.in_degree(n) == 0), key=lambda n: graph.nodes[n]["path"]):
        place(root, 0)
    return positions


def draw(graph: nx.DiGraph, labels: dict[str, str], path: Path, dpi: int) -> None:
    """Save a picture of the tree (PNG, SVG, PDF by the suffix of `path`); failed nodes in red."""
    from matplotlib.figure import Figure  # no pyplot: no global figure, no GUI backend

    positions = tidy_layout(graph)
    width = max(1.0, max((x for x, _ in positions.values()), default=0.0) + 1)
    depth = max(1.0, -min((y for _, y in positions.values()), default=0.0) + 1)
    figure = Figure(figsize=(max(4.0, 2.8 * width), max(2.5, 1.3 * depth)))
    ax = figure.add_subplot()
    ax.set_axis_off()
    nx.draw_networkx_edges(graph, positions, ax=ax, arrows=True, arrowstyle="-|>", arrowsize=12, edge_color="#777",
                           min_source_margin=14, min_target_margin=16)  # fmt: skip
    for status, colour in _FILL.items():
        chosen = {n: labels[n] for n in graph if graph.nodes[n]["status"] == status}
        nx.draw_networkx_labels(graph, positions, labels=chosen, ax=ax, font_size=8,
                                bbox={"boxstyle": "round,pad=0.4", "fc": colour, "ec": "#555"})  # fmt: skip
    ax.margins(x=0.5 / width + 0.04, y=0.4 / depth + 0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
