"""The Engine: its loop, its events, run_on, termination, errors, and resume."""

from __future__ import annotations

import subprocess
import sys

import pytest

from statefire.features import Engine, EngineError
from statefire.frame import State


def identity(engine, batch):
    return batch


def record(engine: Engine, names: list[str], log: list) -> None:
    for name in names:
        getattr(engine, f"{name}_ref").attach(lambda value, name=name: log.append((name, value)))


def test_importing_the_engine_imports_no_torch():
    """`from statefire.features import Engine` stays torch-free."""
    code = "import sys; from statefire.features import Engine, OutputHandler, Metric; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_one_iteration_sets_its_objects_in_order(s):
    """batch, n_iteration_started, output, n_samples, n_iteration_completed — so an x-axis is current."""
    engine = Engine("e", lambda e, b: b * 10, data=[1, 2])
    log: list = []
    record(engine, ["batch", "n_iteration_started", "output", "n_samples", "n_iteration_completed"], log)
    engine.run()
    names = ["batch", "n_iteration_started", "output", "n_samples", "n_iteration_completed"]
    assert [name for name, _ in log[:5]] == names
    assert log[:5] == list(zip(names, [1, 1, 10, 1, 1], strict=True))
    assert log[5:] == list(zip(names, [2, 2, 20, 2, 2], strict=True))


def test_run_and_epoch_events_bracket_the_iterations(s):
    """Run and epoch counters fire around the iterations, once each."""
    engine = Engine("e", identity, data=[1, 2], n_epochs=2)
    log: list = []
    record(engine, ["n_run_started", "n_epoch_started", "n_epoch_completed", "n_run_completed"], log)
    engine.n_iteration_completed_ref.attach(lambda n: log.append(("it", n)))
    engine.run()
    assert log == [
        ("n_run_started", 1), ("n_epoch_started", 1), ("it", 1), ("it", 2), ("n_epoch_completed", 1),
        ("n_epoch_started", 2), ("it", 3), ("it", 4), ("n_epoch_completed", 2), ("n_run_completed", 1),
    ]  # fmt: skip


def test_counters_are_cumulative_across_runs_and_n_epochs_is_per_run(s):
    """A second run adds n_epochs more epochs; counters never restart."""
    engine = Engine("e", identity, data=range(3), n_epochs=2)
    engine.run()
    engine.run()
    assert (engine.n_run_completed, engine.n_epoch_completed, engine.n_iteration_completed) == (2, 4, 12)
    assert engine.n_samples == 12


def test_data_restarts_each_epoch_and_epoch_length_is_inferred(s):
    """Any iterable works; its length is taken from len() or from the first exhaustion."""
    seen: list = []
    engine = Engine("e", lambda e, b: seen.append(b), data=[1, 2, 3], n_epochs=2)
    engine.run()
    assert seen == [1, 2, 3, 1, 2, 3]
    assert engine.epoch_length == 3

    class NoLen:
        def __iter__(self):
            return iter("ab")

    other = Engine("other", identity, data=NoLen(), n_epochs=2)
    assert other.epoch_length is None
    other.run()
    assert other.epoch_length == 2 and other.n_iteration_completed == 4


def test_new_data_between_runs_has_its_length_found_again(s):
    """run(new_data) or engine.data = ... between runs: a found length is found again, a given one stays."""
    seen: list = []
    engine = Engine("e", lambda e, b: seen.append(b), data=[1, 2, 3])
    engine.run()
    engine.run([4, 5, 6, 7, 8])
    assert seen == [1, 2, 3, 4, 5, 6, 7, 8] and engine.epoch_length == 5
    engine.data = ["a"]
    engine.run()
    assert seen[-1] == "a" and engine.epoch_length == 1
    given = Engine("given", lambda e, b: seen.append(b), data=[1, 2, 3], epoch_length=2)
    given.run([9, 8, 7, 6])
    assert seen[-2:] == [9, 8] and given.epoch_length == 2


