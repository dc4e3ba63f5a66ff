"""The data-flow graph as a picture: a layered layout drawn with matplotlib.

Units (features, containers, functions) are cards in columns, effects
flowing left to right; an edge leaves the row of the object that fires and
enters the card it fires. No system Graphviz is needed.
"""

from __future__ import annotations

import collections
import io
import os
from typing import Any

import networkx as nx

from . import _dataflow_view as view

__all__ = ["draw"]

_FONT = "DejaVu Sans Mono"
_FONT_SIZE = 8.0
_CHAR_W = 0.602 * _FONT_SIZE  # DejaVu Sans Mono advance width, in points
_HEADER_H = 17.0
_ROW_H = 13.0
_PAD = 6.0
_COL_GAP = 110.0
_CARD_GAP = 16.0
_MAX_ROW_CHARS = 44
_LABEL_SIZE = _FONT_SIZE - 1.5  # edge labels: smaller than the rows they must not cover
_LABEL_CHAR_W = 0.602 * _LABEL_SIZE
_LABEL_H = _LABEL_SIZE + 4.0  # the glyphs and the white box behind them
_ARROW = 10.0  # room left for an arrow head before a label
_CLEARANCE = 2.0  # least distance between an edge label and a card or another label

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in layout points (y downwards)


class _Card:
    """One unit drawn as a box: a coloured header and one row per shown object."""

    def __init__(self, unit: str, title: str, rows: list[tuple[str, str]], color: str, kind: str) -> None:
        self.unit = unit
        self.title = title
        self.rows = rows  # (object node, text)
        self.color = color
        self.kind = kind
        chars = max([len(title)] + [len(text) for _, text in rows])
        self.width = chars * _CHAR_W + 2 * _PAD
        self.height = _HEADER_H + len(rows) * _ROW_H + (4.0 if rows else 0.0)
        self.x = 0.0
        self.y = 0.0  # top edge; y grows downwards while laying out

    def row_y(self, node: str) -> float:
        for i, (obj, _) in enumerate(self.rows):
            if obj == node:
                return self.y + _HEADER_H + (i + 0.5) * _ROW_H + 2.0
        return self.y + _HEADER_H / 2

    @property
    def center_y(self) -> float:
        return self.y + self.height / 2


def _layers(graph: nx.MultiDiGraph, units: list[str]) -> dict[str, int]:
    """Longest-path layers over the units, cycles collapsed, so effects flow left to right."""
    flow = nx.DiGraph()
    flow.add_nodes_from(units)
    for u, v, kind in graph.edges(data="kind"):
        if kind == "owns":
            continue
        a, b = view.unit_of(graph, u), view.unit_of(graph, v)
        if a != b:
            flow.add_edge(a, b)
    condensed = nx.condensation(flow)
    layer_of_component: dict[int, int] = {}
    for component in nx.topological_sort(condensed):
        preds = list(condensed.predecessors(component))
        layer_of_component[component] = 1 + max((layer_of_component[p] for p in preds), default=-1)
    mapping = condensed.graph["mapping"]
    return {unit: layer_of_component[mapping[unit]] for unit in units}


def _layout(graph: nx.MultiDiGraph, values: bool) -> tuple[dict[str, _Card], list[list[_Card]]]:
    units, objects = view.units(graph)
    cards: dict[str, _Card] = {}
    for unit in units:
        data = graph.nodes[unit]
        rows = []
        for obj in sorted(objects[unit], key=lambda o: _object_order(graph, o)):
            od = graph.nodes[obj]
            text = f"{od['name']} = {od['value']}" if values else od["name"]
            if len(text) > _MAX_ROW_CHARS:
                text = text[: _MAX_ROW_CHARS - 1] + "…"
            rows.append((obj, text))
        cards[unit] = _Card(unit, view.unit_title(graph, unit), rows, view.color(data), data["kind"])
    layers = _layers(graph, units)
    n_layers = 1 + max(layers.values(), default=0)
    columns: list[list[_Card]] = [[] for _ in range(n_layers)]
    for unit in sorted(units, key=lambda u: (graph.nodes[u].get("category", "~"), u)):
        columns[layers[unit]].append(cards[unit])
    # Cards with no edge at all (models, params) go to the bottom of the first column.
    connected = {view.unit_of(graph, n) for u, v, k in graph.edges(data="kind") if k != "owns" for n in (u, v)}
    columns[0].sort(key=lambda c: c.unit not in connected)
    # The gap before a column is wide enough for the widest label of an edge entering it, so each label
    # has a place right before its arrow head where no card is.
    label_room: dict[int, float] = collections.defaultdict(float)
    for _, v, data in graph.edges(data=True):
        label = view.edge_label(data) if data["kind"] != "owns" else ""
        if label:
            layer = layers[view.unit_of(graph, v)]
            label_room[layer] = max(label_room[layer], _label_width(label) + _ARROW + 4 * _CLEARANCE)
    x = 0.0
    for i, column in enumerate(columns):
        if i:
            x += max(_COL_GAP, label_room[i])
        width = max((c.width for c in column), default=0.0)
        for card in column:
            card.x = x
        x += width
    _stack(columns)
    incoming: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)  # unit -> (source node, source unit)
    for u, v, kind in graph.edges(data="kind"):
        if kind != "owns":
            incoming[view.unit_of(graph, v)].append((u, view.unit_of(graph, u)))
    outgoing: dict[str, list[str]] = collections.defaultdict(list)
    for u, v, kind in graph.edges(data="kind"):
        if kind != "owns":
            outgoing[view.unit_of(graph, u)].append(view.unit_of(graph, v))
    for sweep in range(6):  # barycenter ordering: each card near what it is wired to
        forward = sweep % 2 == 0
        for column in columns[1:] if forward else list(reversed(columns[:-1])):
            def key(card: _Card, forward: bool = forward) -> float:
                if forward:
                    ys = [cards[su].row_y(src) for src, su in incoming[card.unit] if su in cards and su != card.unit]
                else:
                    ys = [cards[t].center_y for t in outgoing[card.unit] if t in cards and t != card.unit]
                return sum(ys) / len(ys) if ys else card.center_y

            column.sort(key=key)
            _stack([column])
    _center(columns)
    return cards, columns


