"""describe(): what a ref or a feature is, its value, who triggers it, who reads it."""

from __future__ import annotations

import io

import pytest

from statefire.features import AverageOutput, Engine
from statefire.frame import State
from statefire.plugins import describe


@pytest.fixture
def s():
    with State() as st:
        trainer = Engine("trainer", lambda e, b: b, data=[1.0, 3.0])
        evaluator = Engine("evaluator", lambda e, b: b, data=[2.0], run_on=trainer.n_epoch_completed_ref(every=2))
        AverageOutput(engine=evaluator, name="avg")
        trainer.n_samples_ref.attach(print, every=10)
        trainer.run()
        yield st


def _text(thing, **kwargs):
    out = io.StringIO()
    describe(thing, file=out, **kwargs)
    return out.getvalue()


def test_describe_a_ref(s):
    """A ref: path, class and owner with the doc, value, what it triggers (filters), readers, setters."""
    text = _text(s.trainer.n_epoch_completed_ref)
    assert text.splitlines() == [
        "engines.trainer.n_epoch_completed",
        "  what:     Counter of trainer (Engine): epochs completed, over all runs",
        "  value:    1",
        "  triggers: engines.evaluator  (runs the engine, every=2, Engine._run_on_fire[evaluator], priority 100)",
        "  read by:  nothing",
        "  set by:   engines.trainer",
    ]


def test_describe_shows_readers_and_functions(s):
    """Readers are named with the attribute holding the ref; function callbacks by name."""
    text = _text(s.evaluator.output_ref)
    assert "read by:  metrics.avg (as input_ref)" in text
    assert "triggers: metrics.avg  (AverageOutput.update[avg], priority 50)" in text
    assert "triggers: fn:print  (every=10)" in _text("trainer.n_samples")


def test_describe_a_filtered_ref(s):
    """A filtered ref says its filter."""
    assert "filter:   every=3" in _text(s.trainer.n_samples_ref(every=3))


def test_describe_a_feature(s, capsys):
    """A feature: class and category, doc line, values, what fires it, what it reads, who follows it."""
    describe(s.avg)
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "metrics.avg (AverageOutput, category metrics)"
    assert lines[1] == "  The mean of the input values (e.g. a trainer's loss) over the epoch."
    assert "  values:   value=None" in lines
    assert "  fired by: engines.evaluator.n_epoch_started -> AverageOutput.reset[avg]" in lines
    assert "  reads:    engines.evaluator.output (as input_ref)" in lines
    assert "  followed: nothing" in lines
    trainer = _text(s.trainer)
    assert "  followed: n_epoch_completed -> engines.evaluator" in trainer.splitlines()


def test_describe_errors(s):
    """An unknown path suggests close ones; other things are a TypeError."""
    with pytest.raises(KeyError, match="did you mean 'engines.trainer.n_samples'"):
        describe("trainer.n_sample")
    with pytest.raises(TypeError, match="describe\\(\\) takes a ref"):
        describe(3.5)


def test_describe_a_state_prints_its_tree(s):
    """The whole state: the same tree as `state.tree()`, every feature with its values."""
    text = _text(s)
    assert text == s.tree() + "\n"
    assert "trainer (Engine)" in text and "avg (AverageOutput)" in text
