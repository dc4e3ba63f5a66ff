"""TensorBoard: one real SummaryWriter per engine run directory, flushed per engine run, closed at exit.

Event files are read back with tensorboard's own EventAccumulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import points
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from statefire.features import Engine, ScalarChart, TensorBoard
from statefire.features.tensorboard import find_writer, scalar_value, step_value
from statefire.frame import State

ROOT = Path(__file__).resolve().parents[2]


def test_one_run_directory_per_engine_so_a_tag_overlays(s, tmp_path):
    """The same tag written for two engines lands in <log_dir>/<engine>, one curve per run."""
    writer = TensorBoard(tmp_path)
    writer.add_scalar("trainer", "loss", 0.5, 10)
    writer.add_scalar("evaluator", "loss", 0.25, 10)
    writer.close()
    assert sorted(os.listdir(tmp_path)) == ["evaluator", "trainer"]
    assert points(tmp_path / "trainer", "loss") == [(10, 0.5)]
    assert points(tmp_path / "evaluator", "loss") == [(10, 0.25)]
    assert writer.category == "writers" and s.writers.tensor_board is writer


def test_flushed_at_the_end_of_every_engine_run(s, tmp_path):
    """Each engine's run completion flushes every writer once: after the run, its points are on disk."""
    writer = TensorBoard(tmp_path, max_queue=10_000, flush_secs=10_000)
    trainer = Engine("trainer", lambda engine, batch: float(batch), data=[1, 2, 3], n_epochs=2)
    ScalarChart(trainer.output_ref, trainer.n_iteration_started_ref)  # set just before output
    flushed = spy_on_flushes(writer, "trainer", "later")
    trainer.run()
    assert flushed == [("trainer", 6), ("later", 0)]  # once per run, not per epoch, after the last point
    assert writer.n_flushed == 1
    assert points(tmp_path / "trainer", "engines/trainer/output") == [(i, float((i - 1) % 3 + 1)) for i in range(1, 7)]
    # An engine created after the writer is followed too.
    later = Engine("later", lambda engine, batch: 7.0, data=[0])
    ScalarChart(later.output_ref, later.n_iteration_started_ref)
    later.run()
    assert flushed[2:] == [("trainer", 6), ("later", 1)]
    assert points(tmp_path / "later", "engines/later/output") == [(1, 7.0)]
    assert writer.n_flushed == 2


def spy_on_flushes(writer, *runs):
    """[(run, points written so far)] each time a run's SummaryWriter is flushed."""
    flushed = []
    for run in runs:
        summary_writer = writer.writer(run)
        flush = summary_writer.flush

        def spy(run=run, flush=flush):
            flushed.append((run, sum(chart.n_written for chart in writer.state.charts if chart.run == run)))
            flush()

        summary_writer.flush = spy
    return flushed


def test_close_then_write_again_opens_a_new_event_file(s, tmp_path):
    writer = TensorBoard(tmp_path)
    writer.add_scalar("trainer", "x", 1.0, 1)
    writer.close()
    assert writer.runs == []
    writer.add_scalar("trainer", "x", 2.0, 2)
    writer.close()
    assert len(os.listdir(tmp_path / "trainer")) == 2
    assert points(tmp_path / "trainer", "x") == [(1, 1.0), (2, 2.0)]
    # TensorBoard reads a run's files in name order: the second file sorts last,
    # even where the file counter would not (file 10 of a process sorts before 9).
    first, second = sorted(os.listdir(tmp_path / "trainer"))
    assert int(first.split(".")[3]) < int(second.split(".")[3])