def _object_order(graph: nx.MultiDiGraph, node: str) -> tuple[int, str]:
    """Rows in the order an engine sets its objects, then by name."""
    order = ("n_run_started", "n_epoch_started", "batch", "n_iteration_started", "output",
             "n_samples", "n_iteration_completed", "n_epoch_completed", "n_run_completed", "value")
    name = graph.nodes[node]["name"]
    return (order.index(name) if name in order else len(order), name)


def _stack(columns: list[list[_Card]]) -> None:
    for column in columns:
        y = 0.0
        for card in column:
            card.y = y
            y += card.height + _CARD_GAP


def _center(columns: list[list[_Card]]) -> None:
    heights = [sum(c.height for c in col) + _CARD_GAP * max(len(col) - 1, 0) for col in columns]
    tallest = max(heights, default=0.0)
    for column, height in zip(columns, heights, strict=True):
        offset = (tallest - height) / 2
        for card in column:
            card.y += offset


def draw(graph: nx.MultiDiGraph, path: str | os.PathLike[str] | None, *, values: bool, dpi: int) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    from matplotlib.path import Path

    cards, _ = _layout(graph, values)
    width = max((c.x + c.width for c in cards.values()), default=100.0)
    height = max((c.y + c.height for c in cards.values()), default=40.0)
    margin = 20.0
    fig_w, fig_h = (width + 2 * margin) / 72.0, (height + 2 * margin) / 72.0
    figure = Figure(figsize=(max(fig_w, 4.0), max(fig_h, 2.0)))
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(-margin, max(width + margin, 4.0 * 72 - margin))
    ax.set_ylim(max(height + margin, 2.0 * 72 - margin), -margin)  # y grows downwards
    ax.axis("off")
    text_style: dict[str, Any] = {"fontfamily": _FONT, "fontsize": _FONT_SIZE, "va": "center"}

    for card in cards.values():
        box_style = "round,pad=0,rounding_size=4"
        ax.add_patch(FancyBboxPatch((card.x, card.y), card.width, card.height, boxstyle=box_style,
                                    facecolor="white", edgecolor=card.color, linewidth=1.3, zorder=2))
        ax.add_patch(FancyBboxPatch((card.x, card.y), card.width, _HEADER_H, boxstyle=box_style,
                                    facecolor=card.color, edgecolor=card.color, linewidth=1.3, zorder=3))
        ax.text(card.x + _PAD, card.y + _HEADER_H / 2, card.title, color="white", fontweight="bold",
                zorder=4, gid=f"unit:{card.unit}", **text_style)
        for obj, text in card.rows:
            ax.text(card.x + _PAD, card.row_y(obj), text, color="#222222", zorder=4, gid=f"object:{obj}",
                    **text_style)

    # Spread the edges entering a card along its left side, in the order of their sources.
    entering: dict[str, list[tuple[str, str, dict[str, Any]]]] = collections.defaultdict(list)
    for u, v, data in graph.edges(data=True):
        if data["kind"] == "owns":
            continue
        entering[view.unit_of(graph, v)].append((u, v, data))
    labelled: list[tuple[list[tuple[float, float]], str, str, dict[str, Any]]] = []  # curve, source, target, data
    for unit, edges in entering.items():
        target = cards[unit]
        into_card = [e for e in edges if graph.nodes[e[1]]["kind"] != "object" or e[1] == unit]
        into_rows = [e for e in edges if e not in into_card]
        into_card.sort(key=lambda e: _source_point(cards, graph, e[0])[1])
        n = len(into_card)
        top, bottom = target.y + 3.0, target.y + min(target.height, _HEADER_H + 2 * _ROW_H) - 3.0
        for i, (u, _, data) in enumerate(into_card):
            y = top + (bottom - top) * (i + 1) / (n + 1)
            curve = _edge(ax, _source_point(cards, graph, u), (target.x, y), data, Path, FancyArrowPatch)
            labelled.append((curve, u, unit, data))
        for u, v, data in into_rows:
            curve = _edge(ax, _source_point(cards, graph, u), (target.x, target.row_y(v)), data, Path,
                          FancyArrowPatch)
            labelled.append((curve, u, v, data))
    _label_edges(ax, cards, labelled)

    kinds = [k for k in view.EDGE_STYLE if k != "owns" and any(d == k for _, _, d in graph.edges(data="kind"))]
    handles: list[Any] = [
        Line2D([], [], color=view.EDGE_STYLE[k][0], linestyle=view.EDGE_STYLE[k][1], linewidth=view.EDGE_STYLE[k][2],
               label=k.replace("_", " "))
        for k in kinds
    ]
    shown = sorted({(view.legend_name(graph.nodes[c.unit]), c.color) for c in cards.values()})
    handles += [Patch(facecolor=color, edgecolor=color, label=name) for name, color in shown]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 0.0), ncol=min(len(handles), 6),
                  frameon=False, prop={"family": _FONT, "size": _FONT_SIZE})
    if path is not None:
        path = os.fspath(path)
        buffer = io.BytesIO()  # rendered whole first, then written atomically
        fmt = os.path.splitext(path)[1].lstrip(".").lower() or None
        figure.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight", facecolor="white")
        view.write_atomic(path, buffer.getvalue())
    return figure


