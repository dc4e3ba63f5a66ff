"""The data-flow graph of a State: which object fires whom, who reads what.

`DataFlowGraph(state)` reads the live wiring (features, their state objects,
the attached callbacks and the refs features hold) into a
`networkx.MultiDiGraph`, answers the questions a user asks at a breakpoint
(`who_triggers`, `who_reads`, `downstream`, `upstream`) and exports the
graph as a picture (PNG/SVG, drawn with matplotlib), DOT, GraphML or Mermaid.
"""

from __future__ import annotations

import collections
import io
import os
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import networkx as nx

from statefire.frame import Feature, FilteredRef, Ref, State
from statefire.frame import summarize
from statefire.frame.state import Container

from .trace import function_label as _function_label

if TYPE_CHECKING:
    from .trace import EventTrace

__all__ = ["DataFlowGraph", "EDGE_KINDS", "FLOW_KINDS"]

#: Every edge kind, in the order a legend lists them.
EDGE_KINDS = ("owns", "triggers", "runs_on", "reads", "sets")

#: The kinds along which an effect travels: what `downstream` / `upstream` follow.
FLOW_KINDS = frozenset({"owns", "triggers", "runs_on", "sets"})

_FUNCTION_PREFIX = "fn:"

#: Objects drawings always show: what metrics and output handlers produce.
_PRODUCTS = ("value", "output")


