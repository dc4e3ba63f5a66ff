"""The data-flow picture: edge labels never hide a card's text; the views share one vocabulary."""

from __future__ import annotations

import os

import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import FancyBboxPatch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import SupervisedEvaluator, SupervisedTrainer, TensorBoard
from statefire.frame import State
from statefire.plugins import DataFlowGraph, EnginesMetricsComparisonCharts
from statefire.plugins import _dataflow_view as view
from statefire.plugins.dataflow import EDGE_KINDS


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The wiring of examples/demo.py (the README's picture), trained for one short epoch on digits."""
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data[:256], dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target[:256])
    train = DataLoader(TensorDataset(x[:192], y[:192]), batch_size=64)
    val = DataLoader(TensorDataset(x[192:], y[192:]), batch_size=64)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    loss_fn = torch.nn.functional.cross_entropy
    with State() as s:
        trainer = SupervisedTrainer(model, torch.optim.Adam(model.parameters(), lr=3e-3), loss_fn, train,
                                    n_epochs=1)
        for name, loader in [("train_evaluator", train), ("val_evaluator", val)]:
            SupervisedEvaluator(model, loader, name=name, run_on=trainer.n_epoch_completed_ref,
                                metrics=["accuracy", "loss"], loss_fn=loss_fn)
        TensorBoard(tmp_path_factory.mktemp("tb"))
        EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_samples_ref, n_identical_metric_name_suffixes=1)

        @trainer.n_epoch_completed_ref.attach
        def report(epoch: int) -> None:
            pass

        trainer.run()
        yield s
        s.clear()


def _boxes(flow: DataFlowGraph, full: bool):
    """Rendered extents (display pixels) of the edge labels, of the cards' texts and of the cards."""
    figure = flow.draw(full=full)
    FigureCanvasAgg(figure)
    renderer = figure.canvas.get_renderer()
    ax = figure.axes[0]
    shown = flow._shown(full)
    labels = [view.edge_label(d) for _, _, d in shown.edges(data=True) if d["kind"] != "owns"]
    labels = [label for label in labels if label]
    edge_texts = [t for t in ax.texts if t.get_text() in labels]
    node_texts = [t for t in ax.texts if t.get_text() not in labels]
    assert sorted(t.get_text() for t in edge_texts) == sorted(labels)  # every label drawn, none lost
    cards = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, FancyBboxPatch)]
    return ([(t.get_text(), t.get_window_extent(renderer)) for t in edge_texts],
            [(t.get_text(), t.get_window_extent(renderer)) for t in node_texts], cards)


@pytest.mark.parametrize("full", [False, True])
def test_edge_labels_cover_no_node_label(demo, full):
    """In the demo's picture no edge label ('read as x_ref', 'runs on') covers a card or its names."""
    edge_labels, node_labels, cards = _boxes(DataFlowGraph(demo), full)
    assert any(text == "read as x_ref" for text, _ in edge_labels)
    assert any(text == "engines_metrics_comparison_charts_val_evaluator_loss (ScalarChart)" for text, _ in node_labels)
    hidden = [(e, n) for e, eb in edge_labels for n, nb in node_labels if eb.overlaps(nb)]
    assert hidden == [], f"edge labels over node labels: {hidden}"
    over_cards = [e for e, eb in edge_labels if any(eb.overlaps(cb) for cb in cards)]
    assert over_cards == [], f"edge labels over cards: {over_cards}"
    crowded = [(a, b) for i, (a, ab) in enumerate(edge_labels) for b, bb in edge_labels[i + 1:] if ab.overlaps(bb)]
    assert crowded == [], f"edge labels over each other: {crowded}"


def test_svg_names_each_label(demo, tmp_path):
    """In an SVG, each card text and edge label is a group whose id names its node or edge."""
    DataFlowGraph(demo).save(tmp_path / "flow.svg")
    svg = (tmp_path / "flow.svg").read_text()
    assert 'id="unit:engines.trainer"' in svg and 'id="object:engines.trainer.n_samples"' in svg
    assert 'id="edge:engines.trainer.n_samples-&gt;charts.' in svg


def test_legend_order_is_the_edge_kinds():
    """The colours and line styles the views use cover exactly the model's edge kinds, in its order."""
    assert tuple(view.EDGE_STYLE) == EDGE_KINDS


def test_saving_replaces_a_file_whole(demo, tmp_path):
    """Saving over an older export replaces it and leaves no temporary file behind."""
    flow = DataFlowGraph(demo)
    for name in ("flow.png", "flow.dot", "flow.graphml"):
        (tmp_path / name).write_text("old")
        flow.save(tmp_path / name)
        assert (tmp_path / name).read_bytes() != b"old"
    assert (tmp_path / "flow.dot").read_text() == flow.to_dot()
    assert sorted(os.listdir(tmp_path)) == ["flow.dot", "flow.graphml", "flow.png"]
