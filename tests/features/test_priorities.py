"""The built-in priorities live in one table, and the docs and the live wiring agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from statefire.frame import State
from statefire.features import (
    CHECKPOINT_PRIORITY,
    METRIC_PRIORITY,
    PRIORITIES,
    RUN_ON_PRIORITY,
    AverageOutput,
    Checkpoint,
    Engine,
    Timer,
    priority_table,
)
from statefire.features import _priorities

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("doc", ["engines.md", "writing-features.md"])
def test_the_docs_show_the_one_table(doc):
    assert priority_table() in (ROOT / "docs" / doc).read_text(encoding="utf-8")


def test_every_constant_has_a_row_with_a_reason_in_call_order():
    constants = {n: v for n, v in vars(_priorities).items() if n.endswith("_PRIORITY")}
    assert {row.constant: row.value for row in PRIORITIES} == constants
    assert all(row.why for row in PRIORITIES)
    assert [row.value for row in PRIORITIES] == sorted((row.value for row in PRIORITIES), reverse=True)


def test_the_built_in_peers_attach_with_the_tables_numbers(tmp_path):
    with State():
        trainer = Engine("trainer", lambda e, b: float(b), data=[1, 2])
        Engine("evaluator", lambda e, b: b, data=[1], run_on=trainer.n_epoch_completed_ref)
        AverageOutput(engine=trainer)
        Timer(trainer)
        Checkpoint(tmp_path / "ck", trigger=trainer.n_epoch_completed_ref)
        completed = [h.priority for h in trainer.n_epoch_completed_ref.handles]
        started = [h.priority for h in trainer.n_epoch_started_ref.handles]
    assert completed[:3] == [_priorities.TIMER_STOP_PRIORITY, RUN_ON_PRIORITY, METRIC_PRIORITY]
    assert completed[-1] == CHECKPOINT_PRIORITY
    assert started[0] == METRIC_PRIORITY and started[-1] == _priorities.TIMER_START_PRIORITY
