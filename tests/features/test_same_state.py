"""Every feature that takes a ref or a feature refuses one of another State, at construction.

Before the one cross-State check, `Metric`, `OutputHandler`, `ScalarChart`,
`ProgressBar` and `Timer` accepted another State's engine silently and were
then wired to an engine that never ran with them.
"""

from __future__ import annotations

import io

import pytest

from statefire.frame import State
from statefire.features import (
    AverageOutput,
    EarlyStopping,
    Engine,
    EpochLog,
    OutputHandler,
    ProgressBar,
    ScalarChart,
    TensorBoard,
    Timer,
)


@pytest.fixture
def elsewhere():
    """An engine and its metric, in a State of their own."""
    with State():
        engine = Engine("other", lambda e, b: float(b), data=[1, 2])
        metric = AverageOutput(engine=engine)
    return engine, metric


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda e, m, tb: AverageOutput(engine=e), r"engine of metric 'other_average_output' \(engines\.other\)"),
        (lambda e, m, tb: OutputHandler(e.output_ref, float), r"input_ref of OutputHandler 'output_handler'"),
        (lambda e, m, tb: ScalarChart(m.value_ref, e.n_epoch_completed_ref, writer=tb),
         r"y_ref of ScalarChart '.*' \(metrics\.other_average_output\.value\)"),
        (lambda e, m, tb: ProgressBar(e, file=io.StringIO()), r"engine of ProgressBar 'other_progress_bar'"),
        (lambda e, m, tb: Timer(e), r"engine of Timer 'other_timer' \(engines\.other\)"),
        (lambda e, m, tb: EpochLog(e, file=io.StringIO()), r"engine of EpochLog 'other_epoch_log'"),
    ],
)
def test_another_states_engine_or_ref_is_refused(elsewhere, tmp_path, make, message):
    engine, metric = elsewhere
    with State():
        writer = TensorBoard(tmp_path / "tb")
        with pytest.raises(ValueError, match=message + ".*belongs to another State"):
            make(engine, metric, writer)


def test_early_stopping_refuses_a_trainer_of_another_state(elsewhere):
    engine, _ = elsewhere
    with State():
        trainer = Engine("trainer", lambda e, b: float(b), data=[1])
        score = AverageOutput(engine=trainer)
        with pytest.raises(ValueError, match=r"trainer of EarlyStopping .*\(engines\.other\) belongs to another State"):
            EarlyStopping(score.value_ref, trainer=engine, patience=1, mode="min")


def test_the_same_state_is_accepted(tmp_path):
    with State():
        engine = Engine("train", lambda e, b: float(b), data=[1, 2])
        metric = AverageOutput(engine=engine)
        ScalarChart(metric.value_ref, engine.n_epoch_completed_ref, writer=TensorBoard(tmp_path / "tb"))
        Timer(engine)
        ProgressBar(engine, metrics=[metric], file=io.StringIO())
        engine.run()
        assert metric.value == 1.5
