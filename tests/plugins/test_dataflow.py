"""DataFlowGraph: the wiring of a three-engine state, edge by edge; queries; every export format."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

import networkx as nx
import pytest

from statefire.features import AverageOutput, Engine, OutputHandler
from statefire.frame import Feature, Params, State
from statefire.plugins import DataFlowGraph, EventTrace


class Watcher(Feature):
    """Holds refs without attaching anything: a pure reader."""

    category = "handlers"

    def __init__(self, refs, *, name=None):
        super().__init__(name=name)
        self.watched = list(refs)


@pytest.fixture
def three():
    """A trainer, two evaluators following its epochs (one every 2), metrics, an output handler,
    a lambda, `print` and a pure reader."""
    with State() as s:
        trainer = Engine("trainer", lambda e, b: b * 0.5, data=[1.0, 2.0, 3.0], n_epochs=2)
        AverageOutput(engine=trainer, name="train_loss")
        train_eval = Engine("train_evaluator", lambda e, b: b, data=[1.0, 2.0],
                            run_on=trainer.n_epoch_completed_ref)
        AverageOutput(engine=train_eval)
        val_eval = Engine("val_evaluator", lambda e, b: b, data=[4.0],
                          run_on=trainer.n_epoch_completed_ref(every=2))
        doubled = OutputHandler(val_eval.output_ref, lambda x: 2 * x, name="doubled")
        AverageOutput(engine=val_eval, input_ref=doubled.output_ref, name="val_doubled")
        seen = []
        callback = lambda value: seen.append(value)  # noqa: E731
        s.val_doubled.value_ref.attach(callback)
        trainer.n_iteration_completed_ref.attach(print, every=100)
        Watcher([trainer.n_samples_ref, s.val_doubled.value_ref], name="watcher")
        yield s, callback


def test_nodes_have_kinds_and_categories(three):
    """Features carry their category, objects their owner and class, callbacks without a feature are functions."""
    s, callback = three
    graph = DataFlowGraph(s).graph
    assert isinstance(graph, nx.MultiDiGraph)
    assert graph.nodes["engines.trainer"] == {
        "kind": "feature", "category": "engines", "cls": "Engine", "label": "trainer",
    }
    assert graph.nodes["metrics.val_doubled"]["category"] == "metrics"
    n_samples = graph.nodes["engines.trainer.n_samples"]
    assert (n_samples["kind"], n_samples["owner"], n_samples["cls"], n_samples["name"]) == (
        "object", "engines.trainer", "Counter", "n_samples")
    functions = sorted(n for n, d in graph.nodes(data=True) if d["kind"] == "function")
    line = callback.__code__.co_firstlineno
    assert functions == ["fn:print", f"fn:three.<locals>.<lambda> at test_dataflow.py:{line}"]


def test_three_engine_edges_edge_by_edge(three):
    """Every triggers / runs_on / reads edge of the three-engine state, with its filter and attribute."""
    s, callback = three
    flow = DataFlowGraph(s)
    lam = f"fn:three.<locals>.<lambda> at test_dataflow.py:{callback.__code__.co_firstlineno}"
    edges = {
        (u, v, d["kind"], d.get("filter", d.get("attribute")))
        for u, v, d in flow.graph.edges(data=True) if d["kind"] != "owns"
    }
    t, te, ve = "engines.trainer", "engines.train_evaluator", "engines.val_evaluator"
    expected = {
        # the trainer's metric
        (f"{t}.n_epoch_started", "metrics.train_loss", "triggers", ""),
        (f"{t}.output", "metrics.train_loss", "triggers", ""),
        (f"{t}.n_epoch_completed", "metrics.train_loss", "triggers", ""),
        (f"{t}.output", "metrics.train_loss", "reads", "input_ref"),
        # evaluators follow the trainer; the filter is on the edge
        (f"{t}.n_epoch_completed", te, "runs_on", ""),
        (f"{t}.n_epoch_completed", ve, "runs_on", "every=2"),
        (f"{t}.n_iteration_completed", "fn:print", "triggers", "every=100"),
        # the train evaluator's metric
        (f"{te}.n_epoch_started", "metrics.train_evaluator_average_output", "triggers", ""),
        (f"{te}.output", "metrics.train_evaluator_average_output", "triggers", ""),
        (f"{te}.n_epoch_completed", "metrics.train_evaluator_average_output", "triggers", ""),
        (f"{te}.output", "metrics.train_evaluator_average_output", "reads", "input_ref"),
        # the output handler and the metric on its output
        (f"{ve}.output", "output_handlers.doubled", "triggers", ""),
        (f"{ve}.output", "output_handlers.doubled", "reads", "input_ref"),
        (f"{ve}.n_epoch_started", "metrics.val_doubled", "triggers", ""),
        ("output_handlers.doubled.output", "metrics.val_doubled", "triggers", ""),
        (f"{ve}.n_epoch_completed", "metrics.val_doubled", "triggers", ""),
        ("output_handlers.doubled.output", "metrics.val_doubled", "reads", "input_ref"),
        # a lambda on the metric's value, and a reader holding a list of refs
        ("metrics.val_doubled.value", lam, "triggers", ""),
        (f"{t}.n_samples", "handlers.watcher", "reads", "watched"),
        ("metrics.val_doubled.value", "handlers.watcher", "reads", "watched"),
    }
    assert edges == expected


def test_every_feature_owns_each_of_its_objects(three):
    """`owns` goes from each feature to every one of its state objects, and nowhere else."""
    s, _ = three
    flow = DataFlowGraph(s)
    owns = {(u, v) for u, v, k in flow.graph.edges(data="kind") if k == "owns"}
    expected = {(f.path, r.path) for f in s.features for r in f.refs.values()}
    assert owns == expected


def test_engine_run_on_is_not_also_a_read(three):
    """The engine's `run_on` attribute is said by the runs_on edge alone."""
    s, _ = three
    flow = DataFlowGraph(s)
    assert flow.who_reads(s.trainer.n_epoch_completed_ref) == []


