"""The standard handlers: early stopping, NaN termination, LR scheduling, timing, progress bars."""

from __future__ import annotations

import io
import math

import pytest
import torch
from ignite.handlers import LinearCyclicalScheduler

from statefire.features import (
    EarlyStopping,
    Engine,
    LRScheduler,
    Optimizer,
    ProgressBar,
    SupervisedEvaluator,
    SupervisedTrainer,
    TerminateOnNan,
    Timer,
)
from statefire.frame import State


@pytest.fixture(scope="module")
def digits(digit_tensors):
    x, y = digit_tensors
    return (x[:256], y[:256]), (x[1500:1628], y[1500:1628])


def _pipeline(digits, lr=0.1, n_epochs=5):
    torch.manual_seed(0)
    (x, y), (xv, yv) = digits
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xv, yv), batch_size=128)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, train, n_epochs=n_epochs)
    evaluator = SupervisedEvaluator(
        model, val, name="val_evaluator", run_on=trainer.n_epoch_completed_ref, metrics=["accuracy", "loss"],
        loss_fn=torch.nn.functional.cross_entropy,
    )  # fmt: skip
    return trainer, evaluator


# -- EarlyStopping -------------------------------------------------------------


def test_early_stopping_stops_real_training_when_val_loss_stops_improving(s, digits):
    """A learning rate of 0 never improves the validation loss: training stops after `patience` evaluations."""
    trainer, _ = _pipeline(digits, lr=0.0, n_epochs=10)
    stopper = EarlyStopping(s.val_evaluator_loss.value_ref, 2, trainer=trainer, mode="min")
    trainer.run()
    assert trainer.n_epoch_completed == 3 and stopper.stopped and stopper.n_bad == 2
    assert not trainer.run_in_progress  # a terminated run completes


def test_early_stopping_keeps_going_while_the_score_improves(s, digits):
    trainer, _ = _pipeline(digits, lr=0.1, n_epochs=4)
    stopper = EarlyStopping(s.val_evaluator_loss.value_ref, 1, trainer=trainer, mode="min")
    trainer.run()
    assert trainer.n_epoch_completed == 4 and not stopper.stopped
    assert stopper.best_score == s.val_evaluator_loss.value


@pytest.mark.parametrize(
    ("cumulative", "scores", "stopped_after"),
    [(False, [1.0, 1.08, 1.16, 1.24], 3), (True, [1.0, 1.08, 1.16, 1.24], None)],
)
def test_early_stopping_min_delta_as_ignite(s, cumulative, scores, stopped_after):
    """Gains below min_delta count as no improvement; without cumulative_delta they still move the
    reference (so slow steady gains stop training), with it they add up against the best, as in ignite."""
    values = iter(scores)
    trainer = Engine("trainer", lambda e, b: next(values), data=[0], n_epochs=len(scores))
    stopper = EarlyStopping(
        trainer.output_ref, 2, trainer=trainer, mode="max", min_delta=0.1, cumulative_delta=cumulative
    )
    trainer.run()
    assert stopper.stopped == (stopped_after is not None)
    assert trainer.n_epoch_started == (stopped_after or len(scores))


def test_early_stopping_state_survives_a_state_dict_round_trip(s):
    trainer = Engine("trainer", lambda e, b: b, data=[0])
    stopper = EarlyStopping(trainer.output_ref, 3, trainer=trainer, mode="max")
    for value in (0.5, 0.4, 0.3):
        stopper.check(value)
    saved = s.state_dict()
    assert saved["handlers"]["early_stopping"] == {"best_score": 0.5, "n_bad": 2, "stopped": False}
    with State():
        trainer2 = Engine("trainer", lambda e, b: b, data=[0])
        again = EarlyStopping(trainer2.output_ref, 3, trainer=trainer2, mode="max")
        State.current().load_state_dict(saved)
        again.check(0.2)
        assert again.stopped


# -- TerminateOnNan --------------------------------------------------------------