def test_new_data_during_a_run_is_used_from_the_next_epoch_and_keeps_the_epoch_length(s):
    """Like ignite's set_data, for a curriculum: swapped mid-epoch or at an epoch start."""
    seen: list = []

    def step(engine, batch):
        seen.append(batch)
        if batch == 2:
            engine.data = ["x", "y", "z", "w"]  # mid-epoch: the epoch finishes on the old data

    engine = Engine("e", step, data=[1, 2, 3], n_epochs=2)
    engine.n_epoch_started_ref.attach(lambda epoch: setattr(engine, "data", ["p", "q", "r"]) if epoch == 3 else None)
    engine.run()
    engine.run(n_epochs=1)
    assert seen == [1, 2, 3, "x", "y", "z", "p", "q", "r"] and engine.epoch_length == 3


def test_epoch_length_with_an_infinite_iterator(s):
    """An infinite iterator needs epoch_length, and continues across epochs."""
    import itertools

    seen: list = []
    engine = Engine("e", lambda e, b: seen.append(b), data=itertools.count(), n_epochs=2, epoch_length=3)
    engine.run()
    assert seen == [0, 1, 2, 3, 4, 5]


def test_epoch_length_longer_than_the_data_restarts_it(s):
    seen: list = []
    Engine("e", lambda e, b: seen.append(b), data=[1, 2], epoch_length=5).run()
    assert seen == [1, 2, 1, 2, 1]


def test_data_none_calls_process_with_none(s):
    engine = Engine("e", lambda e, b: b, epoch_length=4)
    engine.run()
    assert engine.n_iteration_completed == 4 and engine.output is None


def test_batch_size_rules(s):
    """n_samples grows by the first dimension of a tensor, first element, first value; 1 for scalars."""
    torch = pytest.importorskip("torch")
    cases = [
        (torch.zeros(5, 2), 5),
        ((torch.zeros(4, 3), torch.zeros(4)), 4),
        ([torch.zeros(6, 1), torch.zeros(6)], 6),
        ({"x": torch.zeros(7, 2), "y": torch.zeros(7)}, 7),
        (torch.tensor(1.0), 1),
        (3.5, 1),
    ]
    for i, (batch, size) in enumerate(cases):
        engine = Engine(f"e{i}", identity, data=[batch, batch])
        engine.run()
        assert engine.n_samples == 2 * size, batch
    custom = Engine("custom", identity, data=[[1, 2, 3]], batch_size_fn=len)
    custom.run()
    assert custom.n_samples == 3


def test_run_on_runs_an_engine_whenever_the_ref_fires(s):
    """Several engines follow one trainer; an engine can follow an engine."""
    trainer = Engine("trainer", identity, data=[1, 2], n_epochs=4)
    every_epoch = Engine("every_epoch", identity, data=[1], run_on=trainer.n_epoch_completed_ref)
    every_other = Engine("every_other", identity, data=[1], run_on=trainer.n_epoch_completed_ref(every=2))
    chained = Engine("chained", identity, data=[1], run_on=every_other.n_run_completed_ref)
    trainer.run()
    assert every_epoch.n_run_completed == 4
    assert every_other.n_run_completed == 2
    assert chained.n_run_completed == 2


def test_followers_run_before_ordinary_callbacks_on_the_same_ref(s):
    """run_on attaches with a high priority: a callback on the same ref sees the evaluation done."""
    trainer = Engine("trainer", identity, data=[1], n_epochs=2)
    seen: list = []
    trainer.n_epoch_completed_ref.attach(lambda: seen.append(evaluator.n_run_completed))
    evaluator = Engine("evaluator", identity, data=[1], run_on=trainer.n_epoch_completed_ref)
    trainer.run()
    assert seen == [1, 2]


def test_terminate_completes_the_run_not_the_epoch(s):
    engine = Engine("e", identity, data=range(10), n_epochs=3)
    engine.n_iteration_completed_ref.attach(lambda: engine.terminate(), once=4)
    engine.run()
    assert engine.n_iteration_completed == 4
    assert (engine.n_epoch_started, engine.n_epoch_completed) == (1, 0)
    assert (engine.n_run_started, engine.n_run_completed) == (1, 1)
    engine.run()  # a later run is a new run
    assert engine.n_run_started == 2 and engine.n_epoch_completed == 3


