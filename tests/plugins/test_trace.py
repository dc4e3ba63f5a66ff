"""EventTrace: every event recorded with its callbacks and nesting; Chrome trace; summary; zero residue."""

from __future__ import annotations

import json
import threading

import pytest

from statefire.features import AverageOutput, Engine
from statefire.frame import Counter, Feature, State
from statefire.plugins import EventTrace
from statefire.plugins.trace import SummaryRow, TraceSummary


class Box(Feature):
    category = "boxes"
    n = Counter()


@pytest.fixture
def pair():
    """A trainer of 3 iterations x 2 epochs, an evaluator of 2 iterations on each epoch, a metric each."""
    with State() as s:
        trainer = Engine("trainer", lambda e, b: b * 2.0, data=[1.0, 2.0, 3.0], n_epochs=2)
        evaluator = Engine("evaluator", lambda e, b: b, data=[5.0, 6.0], run_on=trainer.n_epoch_completed_ref)
        AverageOutput(engine=trainer, name="train_avg")
        AverageOutput(engine=evaluator, name="eval_avg")
        calls = []
        trainer.n_iteration_completed_ref.attach(lambda: calls.append(1))
        yield s, trainer, evaluator


def test_counts_and_summary_match_iterations(pair):
    """Every set is counted; the summary has one row per callback with its call count."""
    s, trainer, _ = pair
    with EventTrace(s) as trace:
        trainer.run()
    counts = trace.counts()
    assert counts["engines.trainer.n_iteration_completed"] == 6
    assert counts["engines.evaluator.n_iteration_completed"] == 4
    assert counts["engines.evaluator.n_run_started"] == 2
    assert counts["metrics.eval_avg.value"] == 2
    rows = {(r.callback, r.ref): r for r in trace.summary()}
    assert rows[("AverageOutput.update[train_avg]", "engines.trainer.output")].count == 6
    assert rows[("AverageOutput.update[eval_avg]", "engines.evaluator.output")].count == 4
    assert rows[("Engine._run_on_fire[evaluator]", "engines.trainer.n_epoch_completed")].count == 2
    lam = [r for r in trace.summary() if r.ref == "engines.trainer.n_iteration_completed"]
    assert len(lam) == 1 and lam[0].count == 6 and lam[0].callback.startswith("pair.<locals>.<lambda>")
    for row in trace.summary():
        assert isinstance(row, SummaryRow)
        assert 0 <= row.mean_s <= row.max_s <= row.total_s
        assert row.mean_s == pytest.approx(row.total_s / row.count)
    totals = [r.total_s for r in trace.summary()]
    assert totals == sorted(totals, reverse=True)


def test_summary_prints_as_a_table(pair):
    """`print(trace.summary())` is a table with a header, one line per row and a total."""
    s, trainer, _ = pair
    with EventTrace(s) as trace:
        trainer.run()
    summary = trace.summary()
    assert isinstance(summary, TraceSummary)
    lines = str(summary).splitlines()
    assert lines[0].split() == ["callback", "ref", "count", "total_s", "mean_s", "max_s"]
    assert len(lines) == len(summary) + 4  # header, rule, rows, rule, total
    assert lines[-1].split()[:2] == ["total", str(sum(r.count for r in summary))]
    assert any("AverageOutput.update[eval_avg]" in line and " 4 " in line for line in lines)


def test_records_nest(pair):
    """An evaluator's sets are children of the trainer's run_on callback, itself a child of the event."""
    s, trainer, _ = pair
    with EventTrace(s) as trace:
        trainer.run()
    value_events = [r for r in trace.events if r.ref == "metrics.eval_avg.value"]
    assert len(value_events) == 2
    event = value_events[0]
    chain = []
    node = event
    while node is not None:
        chain.append((node.kind, node.name))
        node = node.parent
    assert chain == [
        ("event", "metrics.eval_avg.value"),
        ("callback", "Metric.completed[eval_avg]"),
        ("event", "engines.evaluator.n_epoch_completed"),
        ("callback", "Engine._run_on_fire[evaluator]"),
        ("event", "engines.trainer.n_epoch_completed"),
    ]
    assert [event.depth for _ in range(1)] == [4]
    for record in trace.records:
        if record.parent is not None:
            assert record.parent.start_ns <= record.start_ns <= record.end_ns <= record.parent.end_ns
            assert record.depth == record.parent.depth + 1
        else:
            assert record.depth == 0
    outputs = [r for r in trace.events if r.ref == "engines.trainer.output"]
    assert [r.value for r in outputs[:3]] == ["2", "4", "6"]
    assert all(r.wall_time >= trace.started_at for r in outputs)