def _source_point(cards: dict[str, _Card], graph: nx.MultiDiGraph, node: str) -> tuple[float, float]:
    card = cards[view.unit_of(graph, node)]
    return card.x + card.width, card.row_y(node)


def _edge(ax: Any, start: tuple[float, float], end: tuple[float, float], data: dict[str, Any],
          Path: Any, FancyArrowPatch: Any) -> list[tuple[float, float]]:
    """Draw one edge as a cubic Bezier curve and return its four control points."""
    color, style, width = view.EDGE_STYLE[data["kind"]]
    (x1, y1), (x2, y2) = start, end
    reach = max(40.0, abs(x2 - x1) * 0.45)
    if x2 <= x1:  # a backward edge: loop out to the right and back in from the left
        reach = 60.0 + (x1 - x2) * 0.25
    vertices = [(x1, y1), (x1 + reach, y1), (x2 - reach, y2), (x2, y2)]
    path = Path(vertices, [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4])
    ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=9, color=color, linewidth=width,
                                 linestyle=style, zorder=1, shrinkA=0, shrinkB=0))
    return vertices


def _label_width(label: str) -> float:
    return len(label) * _LABEL_CHAR_W + 3.0


def _bezier(curve: list[tuple[float, float]], t: float) -> tuple[float, float]:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = curve
    a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
    return a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3


def _overlaps(box: Box, other: Box) -> bool:
    return (box[0] < other[2] + _CLEARANCE and other[0] < box[2] + _CLEARANCE
            and box[1] < other[3] + _CLEARANCE and other[1] < box[3] + _CLEARANCE)


def _label_edges(ax: Any, cards: dict[str, _Card],
                 labelled: list[tuple[list[tuple[float, float]], str, str, dict[str, Any]]]) -> None:
    """Write each edge's label where it covers no card and no other label.

    A label at a fixed point of a long edge lands on the cards the edge passes
    behind, hiding their names. Places centred on the curve are tried from the
    arrow head backwards, and the first clear of every card and of every label
    placed before wins. When none is, the label goes just before its arrow head,
    in the gap before the target column, which the layout keeps wide enough and
    free of cards: it may cover another label there, never a card.
    """
    # A card's box reaches left over the arrow heads entering it, so no label hides one.
    cards_boxes: list[Box] = [(c.x - _ARROW, c.y, c.x + c.width, c.y + c.height) for c in cards.values()]
    placed: list[Box] = []
    seen: collections.Counter[str] = collections.Counter()
    for curve, source, target, data in sorted(labelled, key=lambda e: (e[0][3][0], e[0][3][1], e[1])):
        label = view.edge_label(data)
        if not label:
            continue
        w, h = _label_width(label), _LABEL_H
        x_end, y_end = curve[3]
        fallback: Box = (x_end - _ARROW - w, y_end - h / 2, x_end - _ARROW, y_end + h / 2)
        candidates = []
        for step in range(49):  # centred on the curve, t from 0.97 down to 0.25
            cx, cy = _bezier(curve, 0.97 - step * 0.015)
            candidates.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        candidates.append(fallback)
        box = next(
            (b for b in candidates if not any(_overlaps(b, o) for o in cards_boxes)
             and not any(_overlaps(b, o) for o in placed)),
            fallback,
        )
        placed.append(box)
        gid = f"edge:{source}->{target}:{data['kind']}"
        seen[gid] += 1
        if seen[gid] > 1:
            gid += f"#{seen[gid]}"
        color = view.EDGE_STYLE[data["kind"]][0]
        ax.text((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, label, fontfamily=_FONT, fontsize=_LABEL_SIZE,
                color=color, ha="center", va="center", zorder=5, gid=gid,
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