def test_terminate_epoch_completes_the_epoch_and_goes_on(s):
    engine = Engine("e", identity, data=range(10), n_epochs=2)
    engine.n_iteration_completed_ref.attach(lambda: engine.terminate_epoch(), once=3)
    engine.run()
    assert engine.n_epoch_completed == 2
    assert engine.n_iteration_completed == 3 + 10


def test_an_exception_in_process_is_recorded_noted_and_reraised(s):
    """The same exception object comes back, with a note naming engine and iteration."""

    def process(engine, batch):
        if batch == 3:
            raise KeyError("bad batch")
        return batch

    engine = Engine("trainer", process, data=[1, 2, 3, 4])
    seen: list = []
    engine.exception_ref.attach(seen.append)
    with pytest.raises(KeyError) as info:
        engine.run()
    assert seen == [info.value] and engine.exception is info.value
    assert any("'trainer'" in note and "iteration 3" in note for note in info.value.__notes__)
    assert engine.n_iteration_completed == 2 and engine.batch == 3  # inspectable
    assert not engine.running


def test_an_exception_in_the_data_or_a_callback_is_recorded_too(s):
    def data():
        yield 1
        raise OSError("disk gone")

    engine = Engine("reader", identity, data=data())
    with pytest.raises(OSError):
        engine.run()
    assert isinstance(engine.exception, OSError)

    other = Engine("other", identity, data=[1])
    other.n_iteration_completed_ref.attach(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError) as info:
        other.run()
    assert other.exception is info.value


def test_a_nested_engine_error_carries_both_notes(s):
    trainer = Engine("trainer", identity, data=[1])
    Engine("evaluator", lambda e, b: 1 / 0, data=[1], run_on=trainer.n_epoch_completed_ref)
    with pytest.raises(ZeroDivisionError) as info:
        trainer.run()
    notes = " | ".join(info.value.__notes__)
    assert "'evaluator'" in notes and "'trainer'" in notes


def test_running_an_engine_inside_its_own_run_is_an_error(s):
    engine = Engine("e", lambda e, b: e.run(), data=[1])
    with pytest.raises(EngineError, match="already running"):
        engine.run()