def test_queries(three):
    """who_triggers, who_reads, who_sets, downstream and upstream answer from the edges."""
    s, callback = three
    flow = DataFlowGraph(s)
    assert flow.who_triggers(s.trainer.n_epoch_completed_ref) == [
        "engines.train_evaluator", "engines.val_evaluator", "metrics.train_loss"]
    assert flow.who_reads(s.trainer.n_samples_ref) == ["handlers.watcher"]
    assert flow.who_sets(s.val_doubled.value_ref) == ["metrics.val_doubled"]
    down = flow.downstream(s.trainer.n_epoch_completed_ref)
    assert "metrics.val_doubled.value" in down
    assert any(n.startswith("fn:three.<locals>.<lambda>") for n in down)
    assert down.index("engines.val_evaluator") < down.index("output_handlers.doubled")  # nearest first
    # A read fires nothing: the watcher is never downstream, and print is on another object.
    assert "handlers.watcher" not in down and "fn:print" not in down
    assert flow.downstream(s.val_doubled.value_ref) == [
        f"fn:three.<locals>.<lambda> at test_dataflow.py:{callback.__code__.co_firstlineno}"]
    up = flow.upstream(s.val_doubled.value_ref)
    assert up[0] == "metrics.val_doubled"
    assert {"output_handlers.doubled", "engines.val_evaluator", "engines.trainer.n_epoch_completed",
            "engines.trainer"} <= set(up)
    assert "engines.train_evaluator" not in up


def test_queries_accept_features_filtered_refs_and_paths(three):
    """A query takes a ref, a filtered ref, a feature, a full or a short path."""
    s, _ = three
    flow = DataFlowGraph(s)
    ref = s.trainer.n_epoch_completed_ref
    expected = flow.who_triggers(ref)
    assert flow.who_triggers(ref(every=3)) == expected
    assert flow.who_triggers("engines.trainer.n_epoch_completed") == expected
    assert flow.who_triggers("trainer.n_epoch_completed") == expected
    assert flow.node(s.trainer) == flow.node("trainer") == "engines.trainer"


def test_unknown_node_names_close_ones(three):
    """A path not in the graph raises KeyError suggesting close paths; other types a TypeError."""
    s, _ = three
    flow = DataFlowGraph(s)
    with pytest.raises(KeyError, match="engines.trainer.n_samples"):
        flow.downstream("engines.trainer.n_sample")
    with pytest.raises(TypeError, match="expected a ref, a feature or a node path"):
        flow.who_reads(42)