def test_terminate_on_nan_stops_diverging_training(s, digits):
    """A huge learning rate makes the loss overflow: the run terminates at that iteration."""
    trainer, _ = _pipeline(digits, lr=1e12, n_epochs=5)
    guard = TerminateOnNan(trainer.output_ref)
    trainer.run()
    assert guard.terminated_at is not None
    assert trainer.n_iteration_completed == guard.terminated_at < 20
    assert not math.isfinite(float(trainer.output))


@pytest.mark.parametrize(
    "value", [float("nan"), torch.tensor([1.0, float("inf")]), (1.0, {"a": torch.tensor(float("nan"))})]
)
def test_terminate_on_nan_looks_inside_numbers_tensors_and_containers(s, value):
    engine = Engine("engine", lambda e, b: value if b == 2 else 0.0, data=[1, 2, 3])
    TerminateOnNan(engine.output_ref)
    engine.run()
    assert engine.n_iteration_completed == 2


def test_terminate_on_nan_ignores_integer_tensors(s):
    engine = Engine("engine", lambda e, b: torch.tensor([b]), data=[1, 2, 3])
    TerminateOnNan(engine.output_ref)
    engine.run()
    assert engine.n_iteration_completed == 3


# -- LRScheduler -------------------------------------------------------------------


def test_lr_scheduler_with_a_torch_scheduler_keeps_the_optimizer_component_in_step(s, digits):
    trainer, _ = _pipeline(digits, lr=0.1, n_epochs=3)
    optimizer = trainer.optimizer.optimizer
    seen_component, seen_scheduler = [], []
    s.sgd.lr_ref.attach(seen_component.append)
    scheduler = LRScheduler(
        torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5), trigger=trainer.n_epoch_completed_ref
    )
    scheduler.lr_ref.attach(seen_scheduler.append)
    trainer.run()
    assert seen_scheduler == pytest.approx([0.05, 0.025, 0.0125])
    assert seen_component == seen_scheduler
    assert s.sgd.lr == optimizer.param_groups[0]["lr"] == scheduler.lr


def test_reduce_lr_on_plateau_steps_with_the_metric_that_triggers_it(s, digits):
    """ReduceLROnPlateau watches the validation loss: the same lrs as torch's scheduler fed those losses by hand."""
    trainer, _ = _pipeline(digits, lr=1e-9, n_epochs=6)  # a learning rate this small never improves the loss
    optimizer = trainer.optimizer.optimizer
    loss_ref = s.val_evaluator_loss.value_ref
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=1, eps=0)
    scheduler = LRScheduler(plateau, trigger=loss_ref)
    losses, lrs = [], []
    loss_ref.attach(losses.append)
    scheduler.lr_ref.attach(lrs.append)
    trainer.run()

    by_hand = torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1e-9)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(by_hand, mode="min", factor=0.5, patience=1, eps=0)
    expected = []
    for loss in losses:
        reference.step(loss)
        expected.append(by_hand.param_groups[0]["lr"])
    assert len(lrs) == 6 and lrs == pytest.approx(expected, rel=1e-12)
    assert lrs[-1] == pytest.approx(2.5e-10) and s.sgd.lr == lrs[-1]


def test_reduce_lr_on_plateau_needs_a_number_from_its_trigger(s):
    sgd = Optimizer(torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1))
    engine = Engine("trainer", lambda e, b: "text", data=range(2))
    LRScheduler(torch.optim.lr_scheduler.ReduceLROnPlateau(sgd.optimizer), trigger=engine.output_ref)
    with pytest.raises(TypeError, match=r"a ReduceLROnPlateau steps with the value of its trigger, "
                                        r"engines\.trainer\.output, which holds 'text'"):
        engine.run()


def test_lr_scheduler_with_an_ignite_param_scheduler(s):
    module = torch.nn.Linear(2, 1)
    sgd = Optimizer(torch.optim.SGD(module.parameters(), lr=0.0))
    engine = Engine("trainer", lambda e, b: b, data=range(4))
    cyclic = LinearCyclicalScheduler(sgd.optimizer, "lr", start_value=0.0, end_value=1.0, cycle_size=4)
    scheduler = LRScheduler(cyclic, trigger=engine.n_iteration_started_ref)
    lrs = []
    engine.n_iteration_completed_ref.attach(lambda: lrs.append(sgd.lr))
    engine.run()
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 0.5])
    assert scheduler.lr == sgd.lr == 0.5


