"""Nothing is kept alive behind the user's back: after many short runs, and after
callbacks are attached and removed over and over, `gc` collects every engine,
metric, handler and callback owner once the user lets go of it."""

from __future__ import annotations

import contextlib
import gc
import io
import weakref

import torch

from statefire.features import (
    AverageOutput,
    Checkpoint,
    EarlyStopping,
    Engine,
    ProgressBar,
    SupervisedEvaluator,
    SupervisedTrainer,
    TerminateOnNan,
    Timer,
)
from statefire.features import checkpoint as checkpoint_module
from statefire.frame import State


class Listener:
    """A callback owner: its bound methods are attached to refs."""

    def __init__(self) -> None:
        self.seen = 0

    def on_value(self, value) -> None:
        self.seen += 1


def _alive(refs: list[weakref.ref]) -> list[object]:
    gc.collect()
    return [r() for r in refs if r() is not None]


def _short_experiment(tmp_path, index: int, refs: list[weakref.ref]) -> None:
    """One complete little experiment: trainer, evaluator, metrics, handlers, a checkpoint, a resume."""
    with State() as s:
        torch.manual_seed(index)
        x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
        data = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
        model = torch.nn.Linear(4, 3)
        trainer = SupervisedTrainer(
            model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.cross_entropy, data, n_epochs=2
        )
        evaluator = SupervisedEvaluator(
            model, data, name="val_evaluator", run_on=trainer.n_epoch_completed_ref, metrics=["accuracy"]
        )
        average = AverageOutput(engine=trainer)
        stopper = EarlyStopping(s.val_evaluator_accuracy.value_ref, 5, trainer=trainer)
        guard = TerminateOnNan(trainer.output_ref)
        timer = Timer(trainer)
        bar = ProgressBar(trainer, metrics=[average], file=io.StringIO())
        checkpoint = Checkpoint(tmp_path / str(index), trigger=trainer.n_iteration_completed_ref(every=3))
        listener = Listener()
        trainer.n_iteration_completed_ref.attach(listener.on_value)
        trainer.run()
        Checkpoint.load(Checkpoint.latest(tmp_path / str(index)))
        trainer.run()
        for obj in (trainer, evaluator, average, stopper, guard, timer, bar, checkpoint, listener, model):
            refs.append(weakref.ref(obj))
        refs.append(weakref.ref(s))


def test_many_short_experiments_leave_nothing_alive(tmp_path):
    refs: list[weakref.ref] = []
    for index in range(15):
        _short_experiment(tmp_path, index, refs)
    assert len(refs) == 15 * 11
    assert _alive(refs) == []
    assert len(checkpoint_module._RESUMED) == 0  # the resume records went with their states


def test_attaching_and_removing_callbacks_repeatedly_keeps_no_owner(tmp_path):
    """On one long-lived engine: handles removed, `with` blocks left, owners dropped without removal."""
    with State():
        engine = Engine("trainer", lambda e, b: b, data=range(3))
        refs: list[weakref.ref] = []
        for _ in range(200):
            kept, scoped, dropped = Listener(), Listener(), Listener()
            handle = engine.n_iteration_completed_ref.attach(kept.on_value, every=2)
            with engine.output_ref.attach(scoped.on_value):
                engine.n_epoch_completed_ref.attach(dropped.on_value)  # never removed: held weakly
                engine.run()
            handle.remove()
            closure_owner = Listener()
            closure_handle = engine.n_samples_ref.attach(lambda v, owner=closure_owner: owner.on_value(v))
            engine.run()
            closure_handle.remove()
            refs += [weakref.ref(o) for o in (kept, scoped, dropped, closure_owner)]
            assert kept.seen and scoped.seen == 3 and dropped.seen == 2
            del kept, scoped, dropped, closure_owner, handle, closure_handle
        assert _alive(refs) == []
        assert all(not ref.handles for ref in engine.refs.values())  # no dead handle piles up


def test_a_removed_feature_is_collected_while_its_engine_lives_on():
    with State() as s:
        trainer = Engine("trainer", lambda e, b: float(b), data=range(4), n_epochs=2)
        refs = []
        for index in range(50):
            metric = AverageOutput(engine=trainer, name=f"average_{index}")
            stopper = EarlyStopping(metric.value_ref, 3, trainer=trainer, mode="max", name=f"stopper_{index}")
            evaluator = Engine(f"evaluator_{index}", lambda e, b: b, data=[1], run_on=trainer.n_epoch_completed_ref)
            trainer.run()
            refs += [weakref.ref(metric), weakref.ref(stopper), weakref.ref(evaluator)]
            for feature in (stopper, metric, evaluator):
                s.remove(feature)
            del metric, stopper, evaluator, feature
        assert _alive(refs) == []
        assert [f.name for f in s.features] == ["trainer"]
        assert trainer.n_epoch_completed_ref.handles == ()


def test_an_engine_that_failed_is_collected_with_its_state():
    """The exception kept for inspection (with its traceback) does not pin the engine once the state goes."""
    refs = []
    for _ in range(20):
        with State() as s:
            engine = Engine("trainer", lambda e, b: 1 / b, data=[1, 0])
            with contextlib.suppress(ZeroDivisionError):
                engine.run()
            assert isinstance(engine.exception, ZeroDivisionError)
            refs += [weakref.ref(engine), weakref.ref(s)]
        del engine, s
    assert _alive(refs) == []
