"""Inspection: repr and tree of a state, value summaries, debugger views, plugin hooks."""

from __future__ import annotations

import pytest

from statefire.frame import Counter, Feature, Params, StateObject, wiring


class Engine(Feature):
    category = "engines"
    n_samples = Counter()
    output = StateObject(persist=False)


class Accuracy(Feature):
    category = "metrics"
    value = StateObject(0.0)


class FakeTensor:
    """Duck-typed like a tensor: shape and dtype."""

    def __init__(self, shape, dtype="torch.float32"):
        self.shape = shape
        self.dtype = dtype

    def __float__(self):
        return 0.5


def test_empty_state_tree(s):
    """An empty state renders as `State` and `(empty)`."""
    assert s.tree() == "State\n└─ (empty)"
    assert repr(s) == s.tree()


def test_tree_shows_categories_features_and_values(s):
    """`state.tree()` shows categories, features with their class, and `name=value` pairs."""
    trainer = Engine(name="trainer")
    Accuracy(name="val_accuracy")
    Params(name="hp", lr=0.1)
    trainer.n_samples = 64
    trainer.output = 1.2345678
    assert s.tree() == (
        "State\n"
        "├─ engines\n"
        "│  └─ trainer (Engine)\n"
        "│        n_samples=64  output=1.23457\n"
        "├─ metrics\n"
        "│  └─ val_accuracy (Accuracy)\n"
        "│        value=0\n"
        "└─ params\n"
        "   └─ hp (Params)\n"
        "         lr=0.1"
    )
    assert repr(s) == s.tree()


def test_tree_wraps_long_value_lines(s):
    """Many values wrap onto several lines within the width."""
    Params(name="hp", **{f"param_{i}": i * 1000 for i in range(20)})
    lines = s.tree(width=60).splitlines()
    assert all(len(line) <= 60 for line in lines)
    assert sum("param_" in line for line in lines) > 3
    assert "param_19=19000" in s.tree(width=60)


def test_tensors_show_as_shape_and_dtype(s):
    """Tensor-like values show as `Type[shape] dtype`; scalars as their value."""
    e = Engine()
    e.output = FakeTensor((32, 10))
    assert "output=FakeTensor[32, 10] float32" in s.tree()
    e.output = FakeTensor(())
    assert "output=faketensor(0.5)" in s.tree()


def test_real_torch_tensor_summary(s):
    """A real torch tensor shows as shape and dtype, never its data."""
    torch = pytest.importorskip("torch")
    e = Engine()
    e.output = torch.zeros(128, 3, dtype=torch.float16)
    assert "output=Tensor[128, 3] float16" in s.tree()
    e.output = torch.tensor(2.5)
    assert "output=tensor(2.5)" in s.tree()


def test_long_values_are_shortened(s):
    """Long strings, lists and dicts are summarised so each value stays short."""
    e = Engine()
    e.output = "x" * 500
    assert len(repr(e.output_ref)) < 120
    e.output = list(range(1000))
    assert "... 1000 items" in s.tree()
    e.output = {str(i): i for i in range(50)}
    assert "dict(50 keys)" in s.tree()
    e.output = (1,)
    assert "output=(1,)" in s.tree()


def test_feature_values_show_features_by_name(s):
    """A value that is a feature shows as `<Class name>`, not its whole repr."""
    e = Engine()
    acc = Accuracy()
    e.output = acc
    assert "output=<Accuracy accuracy>" in s.tree()


def test_feature_repr(s):
    """`repr(feature)` shows its class, path and values."""
    e = Engine(name="trainer")
    e.n_samples = 3
    assert repr(e) == "<Engine engines.trainer: n_samples=3, output=None>"


def test_debugger_view_of_state_is_categories(s):
    """`vars(state)` shows categories (and one private attribute), not internals."""
    Engine(name="trainer")
    Accuracy()
    assert set(vars(s)) == {"_frame", "engines", "metrics"}
    assert repr(vars(s)["_frame"]) == "<2 features>"


def test_debugger_view_of_a_feature_is_its_values(s):
    """`vars(feature)` shows values and one short private attribute, even when observed."""
    e = Engine(name="trainer")
    e.n_samples_ref.attach(print)
    view = vars(e)
    assert set(view) == {"_sf", "n_samples", "output", "name"}
    assert repr(view["_sf"]) == "<machinery: 1 observed objects>"


def test_debugger_view_of_a_container_is_its_features(s):
    """`vars(state.engines)` shows the features by name, plus the container's event objects."""
    trainer = Engine(name="trainer")
    view = vars(s.engines)
    assert view["trainer"] is trainer
    assert set(view) == {"_sf", "category", "added", "removed", "trainer"}