class DataFlowGraph:
    """The wiring of a State as a graph: who fires whom, who reads what.

    Nodes (attribute `kind`):

    - `"feature"`: every feature, id its path (`"engines.trainer"`), with
      `category` and `cls`;
    - `"container"`: a category container (`"metrics"`) whose `added` /
      `removed` objects have callbacks;
    - `"object"`: a state object, id its path
      (`"engines.trainer.n_samples"`), with `owner`, `name`, `cls`, `value`
      (a summary) and `doc`;
    - `"function"`: a callback that belongs to no feature (a function, a
      lambda, a method of a plain object), id `"fn:<name>"`.

    Edges (attribute `kind`) point the way effects flow:

    - `owns`: feature -> each of its state objects (running it may set them);
    - `triggers`: state object -> the feature or function whose callback it
      fires (attributes `callback`, `filter`, `priority`);
    - `runs_on`: state object -> the engine that runs whenever it fires;
    - `reads`: state object -> a feature holding a ref to it (attribute
      `attribute`, the name it is held under);
    - `sets`: feature or function -> a state object it was seen setting
      (attribute `count`), only when built with `trace=` from an `EventTrace`.

    The graph is a snapshot of the wiring when it is built; build it again
    after attaching or creating more.

    Args:
        state: the State to read; the current one by default.
        trace: an `EventTrace` of a run, to add the `sets` edges it observed.

    Example:
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, AverageOutput
        >>> with State() as s:
        ...     trainer = Engine("trainer", lambda e, b: b, data=[1.0, 2.0])
        ...     evaluator = Engine("evaluator", lambda e, b: b, data=[3.0],
        ...                        run_on=trainer.n_epoch_completed_ref)
        ...     loss = AverageOutput(engine=evaluator)
        ...     flow = DataFlowGraph(s)
        >>> flow.who_triggers(trainer.n_epoch_completed_ref)
        ['engines.evaluator']
        >>> flow.who_reads(evaluator.output_ref)
        ['metrics.evaluator_average_output']
        >>> "metrics.evaluator_average_output.value" in flow.downstream(trainer.n_epoch_completed_ref)
        True
    """

    def __init__(self, state: State | None = None, *, trace: EventTrace | None = None) -> None:
        if state is None:
            state = State.current()
        if not isinstance(state, State):
            raise TypeError(f"DataFlowGraph needs a State, got {state!r}")
        self.state = state
        self.graph: nx.MultiDiGraph = nx.MultiDiGraph()
        self._functions: dict[int, str] = {}  # id(callable) -> node id
        self._build()
        if trace is not None:
            self._add_sets(trace)

    # -- building -----------------------------------------------------------
    def _build(self) -> None:
        graph = self.graph
        for feature in self.state.features:
            graph.add_node(
                feature.path,
                kind="feature",
                category=feature.category,
                cls=type(feature).__name__,
                label=feature.name,
            )
            for own in feature.refs.values():
                self._add_object(own)
                graph.add_edge(feature.path, own.path, kind="owns")
        for container in self.state.containers:
            handles = [h for r in container.refs.values() for h in r.handles]
            if handles:
                self._add_container(container)
        for handle in self.state.handles:
            ref = handle.ref
            if ref is None:
                continue
            target = self._callback_node(handle)
            if target is None:
                continue
            if isinstance(ref.owner, Container):
                self._add_container(ref.owner)
            kind = "runs_on" if _is_run_on(handle) else "triggers"
            graph.add_edge(
                ref.path,
                target,
                kind=kind,
                callback=handle.name,
                filter="" if handle.filter.empty else repr(handle.filter),
                priority=handle.priority,
            )
        for feature in self.state.features:
            for attribute, ref in _held_refs(feature):
                if ref.path not in graph or graph.nodes[ref.path].get("kind") != "object":
                    continue  # a ref into another State, or to a removed feature
                if attribute == "run_on" and self._has_edge(ref.path, feature.path, "runs_on"):
                    continue  # the runs_on edge already says it
                graph.add_edge(ref.path, feature.path, kind="reads", attribute=attribute)

    def _add_object(self, ref: Ref) -> None:
        descriptor = ref.descriptor
        owner = ref.owner
        self.graph.add_node(
            ref.path,
            kind="object",
            owner=owner.path,
            name=ref.name,
            cls=type(descriptor).__name__,
            value=_safe_summary(owner.__dict__.get(ref.name)),
            doc=descriptor.doc,
            label=ref.name,
        )

    def _add_container(self, container: Container) -> None:
        if container.path in self.graph:
            return
        self.graph.add_node(
            container.path, kind="container", category=container.category, cls="Container",
            label=container.category,
        )
        for ref in container.refs.values():
            self._add_object(ref)
            self.graph.add_edge(container.path, ref.path, kind="owns")

    def _callback_node(self, handle: Any) -> str | None:
        owner = handle.callback_owner
        if isinstance(owner, Feature) and owner.path in self.graph and owner.state is self.state:
            return owner.path
        if isinstance(owner, Container) and owner.state is self.state:
            self._add_container(owner)
            return owner.path
        callback = handle.callback
        if callback is None:  # a weakly held method whose object died
            return None
        return self._function_node(callback, handle.name)

    def _function_node(self, callback: Any, name: str) -> str:
        key = id(getattr(callback, "__func__", callback))
        node = self._functions.get(key)
        if node is not None:
            return node
        label = _function_label(callback, name)
        node = _FUNCTION_PREFIX + label
        n = 2
        while node in self.graph:
            node = f"{_FUNCTION_PREFIX}{label} #{n}"
            n += 1
        self._functions[key] = node
        self.graph.add_node(node, kind="function", label=node[len(_FUNCTION_PREFIX):],
                            module=getattr(callback, "__module__", "") or "")
        return node

    def _add_sets(self, trace: EventTrace) -> None:
        for setter, path, count in trace.sets():
            if path not in self.graph:
                continue
            if setter.startswith(_FUNCTION_PREFIX) and setter not in self.graph:
                self.graph.add_node(setter, kind="function", label=setter[len(_FUNCTION_PREFIX):], module="")
            if setter not in self.graph:
                continue
            self.graph.add_edge(setter, path, kind="sets", count=count)

    def _has_edge(self, u: str, v: str, kind: str) -> bool:
        data = self.graph.get_edge_data(u, v) or {}
        return any(d.get("kind") == kind for d in data.values())

    # -- queries ------------------------------------------------------------
    def node(self, thing: Any) -> str:
        """The node id of a ref, filtered ref, feature, container or path string.

        Raises:
            KeyError: when the thing is not in the graph (the message names
                close node ids).
        """
        if isinstance(thing, (Ref, FilteredRef)):
            node = thing.path
        elif isinstance(thing, (Feature, Container)):
            node = thing.path
        elif isinstance(thing, str):
            node = thing
            if node not in self.graph:
                node = self._resolve_short(thing)
        elif callable(thing):
            node = self._functions.get(id(getattr(thing, "__func__", thing)), repr(thing))
        else:
            raise TypeError(
                f"expected a ref, a feature or a node path like 'engines.trainer.n_samples', got {thing!r}"
            )
        if node not in self.graph:
            from statefire.frame import did_you_mean

            raise KeyError(f"{node!r} is not in the data-flow graph; " + did_you_mean(node, list(self.graph)))
        return node

    def _resolve_short(self, text: str) -> str:
        """`"trainer.n_samples"` or `"trainer"`: a path without its category."""
        matches = [n for n in self.graph if isinstance(n, str) and n.split(".", 1)[-1] == text]
        return matches[0] if len(matches) == 1 else text

    def who_triggers(self, ref: Any) -> list[str]:
        """The features and functions whose callbacks `ref` fires (engines it runs included)."""
        node = self.node(ref)
        return _unique(v for _, v, d in self.graph.out_edges(node, data=True) if d["kind"] in ("triggers", "runs_on"))

    def who_reads(self, ref: Any) -> list[str]:
        """The features holding a ref to `ref`'s object (a metric's `input_ref`, a chart's `x_ref`)."""
        node = self.node(ref)
        return _unique(v for _, v, d in self.graph.out_edges(node, data=True) if d["kind"] == "reads")

    def who_sets(self, ref: Any) -> list[str]:
        """The features and functions that may set `ref`: its owner, and setters seen in a trace."""
        node = self.node(ref)
        return _unique(u for u, _, d in self.graph.in_edges(node, data=True) if d["kind"] in ("owns", "sets"))

    def downstream(self, ref: Any) -> list[str]:
        """Everything that can fire when `ref` is set, nearest first.

        Follows `triggers` and `runs_on` to features and functions, and
        `owns` and `sets` from them to the objects they may set; a `reads`
        edge fires nothing, so it is not followed.
        """
        return self._walk(self.node(ref), forward=True)

    def upstream(self, ref: Any) -> list[str]:
        """Everything whose setting can lead to `ref` being set, nearest first."""
        return self._walk(self.node(ref), forward=False)

    def _walk(self, start: str, forward: bool) -> list[str]:
        seen = {start}
        order: list[str] = []
        queue = collections.deque([start])
        edges = self.graph.out_edges if forward else self.graph.in_edges
        while queue:
            node = queue.popleft()
            for u, v, kind in edges(node, data="kind"):
                nxt = v if forward else u
                if kind in FLOW_KINDS and nxt not in seen:
                    seen.add(nxt)
                    order.append(nxt)
                    queue.append(nxt)
        return order

    def edges(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        """`(source, target, kind)` of every edge, or of one kind, sorted."""
        if kind is not None and kind not in EDGE_KINDS:
            raise ValueError(f"kind must be one of {EDGE_KINDS}, got {kind!r}")
        return sorted(
            (u, v, k) for u, v, k in self.graph.edges(data="kind") if kind is None or k == kind
        )

    def __repr__(self) -> str:
        counts = collections.Counter(k for _, _, k in self.graph.edges(data="kind"))
        kinds = ", ".join(f"{counts[k]} {k}" for k in EDGE_KINDS if counts[k])
        return f"<DataFlowGraph {self.graph.number_of_nodes()} nodes; {kinds or 'no edges'}>"

    # -- views ----------------------------------------------------------------
    def _shown(self, full: bool) -> nx.MultiDiGraph:
        """The graph drawings show.

        Every feature and function, the objects that take part in the flow
        (or, with `full`, every object), and each feature's `value` and
        `output` (what a metric or an output handler produces). A `reads`
        edge alongside a `triggers` or `runs_on` edge between the same two
        nodes is left out: one arrow says it.
        """
        graph = self.graph
        redundant = {
            (u, v, key) for u, v, key, kind in graph.edges(keys=True, data="kind")
            if (kind == "reads" and (self._has_edge(u, v, "triggers") or self._has_edge(u, v, "runs_on")))
            or (kind == "sets" and graph.nodes[v].get("owner") == u)  # `owns` says it
        }
        flowing = {
            n for u, v, key, kind in graph.edges(keys=True, data="kind")
            if kind != "owns" and (u, v, key) not in redundant for n in (u, v)
        }
        keep = [
            n for n, d in graph.nodes(data=True)
            if full or d["kind"] != "object" or d["name"] in _PRODUCTS or n in flowing
        ]
        shown = nx.MultiDiGraph(graph.subgraph(keep))
        shown.remove_edges_from([e for e in redundant if shown.has_edge(*e)])
        return shown

    # -- export ---------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, full: bool = False, **options: Any) -> None:
        """Write the graph, in the format its extension names.

        `.png` / `.svg` / `.pdf`: a picture drawn with matplotlib (no system
        Graphviz), layered left to right; `.dot`, `.mmd` (Mermaid), `.graphml`.

        Args:
            path: where to write.
            full: show every state object, not only those that take part in
                the flow (GraphML always holds the whole graph).
            options: for pictures, `values=False` hides current values and
                `dpi=` sets the resolution of a PNG.

        Raises:
            ValueError: for an extension it cannot write.
        """
        path = os.fspath(path)
        ext = os.path.splitext(path)[1].lower()
        if ext in (".png", ".svg", ".pdf"):
            self.draw(path, full=full, **options)
        elif ext in (".dot", ".gv"):
            _write_text(path, self.to_dot(full=full))
        elif ext in (".mmd", ".mermaid"):
            _write_text(path, self.to_mermaid(full=full))
        elif ext == ".graphml":
            nx.write_graphml(_graphml_ready(self.graph), path)
        else:
            raise ValueError(
                f"cannot save a data-flow graph as {ext or 'a file without extension'!r} ({path}); "
                "use .png, .svg, .pdf, .dot, .mmd or .graphml"
            )

    def to_mermaid(self, *, full: bool = False) -> str:
        """A Mermaid flowchart (paste it into Markdown inside a ```mermaid block).

        Each feature is a box holding its state objects; an edge leaves the
        object that fires and enters the feature or function it fires.
        """
        return _to_mermaid(self._shown(full))

    def to_dot(self, *, full: bool = False) -> str:
        """The graph in Graphviz DOT, one cluster per feature, left to right."""
        return _to_dot(self._shown(full))

    def draw(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        full: bool = False,
        values: bool = True,
        dpi: int = 150,
    ) -> Any:
        """Draw the graph with matplotlib; save it to `path` if given.

        Returns:
            The matplotlib `Figure` (made without pyplot, so nothing global stays open).
        """
        return _draw(self._shown(full), path, values=values, dpi=dpi)

    def _repr_png_(self) -> bytes:
        """The picture, for Jupyter."""
        buffer = io.BytesIO()
        self.draw().savefig(buffer, format="png", dpi=100, bbox_inches="tight", facecolor="white")
        return buffer.getvalue()


# -- helpers: reading the state ---------------------------------------------------


def _is_run_on(handle: Any) -> bool:
    """The callback an engine attaches to follow a ref (`run_on=`)."""
    return getattr(handle, "kind", None) == "run_on"


def _held_refs(feature: Feature) -> Iterator[tuple[str, Ref]]:
    """`(attribute, ref)` for every ref a feature holds, also inside lists, tuples and dicts."""
    objects = feature.state_objects()
    for attribute, value in vars(feature).items():
        if attribute in objects:
            continue
        yield from ((attribute, r) for r in _refs_in(value))


def _refs_in(value: Any, depth: int = 0) -> Iterator[Ref]:
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, FilteredRef):
        yield value.ref
    elif depth < 2 and isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _refs_in(item, depth + 1)
    elif depth < 2 and isinstance(value, dict):
        for item in value.values():
            yield from _refs_in(item, depth + 1)