def test_closed_at_interpreter_exit(tmp_path):
    """A script that never calls close() still leaves every point on disk: the atexit hook closes the writers."""
    script = textwrap.dedent(
        f"""
        from statefire.features import TensorBoard
        writer = TensorBoard({str(tmp_path)!r}, max_queue=10_000, flush_secs=10_000)
        for step in range(5):
            writer.add_scalar("trainer", "x", step / 2, step)
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)
    assert points(tmp_path / "trainer", "x") == [(step, step / 2) for step in range(5)]


def test_purge_step_hides_events_logged_past_a_resume_point(s, tmp_path):
    """A resumed run (purge_step=5) replaces steps 5.. instead of doubling them."""
    first = TensorBoard(tmp_path, name="first")
    for step in range(10):
        first.add_scalar("trainer", "x", 1.0, step)
    first.close()
    resumed = TensorBoard(tmp_path, name="resumed", purge_step=5)
    for step in range(5, 8):
        resumed.add_scalar("trainer", "x", 2.0, step)
    resumed.close()
    assert points(tmp_path / "trainer", "x") == [(i, 1.0) for i in range(5)] + [(i, 2.0) for i in range(5, 8)]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"log_dir": ""}, TypeError, "log_dir of TensorBoard must be a non-empty path or None, got ''"),
        ({"log_dir": 3}, TypeError, "log_dir of TensorBoard must be a non-empty path or None, got 3"),
        ({"log_dir": "runs", "purge_step": -1}, ValueError, "purge_step of TensorBoard .* got -1"),
    ],
)
def test_invalid_arguments_are_named(s, kwargs, error, match):
    with pytest.raises(error, match=match):
        TensorBoard(**kwargs)
    assert len(s.writers) == 0


def test_a_restored_state_never_redirects_the_writer(tmp_path):
    """The log dir is where this process writes, not training state: a checkpoint neither saves nor restores it."""
    with State() as first:
        trainer = Engine("trainer", lambda engine, batch: float(batch), data=[1, 2])
        writer = TensorBoard(tmp_path / "parent")
        ScalarChart(trainer.output_ref, trainer.n_iteration_completed_ref)
        trainer.run()
        writer.close()
        saved = first.state_dict()
    assert "log_dir" not in saved["writers"]["tensor_board"]
    with State() as second:
        trainer = Engine("trainer", lambda engine, batch: float(batch), data=[3, 4])
        writer = TensorBoard(tmp_path / "child")
        ScalarChart(trainer.output_ref, trainer.n_iteration_completed_ref)
        second.load_state_dict(saved)
        trainer.run()
        writer.close()
    assert writer.log_dir == str(tmp_path / "child")

    def points(run_dir):
        return [(e.step, e.value) for e in EventAccumulator(str(run_dir)).Reload().Scalars("engines/trainer/output")]

    # each output at its own iteration; the x axis goes on from the restore
    assert points(tmp_path / "child" / "trainer") == [(3, 3.0), (4, 4.0)]
    assert points(tmp_path / "parent" / "trainer") == [(1, 1.0), (2, 2.0)]


def test_find_writer_the_only_one_by_name_or_a_clear_error(s, tmp_path):
    with pytest.raises(RuntimeError, match=r"chart 'c' has nothing to write to: create a writer, e.g. TensorBoard"):
        find_writer(s, None, "chart 'c'")
    a = TensorBoard(tmp_path / "a", name="a")
    assert find_writer(s, None, "chart 'c'") is a
    b = TensorBoard(tmp_path / "b", name="b")
    with pytest.raises(RuntimeError, match=r"cannot choose between the writers \['a', 'b'\]; pass writer="):
        find_writer(s, None, "chart 'c'")
    assert find_writer(s, "b", "chart 'c'") is b
    with pytest.raises(ValueError, match=r"writer='z'.*writers: \['a', 'b'\]"):
        find_writer(s, "z", "chart 'c'")


def test_scalar_value_reads_numbers_and_one_element_tensors():
    torch = pytest.importorskip("torch")
    numpy = pytest.importorskip("numpy")
    assert scalar_value(3, "p") == 3.0 and type(scalar_value(3, "p")) is float
    assert scalar_value(True, "p") == 1.0
    assert scalar_value(torch.tensor(0.25), "p") == 0.25
    assert scalar_value(torch.tensor([0.5]), "p") == 0.5
    assert scalar_value(numpy.float32(1.5), "p") == 1.5
    with pytest.raises(TypeError, match=r"cannot chart metrics.m.value: it holds Tensor of shape \(2,\)"):
        scalar_value(torch.tensor([1.0, 2.0]), "metrics.m.value")
    with pytest.raises(TypeError, match=r"cannot chart a.b: its value 'high' of type str is not a number"):
        scalar_value("high", "a.b")
    with pytest.raises(TypeError, match=r"cannot chart a.b: its value None"):
        scalar_value(None, "a.b")


def test_step_value_takes_whole_numbers_only():
    torch = pytest.importorskip("torch")
    assert step_value(7, "x") == 7
    assert step_value(7.0, "x") == 7
    assert step_value(torch.tensor(12), "x") == 12
    with pytest.raises(TypeError, match=r"cannot use timers.t.elapsed as the x axis: its value 1.5 is not a whole"):
        step_value(1.5, "timers.t.elapsed")
    with pytest.raises(TypeError, match="is not a whole number"):
        step_value(float("nan"), "x")