def test_container_callbacks_become_container_nodes():
    """A callback on `state.metrics.added` shows the container as a node triggered-from."""
    with State() as s:
        engine = Engine("engine", lambda e, b: b, data=[1])
        seen = []
        s.metrics.added_ref.attach(seen.append)
        AverageOutput(engine=engine)
        flow = DataFlowGraph(s)
    assert flow.graph.nodes["metrics"]["kind"] == "container"
    assert ("metrics", "metrics.added", "owns") in flow.edges()
    assert flow.who_triggers(s.metrics.added_ref) == ["fn:list.append"]


def test_graph_is_a_snapshot(three):
    """Wiring added after the graph is built shows in a new graph, not the old one."""
    s, _ = three
    before = DataFlowGraph(s)
    s.trainer.n_samples_ref.attach(lambda: None)
    after = DataFlowGraph(s)
    assert len(after.edges("triggers")) == len(before.edges("triggers")) + 1


def test_traced_run_adds_sets_edges():
    """Built with a trace, the graph has a `sets` edge from each observed setter."""
    with State() as s:
        engine = Engine("engine", lambda e, b: b, data=[1.0, 2.0], n_epochs=2)
        hp = Params(name="hp", lr=1.0)

        def decay():
            hp.lr = hp.lr / 2

        engine.n_epoch_completed_ref.attach(decay)
        AverageOutput(engine=engine)
        with EventTrace(s) as trace:
            engine.run()
        flow = DataFlowGraph(s, trace=trace)
        untraced = DataFlowGraph(s)
    sets = {(u, v, d["count"]) for u, v, d in flow.graph.edges(data=True) if d["kind"] == "sets"}
    decay_node = "fn:test_traced_run_adds_sets_edges.<locals>.decay"
    assert (decay_node, "params.hp.lr", 2) in sets
    assert ("metrics.engine_average_output", "metrics.engine_average_output.value", 2) in sets
    assert untraced.edges("sets") == []
    assert decay_node in flow.who_sets(hp.lr_ref)
    assert "params.hp.lr" in flow.downstream(engine.n_epoch_completed_ref)
    # Drawings keep the foreign set and leave out the metric setting its own value.
    shown = {(u, v) for u, v, k in flow._shown(False).edges(data="kind") if k == "sets"}
    assert shown == {(decay_node, "params.hp.lr")}


# -- exports -------------------------------------------------------------------------

_MERMAID_LINE = re.compile(
    r"""^(?:flowchart\ LR
    |\ {2}subgraph\ (?P<sub>\w+)\["[^"]*"\]
    |\ {2}end
    |\ {2,4}(?P<node>\w+)(?:\("[^"]*"\)|\["[^"]*"\]|\{\{"[^"]*"\}\})
    |\ {2}(?P<src>\w+)\ (?:-->|==>|-\.->)(?:\|"[^"]*"\|)?\ (?P<dst>\w+)
    |\ {2}style\ (?P<styled>\w+)\ [\w:#,-]+
    |\ {2}classDef\ \w+\ [\w:#,-]+
    |\ {2}class\ (?P<classed>[\w,]+)\ \w+)$""",
    re.X,
)


