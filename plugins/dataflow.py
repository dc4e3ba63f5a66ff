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
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import networkx as nx

from statefire.frame import Feature, FilteredRef, Ref, State, summarize
from statefire.frame.state import Container

from . import _dataflow_draw as _draw
from . import _dataflow_text as _text
from .trace import function_label as _function_label

if TYPE_CHECKING:
    from .trace import EventTrace

__all__ = ["EDGE_KINDS", "FLOW_KINDS", "DataFlowGraph"]

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
            fired = handle.ref
            if fired is None:
                continue
            target = self._callback_node(handle)
            if target is None:
                continue
            if isinstance(fired.owner, Container):
                self._add_container(fired.owner)
            kind = "runs_on" if _is_run_on(handle) else "triggers"
            graph.add_edge(
                fired.path,
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
        if isinstance(thing, (Ref, FilteredRef, Feature, Container)):
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
            _text.write_text(path, self.to_dot(full=full))
        elif ext in (".mmd", ".mermaid"):
            _text.write_text(path, self.to_mermaid(full=full))
        elif ext == ".graphml":
            _text.write_graphml(path, self.graph)
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
        return _text.to_mermaid(self._shown(full))

    def to_dot(self, *, full: bool = False) -> str:
        """The graph in Graphviz DOT, one cluster per feature, left to right."""
        return _text.to_dot(self._shown(full))

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
        return _draw.draw(self._shown(full), path, values=values, dpi=dpi)

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