def _check_trace_event_format(document):
    """The trace-event format: a traceEvents list of dicts with ph, ts, pid, tid (X spans: dur too)."""
    assert isinstance(document["traceEvents"], list)
    for event in document["traceEvents"]:
        assert event["ph"] in ("X", "M")
        assert isinstance(event["name"], str)
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        assert isinstance(event["ts"], (int, float))
        if event["ph"] == "X":
            assert isinstance(event["dur"], (int, float)) and event["dur"] >= 0
            assert event["cat"] in ("event", "callback")
        else:
            assert event["name"] in ("process_name", "thread_name", "thread_sort_index")
            assert isinstance(event["args"], dict)


def test_chrome_trace_is_valid_and_nests(pair, tmp_path):
    """The file is trace-event JSON; on a track, spans nest properly (no partial overlaps)."""
    s, trainer, _ = pair
    with EventTrace(s) as trace:
        trainer.run()
    path = tmp_path / "trace.json"
    returned = trace.to_chrome_trace(path)
    document = json.loads(path.read_text())
    assert document == json.loads(json.dumps(returned))
    _check_trace_event_format(document)
    spans = [e for e in document["traceEvents"] if e["ph"] == "X"]
    assert len(spans) == len(trace.records)
    names = {e["args"]["name"] for e in document["traceEvents"] if e["name"] == "thread_name"}
    assert names == {"MainThread (sets and callbacks)"}
    # Proper nesting: walk spans by start, keep a stack of open ends.
    stack: list[float] = []
    eps = 1e-3  # the µs floats of ns integers
    max_depth = 0
    for span in sorted(spans, key=lambda e: (e["ts"], -e["dur"])):
        while stack and span["ts"] >= stack[-1] - eps and not span["ts"] + span["dur"] <= stack[-1] + eps:
            stack.pop()
        while stack and span["ts"] >= stack[-1]:
            stack.pop()
        if stack:
            assert span["ts"] + span["dur"] <= stack[-1] + eps, "a span overlaps its parent's end"
        assert span["args"]["depth"] == len(stack)
        stack.append(span["ts"] + span["dur"])
        max_depth = max(max_depth, len(stack))
    assert max_depth >= 5


def test_max_events_bounds_the_buffer_but_not_the_summary():
    """Only the last max_events spans are kept; counts and summary still cover the whole run."""
    with State() as s:
        engine = Engine("engine", lambda e, b: b, data=list(range(50)))
        engine.output_ref.attach(lambda: None)
        with EventTrace(s, max_events=40) as trace:
            engine.run()
    assert len(trace.records) == 40
    assert trace.dropped > 0
    assert trace.counts()["engines.engine.output"] == 50
    assert [r.count for r in trace.summary()] == [50]
    assert trace.to_chrome_trace()["otherData"]["dropped_spans"] == trace.dropped


def test_no_residue_after_stop(pair):
    """After stop, nothing is recorded and no object keeps an observing fire callable."""
    s, trainer, _ = pair
    box = Box()
    trace = EventTrace(s).start()
    assert trace.active
    box.n += 1
    assert box.__dict__["_sf"].get("n") is not None  # observed while active
    trace.stop()
    assert not trace.active and s._frame.observers == []
    assert box.__dict__["_sf"].get("n") is None
    assert type(box)._sf_objects["n"].observed == 0
    box.n += 1
    trainer.run()
    assert trace.counts() == {"boxes.box.n": 1}
    trace.stop()  # harmless


def test_start_twice_raises_and_restart_adds(pair):
    """Starting a recording trace is an error; after stop, start adds to what was recorded."""
    s, _, _ = pair
    box = Box()
    trace = EventTrace(s).start()
    with pytest.raises(RuntimeError, match="already recording"):
        trace.start()
    box.n += 1
    trace.stop()
    box.n += 1
    with trace:
        box.n += 1
    assert trace.counts() == {"boxes.box.n": 2}
    trace.clear()
    assert trace.counts() == {} and trace.records == [] and list(trace.summary()) == []