def _parse_mermaid(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """A strict parser for the flowchart subset DataFlowGraph writes: every line must match,
    subgraphs must close, edges must join declared ids."""
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "flowchart LR"
    declared: set[str] = set()
    edges: list[tuple[str, str]] = []
    depth = 0
    for line in lines:
        match = _MERMAID_LINE.match(line)
        assert match, f"not valid in the Mermaid subset: {line!r}"
        if match["sub"]:
            depth += 1
            declared.add(match["sub"])
        elif line.strip() == "end":
            depth -= 1
            assert depth >= 0
        elif match["node"]:
            declared.add(match["node"])
        elif match["src"]:
            edges.append((match["src"], match["dst"]))
        for ids in (match["styled"], match["classed"]):
            if ids:
                assert set(ids.split(",")) <= declared, line
    assert depth == 0
    assert all(u in declared and v in declared for u, v in edges), "edge to an undeclared id"
    assert "\"<" not in text and "<locals>" not in text  # HTML-like text is escaped
    return declared, edges


def test_mermaid_parses_and_has_every_flow_edge(three):
    """The Mermaid text is valid flowchart syntax, one arrow per drawn edge."""
    s, _ = three
    flow = DataFlowGraph(s)
    declared, edges = _parse_mermaid(flow.to_mermaid())
    drawn = [e for e in flow._shown(False).edges(data="kind") if e[2] != "owns"]
    assert len(edges) == len(drawn)
    assert "n_engines_trainer" in declared and "n_engines_trainer_n_epoch_completed" in declared
    assert 'n_engines_trainer_n_epoch_completed ==>|"runs on (every=2)"| n_engines_val_evaluator' in flow.to_mermaid()


def test_dot_parses_with_pydot(three):
    """The DOT text parses with pydot; with full=True it has every node, and every edge but the
    reads that parallel a triggers edge."""
    pydot = pytest.importorskip("pydot")
    s, _ = three
    flow = DataFlowGraph(s)
    (dot,) = pydot.graph_from_dot_data(flow.to_dot(full=True))
    nodes = {n.get_name().strip('"') for n in dot.get_nodes()}
    for sub in dot.get_subgraphs():
        nodes |= {n.get_name().strip('"') for n in sub.get_nodes()}
    nodes -= {"node", "edge", "graph"}
    assert nodes == set(flow.graph.nodes)
    shown_reads = [e for e in flow._shown(True).edges(data="kind") if e[2] == "reads"]
    redundant = len(flow.edges("reads")) - len(shown_reads)
    assert redundant == 4  # the metrics' and the output handler's input_ref, said by their triggers edges
    assert len(dot.get_edges()) == flow.graph.number_of_edges() - redundant
    assert dot.get_rankdir() == "LR"


def test_save_every_format(three, tmp_path):
    """PNG and SVG pictures, DOT, Mermaid and GraphML files, each valid in its format."""
    s, _ = three
    flow = DataFlowGraph(s)
    for ext in ("png", "svg", "dot", "mmd", "graphml"):
        flow.save(tmp_path / f"flow.{ext}")
    png = (tmp_path / "flow.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    svg = ElementTree.parse(tmp_path / "flow.svg").getroot()
    assert svg.tag.endswith("svg")
    svg_text = (tmp_path / "flow.svg").read_text()
    assert "val_evaluator (Engine)" in svg_text and "runs on" in svg_text
    assert (tmp_path / "flow.dot").read_text() == flow.to_dot()
    _parse_mermaid((tmp_path / "flow.mmd").read_text())
    back = nx.read_graphml(tmp_path / "flow.graphml", force_multigraph=True)
    assert set(back.nodes) == set(flow.graph.nodes)
    assert back.number_of_edges() == flow.graph.number_of_edges()
    assert back.nodes["engines.trainer"]["category"] == "engines"


def test_save_rejects_unknown_extensions(three, tmp_path):
    """An extension it cannot write raises a ValueError listing the ones it can."""
    s, _ = three
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf, \.dot, \.mmd or \.graphml"):
        DataFlowGraph(s).save(tmp_path / "flow.jpg")


def test_picture_shows_wired_objects_and_full_shows_all(three):
    """By default a card lists the wired objects (and value/output); full=True lists every object."""
    s, _ = three
    flow = DataFlowGraph(s)
    shown = flow._shown(False)
    trainer_objects = {v for _, v, k in shown.out_edges("engines.trainer", data="kind") if k == "owns"}
    assert trainer_objects == {f"engines.trainer.{n}" for n in
                               ("n_epoch_started", "output", "n_epoch_completed", "n_iteration_completed", "n_samples")}
    assert flow._shown(True).number_of_nodes() == flow.graph.number_of_nodes()
    figure = flow.draw(values=False)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "trainer (Engine)" in texts and "n_samples" in texts and "exception" not in texts


def test_empty_state_draws(tmp_path):
    """An empty state gives an empty graph that still saves as a picture."""
    with State() as s:
        flow = DataFlowGraph(s)
    assert flow.graph.number_of_nodes() == 0
    flow.save(tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes()[:4] == b"\x89PNG"
    assert repr(flow) == "<DataFlowGraph 0 nodes; no edges>"


def test_repr_png_for_jupyter(three):
    """Jupyter shows the graph as a PNG."""
    s, _ = three
    assert DataFlowGraph(s)._repr_png_()[:4] == b"\x89PNG"


def test_rejects_non_state():
    """A clear TypeError for something that is not a State."""
    with pytest.raises(TypeError, match="DataFlowGraph needs a State"):
        DataFlowGraph("state")