def test_empty_data_is_an_error_naming_the_engine(s):
    with pytest.raises(EngineError, match="data of engine 'e' is empty"):
        Engine("e", identity, data=[]).run()
    with pytest.raises(EngineError, match="empty"):
        Engine("e2", identity, data=[], epoch_length=3).run()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_epochs": 0}, "n_epochs of engine 'e' must be a positive int, got 0"),
        ({"epoch_length": -1}, "epoch_length of engine 'e' must be a positive int, got -1"),
        ({"run_on": "trainer"}, "run_on of engine 'e' must be a ref"),
    ],
)
def test_bad_arguments_name_themselves(s, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Engine("e", identity, data=[1], **kwargs)


def test_no_data_and_no_epoch_length_is_an_error(s):
    with pytest.raises(EngineError, match="has no data"):
        Engine("e", identity).run()


def test_run_on_a_ref_of_another_state_is_refused(s):
    with State():
        elsewhere = Engine("elsewhere", identity, data=[1])
    with pytest.raises(ValueError, match="another State"):
        Engine("e", identity, data=[1], run_on=elsewhere.n_epoch_completed_ref)


def test_a_callback_attached_during_a_run_takes_effect(s):
    """The loop reloads its cached dispatchers when the wiring changes."""
    engine = Engine("e", identity, data=range(5))
    seen: list = []
    engine.n_iteration_completed_ref.attach(
        lambda: engine.output_ref.attach(seen.append), once=2
    )
    engine.run()
    assert seen == [2, 3, 4]


def snapshot_at(engine: Engine, iteration: int) -> dict:
    """The state dict taken inside the run at `iteration`, as a checkpoint would; then stop."""
    taken: dict = {}

    def take() -> None:
        taken.update(engine.state.state_dict())
        engine.terminate()

    engine.n_iteration_completed_ref.attach(take, once=iteration)
    engine.run()
    return taken


def test_load_state_dict_then_run_continues_mid_epoch(s):
    """A restored engine finishes the run it was in, skipping the processed part of the epoch."""
    seen: list = []
    engine = Engine("e", lambda e, b: seen.append(b), data=list(range(6)), n_epochs=2)
    snapshot = snapshot_at(engine, 8)
    assert snapshot["engines"]["e"]["epoch_iteration"] == 2
    assert snapshot["engines"]["e"]["n_run_completed"] == 0

    with State() as fresh:
        resumed_seen: list = []
        resumed = Engine("e", lambda e, b: resumed_seen.append(b), data=list(range(6)), n_epochs=2)
        fresh.load_state_dict(snapshot)
        resumed.run()
    assert resumed_seen == [2, 3, 4, 5]
    assert resumed.n_epoch_completed == 2 and resumed.n_iteration_completed == 12
    assert resumed.n_run_started == 1 and resumed.n_run_completed == 1


def test_resume_with_a_seeded_loader_draws_the_same_order(s):
    """The order generator's state at the epoch start is saved and restored."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    def loader():
        return DataLoader(list(range(8)), batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(3))

    full: list = []
    Engine("full", lambda e, b: full.append(b.tolist()), data=loader(), n_epochs=3).run()

    for stop in (2, 4, 6, 8):  # mid-epoch, and at an epoch boundary
        with State():
            part: list = []
            engine = Engine("e", lambda e, b, part=part: part.append(b.tolist()), data=loader(), n_epochs=3)
            snapshot = snapshot_at(engine, stop)
        with State() as fresh:
            rest: list = []
            resumed = Engine("e", lambda e, b, rest=rest: rest.append(b.tolist()), data=loader(), n_epochs=3)
            fresh.load_state_dict(snapshot)
            resumed.run()
        assert part + rest == full, stop


def test_a_retry_after_an_exception_processes_the_failed_batch_again(s):
    """run() after a failure continues the run from the failed batch, in order."""
    seen: list = []
    failed: list = []

    def process(engine, batch):
        if batch == 2 and not failed:
            failed.append(batch)
            raise RuntimeError("flaky")
        seen.append(batch)

    engine = Engine("e", process, data=range(5))
    with pytest.raises(RuntimeError):
        engine.run()
    engine.run()
    assert seen == [0, 1, 2, 3, 4] and engine.n_run_completed == 1


def test_a_retry_with_a_shuffled_loader_keeps_the_epoch_order(s):
    """The retried epoch draws the same order as the failed one, from the failed batch on."""
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    def loader():
        return DataLoader(list(range(8)), batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(5))

    full: list = []
    Engine("full", lambda e, b: full.append(b.tolist()), data=loader()).run()
    seen: list = []
    failed: list = []

    def process(engine, batch):
        if len(seen) == 2 and not failed:
            failed.append(1)
            raise RuntimeError("flaky")
        seen.append(batch.tolist())

    engine = Engine("e", process, data=loader())
    with pytest.raises(RuntimeError):
        engine.run()
    engine.run()
    assert seen == full


def test_a_distributed_sampler_is_told_the_epoch_and_a_resume_keeps_its_order(s):
    """Each epoch a DistributedSampler shuffles anew (set_epoch), and a mid-epoch resume draws the same order."""
    from torch.utils.data import DataLoader, DistributedSampler

    from statefire.frame import State

    def loader():
        sampler = DistributedSampler(list(range(40)), num_replicas=2, rank=1, shuffle=True, seed=7)
        return DataLoader(list(range(40)), batch_size=5, sampler=sampler)

    seen: list = []
    engine = Engine("trainer", lambda e, b: seen.append(b.tolist()), data=loader(), n_epochs=3)
    saved = {}
    engine.n_iteration_completed_ref.attach(lambda n: saved.update(engine.state_dict()) if n == 6 else None)
    engine.run()

    reference = DistributedSampler(list(range(40)), num_replicas=2, rank=1, shuffle=True, seed=7)
    expected = []
    for epoch in range(3):
        reference.set_epoch(epoch)
        order = list(reference)
        expected += [order[i:i + 5] for i in range(0, 20, 5)]
    assert seen == expected and expected[:4] != expected[4:8]

    with State():
        resumed: list = []
        again = Engine("trainer", lambda e, b: resumed.append(b.tolist()), data=loader(), n_epochs=3)
        again.load_state_dict(saved)
        again.run()
    assert resumed == expected[6:]