def test_features_created_while_tracing_are_traced():
    """A feature created inside the trace is observed too."""
    with State() as s:
        with EventTrace(s) as trace:
            box = Box()
            box.n = 3
    assert trace.counts()["boxes.box.n"] == 1
    assert trace.counts()["boxes.added"] == 1


def test_exception_in_a_callback_keeps_the_trace_consistent():
    """A callback that raises: the error reaches the setter, spans close, later sets are at depth 0."""
    with State() as s:
        box = Box()

        def boom(value):
            if value == 2:
                raise ValueError("boom")

        box.n_ref.attach(boom)
        with EventTrace(s) as trace:
            box.n = 1
            with pytest.raises(ValueError, match="boom"):
                box.n = 2
            box.n = 3
    assert [(r.kind, r.depth) for r in trace.records] == [
        ("event", 0), ("callback", 1), ("event", 0), ("callback", 1), ("event", 0), ("callback", 1)]
    assert all(r.end_ns >= r.start_ns for r in trace.records)


def test_tensor_values_are_summarized():
    """A tensor value is recorded as its shape and dtype, never its data."""
    torch = pytest.importorskip("torch")
    with State() as s:
        engine = Engine("engine", lambda e, b: b, data=[torch.zeros(4, 3)])
        with EventTrace(s) as trace:
            engine.run()
    (output,) = [r for r in trace.events if r.ref == "engines.engine.output"]
    assert output.value == "Tensor[4, 3] float32"


def test_threads_get_their_own_track():
    """Sets from another thread go to another tid, named by its thread."""
    with State() as s:
        box = Box()
        with EventTrace(s) as trace:
            box.n = 1
            worker = threading.Thread(target=lambda: setattr(box, "n", 2), name="worker")
            worker.start()
            worker.join()
    document = trace.to_chrome_trace()
    names = {e["args"]["name"] for e in document["traceEvents"] if e["name"] == "thread_name"}
    assert names == {"MainThread (sets and callbacks)", "worker (sets and callbacks)"}
    assert len({e["tid"] for e in document["traceEvents"] if e["ph"] == "X"}) == 2


def test_invalid_arguments():
    """max_events must be a positive int; the state must be a State."""
    with pytest.raises(ValueError, match="max_events of EventTrace must be a positive int, got 0"):
        EventTrace(State(), max_events=0)
    with pytest.raises(TypeError, match="EventTrace needs a State"):
        EventTrace(object())


def _train(traced: bool):
    """A real torch model on digits for 3 epochs with two evaluators; weights and metric values."""
    import torch
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset

    from statefire.features import Accuracy, Loss

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data[:400], dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target[:400])
    loader = DataLoader(TensorDataset(x[:320], y[:320]), batch_size=32, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(x[320:], y[320:]), batch_size=40)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

    def step(engine, batch):
        xb, yb = batch
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss.detach()

    def evaluate(engine, batch):
        with torch.no_grad():
            return model(batch[0]), batch[1]

    with State() as s:
        trainer = Engine("trainer", step, loader, n_epochs=3)
        AverageOutput(engine=trainer, name="train_loss")
        for name, data in (("train_evaluator", loader), ("val_evaluator", val)):
            evaluator = Engine(name, evaluate, data, run_on=trainer.n_epoch_completed_ref)
            Accuracy(engine=evaluator)
            Loss(torch.nn.functional.cross_entropy, engine=evaluator)
        trace = EventTrace(s)
        if traced:
            with trace:
                trainer.run()
        else:
            trainer.run()
        values = {m.name: m.value for m in s.metrics}
    return [p.detach().clone() for p in model.parameters()], values, trace


def test_traced_and_untraced_runs_train_identically():
    """Tracing changes nothing: same weights bit for bit, same metric values."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention on a busy machine
    try:
        weights_a, values_a, trace = _train(traced=True)
        weights_b, values_b, untouched = _train(traced=False)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(weights_a, weights_b))
    assert values_a == values_b
    assert values_a["val_evaluator_accuracy"] > 0.5
    assert trace.counts()["engines.trainer.n_iteration_completed"] == 30
    assert [r.count for r in trace.summary() if r.callback == "Loss.update[val_evaluator_loss]"] == [6]
    assert untouched.counts() == {}