def test_lr_scheduler_state_is_restored(s):
    module = torch.nn.Linear(2, 1)
    sgd = Optimizer(torch.optim.SGD(module.parameters(), lr=1.0))
    engine = Engine("trainer", lambda e, b: sgd.optimizer.step(), data=range(2), n_epochs=3)
    LRScheduler(torch.optim.lr_scheduler.StepLR(sgd.optimizer, 1, gamma=0.1), trigger=engine.n_epoch_completed_ref)
    engine.run()
    saved = s.state_dict()
    assert saved["handlers"]["lr_scheduler"]["scheduler"]["last_epoch"] == 3
    with State() as other:
        sgd2 = Optimizer(torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0))
        Engine("trainer", lambda e, b: b, data=range(2), n_epochs=3)
        scheduler2 = LRScheduler(
            torch.optim.lr_scheduler.StepLR(sgd2.optimizer, 1, gamma=0.1), trigger=other.trainer.n_epoch_completed_ref
        )
        other.load_state_dict(saved)
        assert scheduler2.scheduler.last_epoch == 3
        assert scheduler2.lr == pytest.approx(1e-3) == sgd2.lr


def test_lr_scheduler_rejects_what_is_not_a_scheduler(s):
    engine = Engine("trainer", lambda e, b: b, data=[1])
    with pytest.raises(TypeError, match="scheduler of LRScheduler must be .* got float"):
        LRScheduler(0.1, trigger=engine.n_epoch_completed_ref)


# -- Timer ---------------------------------------------------------------------------


def test_timer_times_epochs_without_the_evaluation(s, digits):
    trainer, evaluator = _pipeline(digits, n_epochs=2)
    timer = Timer(trainer)
    eval_timer = Timer(evaluator)
    trainer.run()
    assert timer.n_epochs_timed == 2 and eval_timer.n_epochs_timed == 2
    assert 0 < timer.epoch_time <= timer.total_time
    assert timer.iteration_time == pytest.approx(timer.epoch_time / 4)
    assert s.state_dict()["handlers"]["trainer_timer"]["total_time"] == timer.total_time


# -- ProgressBar ------------------------------------------------------------------------


def test_progress_bar_shows_the_given_metrics(s, digits):
    trainer, _ = _pipeline(digits, n_epochs=2)
    out = io.StringIO()
    ProgressBar(trainer, metrics=[trainer.output_ref, s.val_evaluator_accuracy], force=True, file=out)
    trainer.run()
    text = out.getvalue()
    assert "trainer epoch 1" in text and "trainer epoch 2" in text and "4/4" in text
    assert "output=" in text and "val_evaluator_accuracy=" in text


def test_progress_bar_is_silent_when_not_a_terminal(s):
    out = io.StringIO()  # not a TTY
    engine = Engine("trainer", lambda e, b: b, data=range(5))
    ProgressBar(engine, metrics={"loss": engine.output_ref}, file=out)
    engine.run()
    assert out.getvalue() == ""


def test_progress_bar_resumed_mid_epoch_starts_at_the_restored_iteration(s):
    engine = Engine("trainer", lambda e, b: b, data=range(6), epoch_length=6)
    engine.n_iteration_completed_ref.attach(lambda n: engine.terminate() if n == 2 else None)
    engine.run()
    saved = s.state_dict()
    saved["engines"]["trainer"].update(n_run_completed=0, in_epoch=True)  # as saved mid-epoch by a checkpoint
    with State() as other:
        resumed = Engine("trainer", lambda e, b: b, data=range(6), epoch_length=6)
        out = io.StringIO()
        ProgressBar(resumed, force=True, file=out)
        other.load_state_dict(saved)
        resumed.run()
    assert "6/6" in out.getvalue() and "1/6" not in out.getvalue()