def test_html_repr_lists_features_and_values(s):
    """Notebooks get an HTML table with every feature path and value."""
    Engine(name="trainer")
    html = s._repr_html_()
    assert "engines.trainer" in html and "n_samples" in html and "<table>" in html


def test_a_feature_shows_itself_in_a_notebook(s):
    """One feature as an HTML table of its state objects, values escaped."""
    trainer = Engine(name="trainer")
    trainer.output = "<b>&</b>"
    html = trainer._repr_html_()
    assert html.startswith("<table>") and "engines.trainer" in html and "<small>(Engine)</small>" in html
    assert "<td style='padding-left:2em'>n_samples</td><td><code>0</code></td>" in html
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in html and "<b>&</b>" not in html
    assert html[len("<table>"):-len("</table>")] in s._repr_html_()


def test_handles_list_every_callback_with_its_ref(s):
    """`state.handles` lists every attached callback with the ref it is attached to."""
    e = Engine(name="trainer")
    acc = Accuracy()
    h1 = e.n_samples_ref.attach(print, every=10)
    h2 = acc.value_ref.attach(print)
    h3 = s.metrics.added_ref.attach(print)
    assert set(s.handles) == {h1, h2, h3}
    assert {h.ref.path for h in s.handles} == {
        "engines.trainer.n_samples",
        "metrics.accuracy.value",
        "metrics.added",
    }


def test_wiring_version_changes_on_attach_and_detach(s):
    """`wiring.version` moves on every attach and detach, so hot loops can cache."""
    e = Engine()
    v0 = wiring.version
    handle = e.output_ref.attach(print)
    v1 = wiring.version
    handle.remove()
    v2 = wiring.version
    assert v0 != v1 != v2
    e.output = 3  # a set does not change the wiring
    assert wiring.version == v2


class Recorder:
    """An observer in the shape `state.observe` expects."""

    def __init__(self):
        self.log = []

    def enter_event(self, ref, value):
        self.log.append(("event", ref.path, value))
        return ref.path

    def exit_event(self, token):
        self.log.append(("end event", token))

    def enter_callback(self, handle):
        self.log.append(("callback", handle.name))
        return handle.name

    def exit_callback(self, token):
        self.log.append(("end callback", token))


def test_observe_sees_every_set_and_every_callback_then_costs_nothing(s):
    """`state.observe` reports every set (observed or not) and every callback that runs."""
    e = Engine(name="trainer")

    def on_samples():
        pass

    e.n_samples_ref.attach(on_samples, every=2)
    recorder = Recorder()
    with s.observe(recorder):
        e.n_samples = 1
        e.n_samples = 2
        e.output = "o"
    assert recorder.log == [
        ("event", "engines.trainer.n_samples", 1),
        ("end event", "engines.trainer.n_samples"),
        ("event", "engines.trainer.n_samples", 2),
        ("callback", "test_observe_sees_every_set_and_every_callback_then_costs_nothing.<locals>.on_samples"),
        ("end callback", "test_observe_sees_every_set_and_every_callback_then_costs_nothing.<locals>.on_samples"),
        ("end event", "engines.trainer.n_samples"),
        ("event", "engines.trainer.output", "o"),
        ("end event", "engines.trainer.output"),
    ]
    recorder.log.clear()
    e.output = "after"
    assert recorder.log == []
    assert "output" not in e._sf  # the unobserved fast path is back


def test_observe_covers_features_created_while_observing(s):
    """A feature created during an observation is observed too."""
    recorder = Recorder()
    with s.observe(recorder):
        acc = Accuracy()
        acc.value = 0.9
    assert ("event", "metrics.accuracy.value", 0.9) in recorder.log
    assert ("event", "metrics.added", acc) in recorder.log


def test_a_filter_counts_on_across_an_observed_stretch(s):
    """Sets made while a tracer observes advance the same filter as the ones before and after."""
    e = Engine(name="trainer")
    seen = []
    e.output_ref.attach(seen.append, every=3)
    e.n_samples_ref.attach(seen.append, every=10)
    e.output = 1
    e.n_samples = 5
    with s.observe(Recorder()):
        e.output = 2
        e.output = 3  # the third set since attach
        e.n_samples = 12  # crosses 10
        e.output = 4
    e.output = 5
    e.output = 6  # the sixth
    e.n_samples = 19
    e.n_samples = 20  # crosses 20
    assert seen == [3, 12, 6, 20]