def _safe_summary(value: Any) -> str:
    try:
        return summarize(value)
    except Exception:  # a summary must never break inspection
        return f"<{type(value).__name__}>"


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)


def _graphml_ready(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy whose attributes GraphML can hold (no None values)."""
    clean = nx.MultiDiGraph()
    for node, data in graph.nodes(data=True):
        clean.add_node(node, **{k: v for k, v in data.items() if v is not None})
    for u, v, data in graph.edges(data=True):
        clean.add_edge(u, v, **{k: v2 for k, v2 in data.items() if v2 is not None})
    return clean


# -- grouping: units (features, containers, functions) and their objects ---------


def _units(graph: nx.MultiDiGraph) -> tuple[list[str], dict[str, list[str]]]:
    """The units to draw and, for each, its objects shown."""
    units = [n for n, d in graph.nodes(data=True) if d["kind"] != "object"]
    objects: dict[str, list[str]] = {u: [] for u in units}
    for node, data in graph.nodes(data=True):
        if data["kind"] == "object":
            owner = data["owner"]
            if owner not in objects:  # the owner is hidden: show the object on its own
                units.append(node)
                objects[node] = []
            else:
                objects[owner].append(node)
    return units, objects


def _unit_of(graph: nx.MultiDiGraph, node: str) -> str:
    data = graph.nodes[node]
    if data["kind"] == "object" and data["owner"] in graph:
        return data["owner"]
    return node


# -- Mermaid and DOT ----------------------------------------------------------------

_CATEGORY_COLORS = {
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
_OTHER_COLOR = "#6B8E23"
_FUNCTION_COLOR = "#555555"
_CONTAINER_COLOR = "#999999"

_EDGE_STYLE: dict[str, tuple[str, Any, float]] = {  # kind: (color, linestyle, width)
    "owns": ("#BBBBBB", ":", 0.8),
    "triggers": ("#333333", "-", 1.0),
    "runs_on": ("#D62728", "-", 2.2),
    "reads": ("#1F77B4", "--", 1.0),
    "sets": ("#2CA02C", "-.", 1.4),
}


def _color(data: dict[str, Any]) -> str:
    if data["kind"] == "function":
        return _FUNCTION_COLOR
    if data["kind"] == "container":
        return _CONTAINER_COLOR
    return _CATEGORY_COLORS.get(data.get("category", ""), _OTHER_COLOR)


def _unit_title(graph: nx.MultiDiGraph, unit: str) -> str:
    data = graph.nodes[unit]
    if data["kind"] == "feature":
        return f"{data['label']} ({data['cls']})"
    if data["kind"] == "container":
        return f"{data['label']} (container)"
    if data["kind"] == "function":
        return f"ƒ {data['label']}"
    return unit


def _edge_label(data: dict[str, Any]) -> str:
    kind = data["kind"]
    flt = data.get("filter") or ""
    if kind == "runs_on":
        return f"runs on ({flt})" if flt else "runs on"
    if kind == "reads":
        return f"read as {data.get('attribute', '')}"
    if kind == "sets":
        return "sets"
    return flt


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


def _to_mermaid(graph: nx.MultiDiGraph) -> str:
    units, objects = _units(graph)
    ids: dict[str, str] = {}
    lines = ["flowchart LR"]
    classes: dict[str, list[str]] = collections.defaultdict(list)
    for unit in sorted(units, key=lambda u: (graph.nodes[u].get("category", "~"), u)):
        title = _mermaid_text(_unit_title(graph, unit))
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
            lines.append(f"  style {uid} fill:#f7f7f7,stroke:{_color(graph.nodes[unit])},stroke-width:2px")
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
        label = _edge_label(data)
        arrow = arrows[kind]
        text = f"|{_mermaid_text(label)}|" if label else ""
        lines.append(f"  {_mermaid_id(u, ids)} {arrow}{text} {_mermaid_id(v, ids)}")
    lines.append("  classDef object fill:#ffffff,stroke:#888888")
    lines.append(f"  classDef function fill:#eeeeee,stroke:{_FUNCTION_COLOR}")
    for category, color in _CATEGORY_COLORS.items():
        if classes.get(category):
            lines.append(f"  classDef {category} fill:{color},color:#ffffff,stroke:{color}")
    for name, members in classes.items():
        if members and (name in _CATEGORY_COLORS or name in ("object", "function")):
            lines.append(f"  class {','.join(members)} {name}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: Any) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _to_dot(graph: nx.MultiDiGraph) -> str:
    units, objects = _units(graph)
    lines = [
        "digraph dataflow {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for i, unit in enumerate(sorted(units)):
        data = graph.nodes[unit]
        color = _color(data)
        shape = {"function": "hexagon", "container": "folder"}.get(data["kind"], "box")
        unit_line = (
            f"{_dot_quote(unit)} [label={_dot_quote(_unit_title(graph, unit))}, shape={shape}, "
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
        color, style, width = _EDGE_STYLE[data["kind"]]
        dot_style = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dashed"}[style]
        attrs = [f"kind={_dot_quote(data['kind'])}", f"color={_dot_quote(color)}",
                 f"style={dot_style}", f"penwidth={width}"]
        label = _edge_label(data)
        if label:
            attrs.append(f"label={_dot_quote(label)}")
        lines.append(f"  {_dot_quote(u)} -> {_dot_quote(v)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- the picture -------------------------------------------------------------------

_FONT = "DejaVu Sans Mono"
_FONT_SIZE = 8.0
_CHAR_W = 0.602 * _FONT_SIZE  # DejaVu Sans Mono advance width, in points
_HEADER_H = 17.0
_ROW_H = 13.0
_PAD = 6.0
_COL_GAP = 110.0
_CARD_GAP = 16.0
_MAX_ROW_CHARS = 44


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
        a, b = _unit_of(graph, u), _unit_of(graph, v)
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
    units, objects = _units(graph)
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
        cards[unit] = _Card(unit, _unit_title(graph, unit), rows, _color(data), data["kind"])
    layers = _layers(graph, units)
    n_layers = 1 + max(layers.values(), default=0)
    columns: list[list[_Card]] = [[] for _ in range(n_layers)]
    for unit in sorted(units, key=lambda u: (graph.nodes[u].get("category", "~"), u)):
        columns[layers[unit]].append(cards[unit])
    # Cards with no edge at all (models, params) go to the bottom of the first column.
    connected = {_unit_of(graph, n) for u, v, k in graph.edges(data="kind") if k != "owns" for n in (u, v)}
    columns[0].sort(key=lambda c: c.unit not in connected)
    x = 0.0
    for column in columns:
        width = max((c.width for c in column), default=0.0)
        for card in column:
            card.x = x
        x += width + _COL_GAP
    _stack(columns)
    incoming: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)  # unit -> (source node, source unit)
    for u, v, kind in graph.edges(data="kind"):
        if kind != "owns":
            incoming[_unit_of(graph, v)].append((u, _unit_of(graph, u)))
    outgoing: dict[str, list[str]] = collections.defaultdict(list)
    for u, v, kind in graph.edges(data="kind"):
        if kind != "owns":
            outgoing[_unit_of(graph, u)].append(_unit_of(graph, v))
    for sweep in range(6):  # barycenter ordering: each card near what it is wired to
        forward = sweep % 2 == 0
        for column in columns[1:] if forward else list(reversed(columns[:-1])):
            def key(card: _Card) -> float:
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
    for column, height in zip(columns, heights):
        offset = (tallest - height) / 2
        for card in column:
            card.y += offset


def _draw(graph: nx.MultiDiGraph, path: str | os.PathLike[str] | None, *, values: bool, dpi: int) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
    from matplotlib.path import Path

    cards, columns = _layout(graph, values)
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
                zorder=4, **text_style)
        for obj, text in card.rows:
            ax.text(card.x + _PAD, card.row_y(obj), text, color="#222222", zorder=4, **text_style)

    # Spread the edges entering a card along its left side, in the order of their sources.
    entering: dict[str, list[tuple[str, str, dict[str, Any]]]] = collections.defaultdict(list)
    for u, v, data in graph.edges(data=True):
        if data["kind"] == "owns":
            continue
        entering[_unit_of(graph, v)].append((u, v, data))
    for unit, edges in entering.items():
        target = cards[unit]
        into_card = [e for e in edges if graph.nodes[e[1]]["kind"] != "object" or e[1] == unit]
        into_rows = [e for e in edges if e not in into_card]
        into_card.sort(key=lambda e: _source_point(cards, graph, e[0])[1])
        n = len(into_card)
        top, bottom = target.y + 3.0, target.y + min(target.height, _HEADER_H + 2 * _ROW_H) - 3.0
        for i, (u, _, data) in enumerate(into_card):
            y = top + (bottom - top) * (i + 1) / (n + 1)
            _edge(ax, _source_point(cards, graph, u), (target.x, y), data, Path, FancyArrowPatch)
        for u, v, data in into_rows:
            _edge(ax, _source_point(cards, graph, u), (target.x, target.row_y(v)), data, Path, FancyArrowPatch)

    kinds = [k for k in EDGE_KINDS if k != "owns" and any(d == k for _, _, d in graph.edges(data="kind"))]
    handles: list[Any] = [
        Line2D([], [], color=_EDGE_STYLE[k][0], linestyle=_EDGE_STYLE[k][1], linewidth=_EDGE_STYLE[k][2],
               label=k.replace("_", " "))
        for k in kinds
    ]
    shown = sorted({(_legend_name(graph.nodes[c.unit]), c.color) for c in cards.values()})
    handles += [Patch(facecolor=color, edgecolor=color, label=name) for name, color in shown]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 0.0), ncol=min(len(handles), 6),
                  frameon=False, prop={"family": _FONT, "size": _FONT_SIZE})
    if path is not None:
        figure.savefig(os.fspath(path), dpi=dpi, bbox_inches="tight", facecolor="white")
    return figure


def _legend_name(data: dict[str, Any]) -> str:
    if data["kind"] == "feature":
        return data["category"]
    return {"container": "containers", "function": "functions"}.get(data["kind"], data["kind"])


def _source_point(cards: dict[str, _Card], graph: nx.MultiDiGraph, node: str) -> tuple[float, float]:
    card = cards[_unit_of(graph, node)]
    return card.x + card.width, card.row_y(node)


def _edge(ax: Any, start: tuple[float, float], end: tuple[float, float], data: dict[str, Any],
          Path: Any, FancyArrowPatch: Any) -> None:
    color, style, width = _EDGE_STYLE[data["kind"]]
    (x1, y1), (x2, y2) = start, end
    reach = max(40.0, abs(x2 - x1) * 0.45)
    if x2 <= x1:  # a backward edge: loop out to the right and back in from the left
        reach = 60.0 + (x1 - x2) * 0.25
    vertices = [(x1, y1), (x1 + reach, y1), (x2 - reach, y2), (x2, y2)]
    path = Path(vertices, [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4])
    ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=9, color=color, linewidth=width,
                                 linestyle=style, zorder=1, shrinkA=0, shrinkB=0))
    label = _edge_label(data)
    if label:
        t = 0.78  # near the target, where edges have separated
        bx = (1 - t) ** 3 * x1 + 3 * (1 - t) ** 2 * t * (x1 + reach) + 3 * (1 - t) * t**2 * (x2 - reach) + t**3 * x2
        by = (1 - t) ** 3 * y1 + 3 * (1 - t) ** 2 * t * y1 + 3 * (1 - t) * t**2 * y2 + t**3 * y2
        ax.text(bx, by, label, fontfamily=_FONT, fontsize=_FONT_SIZE - 1.5, color=color, ha="center",
                va="center", zorder=5, bbox={"boxstyle": "round,pad=0.1", "facecolor": "white",
                                             "edgecolor": "none", "alpha": 0.85})
