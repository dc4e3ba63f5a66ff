"""The standard handlers as peers: early stopping, NaN termination, LR scheduling, timing.

Each is a feature wired by refs, with its state in state objects (so it is
part of `state.state_dict()` and survives a resume). They reuse ignite where
ignite's code works outside an ignite `Engine`: its param schedulers (called
with no engine), its `Timer` stopwatch and `apply_to_type`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from ignite.handlers import ParamScheduler
from ignite.handlers import Timer as _Stopwatch
from ignite.utils import apply_to_type

from statefire.frame import Counter, Feature, FilteredRef, Ref, StateObject, as_ref
from statefire.frame import check as validate  # `check` is also a method name here (EarlyStopping.check)

from ._judging import in_training, resolve_mode
from ._priorities import TIMER_START_PRIORITY, TIMER_STOP_PRIORITY
from .distributed import _any_over, process_group
from .engine import Engine

__all__ = ["EarlyStopping", "TerminateOnNan", "LRScheduler", "Timer"]


_engine = validate.instance_of(Engine, "an Engine (e.g. state.trainer)")


class EarlyStopping(Feature):
    """Terminates `trainer` when `score_ref` has not improved for `patience` evaluations.

    ignite's `EarlyStopping` needs an ignite `Engine` as trainer, so this is
    its logic (same `min_delta` / `cumulative_delta` semantics) over a ref: it runs each time `score_ref` fires,
    typically an evaluator's metric `value_ref`.

    Which way is better comes from the metric (`Loss` lower, `Accuracy`
    higher, ignite metrics by a table); for a score of unknown direction
    (an `AverageOutput`, an engine's output) `mode` is required. Only the
    scores that fire while `trainer` runs are judged: running the
    validation evaluator by hand measures without spending patience.
    In distributed training the processes decide together: when the patience
    runs out on any one, every process terminates at the same iteration (one
    all-reduce per score; none in a single process). `score_ref` must fire on
    every process at the same points, as an evaluator's metric does.

    Args:
        score_ref: the score to watch, e.g. `state.val_evaluator_accuracy.value_ref`.
        patience: evaluations without improvement before stopping.
        trainer: the engine to terminate.
        min_delta: an improvement must exceed this.
        mode: `"max"` (higher is better) or `"min"`; by default the
            direction of the watched metric (`higher_is_better`), and
            required when that is not known.
        cumulative_delta: compare with the best score, not the last one.
        manual_runs: also judge scores that fire while `trainer` is not
            running (an evaluator run by hand); by default they are ignored.
        name: the feature's name (default `early_stopping`).

    Example:
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, EarlyStopping
        >>> with State() as s:
        ...     scores = iter([0.5, 0.6, 0.6, 0.59, 0.6, 0.7])
        ...     trainer = Engine("trainer", lambda e, b: next(scores), data=[0], n_epochs=6)
        ...     stopper = EarlyStopping(trainer.output_ref, 2, trainer=trainer, mode="max")
        ...     _ = trainer.run()
        ...     print(trainer.n_epoch_started, stopper.best_score, stopper.stopped)
        4 0.6 True
    """

    category = "handlers"

    best_score = StateObject(None, doc="the best score seen")
    n_bad = Counter(doc="evaluations since the last improvement")
    stopped = StateObject(False, doc="the trainer was terminated by this handler")

    score_ref: Ref | FilteredRef
    patience: int
    trainer: Engine
    min_delta: float
    mode: str
    cumulative_delta: bool
    manual_runs: bool

    def __init__(
        self,
        score_ref: Ref | FilteredRef,
        patience: int,
        *,
        trainer: Engine,
        min_delta: float = 0.0,
        mode: str | None = None,
        cumulative_delta: bool = False,
        manual_runs: bool = False,
        name: str | None = None,
    ) -> None:
        score_ref = as_ref(score_ref, "score_ref of EarlyStopping")
        validate.positive_int(patience, "patience", "EarlyStopping")
        if not isinstance(min_delta, numbers.Real) or min_delta < 0:
            raise ValueError(f"min_delta of EarlyStopping must be a non-negative number, got {min_delta!r}")
        if mode not in ("max", "min", None):
            raise ValueError(
                f"mode of EarlyStopping must be 'max' or 'min', got {mode!r} (or leave it out: the metric's direction)"
            )
        _engine(trainer, "trainer", "EarlyStopping")
        mode = resolve_mode(mode, score_ref, "EarlyStopping")
        super().__init__(name=name)
        validate.same_state(self)(score_ref, "score_ref", f"EarlyStopping {self.name!r}")
        validate.same_state(self)(trainer, "trainer", f"EarlyStopping {self.name!r}")
        self.score_ref = score_ref
        self.patience = patience
        self.trainer = trainer
        self.min_delta = float(min_delta)
        self.mode = mode
        self.cumulative_delta = cumulative_delta
        self.manual_runs = bool(manual_runs)
        score_ref.attach(self._scored)

    def _scored(self, value: Any) -> None:
        # A score of an evaluation run by hand (the trainer idle) is a measurement, not a verdict.
        if self.manual_runs or in_training(self.score_ref, self.trainer):
            self.check(value)

    def check(self, value: Any) -> None:
        """Take one score; terminate the trainer once patience runs out."""
        try:
            score = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"early stopping {self.name!r} needs a number from {self.score_ref.path}, got {value!r}"
            ) from None
        sign = 1.0 if self.mode == "max" else -1.0
        score *= sign  # compare as "higher is better", as ignite does
        best = None if self.best_score is None else sign * self.best_score
        if best is None or score > best + self.min_delta:
            self.n_bad = 0
            self.best_score = sign * score
        else:
            if not self.cumulative_delta and score > best:
                self.best_score = sign * score  # a small gain moves the reference, not the patience
            self.n_bad += 1
        stop = self.n_bad >= self.patience
        group = process_group()
        if group is not None:  # every process stops at the same iteration, or none does
            stop = _any_over(group, stop)
        if stop:
            self.stopped = True
            self.trainer.terminate()


class TerminateOnNan(Feature):
    """Terminates an engine when the value of `ref` holds a NaN or an infinity.

    The value may be a number, a tensor, or a tuple/list/dict of them
    (walked with ignite's `apply_to_type`, as ignite's `TerminateOnNan`
    does). Checking a tensor reads it back from the device, so on a GPU use
    `ref(every=N)` to check every N-th value only.

    In distributed training the processes decide together: a non-finite value
    on any one terminates every process at the same iteration, so none waits
    forever in a collective the others left. That costs one all-reduce of one
    number per check (none in a single process); `ref(every=N)` divides it by N.

    Args:
        ref: what to check, e.g. `trainer.output_ref` (the loss).
        engine: the engine to terminate (default: the owner of `ref`).
        name: the feature's name (default `terminate_on_nan`).

    Example:
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, TerminateOnNan
        >>> with State() as s:
        ...     trainer = Engine("trainer", lambda e, b: 1 / b if b else float("inf"), data=[4, 2, 0, 1])
        ...     guard = TerminateOnNan(trainer.output_ref)
        ...     _ = trainer.run()
        ...     print(trainer.n_iteration_completed, guard.terminated_at)
        3 3
    """

    category = "handlers"

    terminated_at = StateObject(None, doc="the engine's n_iteration_started when a non-finite value was seen")

    def __init__(self, ref: Ref | FilteredRef, *, engine: Engine | None = None, name: str | None = None) -> None:
        ref = as_ref(ref, "ref of TerminateOnNan")
        if engine is None:
            if not isinstance(ref.owner, Engine):
                raise TypeError(
                    f"TerminateOnNan on {ref.path} needs engine=...: the ref's owner is not an Engine"
                )
            engine = ref.owner
        _engine(engine, "engine", "TerminateOnNan")
        super().__init__(name=name)
        validate.same_state(self)(ref, "ref", f"TerminateOnNan {self.name!r}")
        validate.same_state(self)(engine, "engine", f"TerminateOnNan {self.name!r}")
        self.ref = ref
        self.engine = engine
        ref.attach(self.check)

    def check(self, value: Any) -> None:
        """Terminate the engine if `value` holds a non-finite number."""
        stop = not _all_finite(value)
        group = process_group()
        if group is not None:  # every process stops at the same iteration, or none does
            stop = _any_over(group, stop)
        if stop:
            self.terminated_at = self.engine.n_iteration_started
            self.engine.terminate()


def _all_finite(value: Any) -> bool:
    """Whether every number in `value` (a number, a tensor, or a collection of them, as ignite walks it) is finite."""
    finite = [True]

    def look(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            if x.is_floating_point() or x.is_complex():
                finite[0] &= bool(torch.isfinite(x).all())
        elif not math.isfinite(abs(x)):
            finite[0] = False
        return x

    apply_to_type(value, (numbers.Number, torch.Tensor), look)
    return finite[0]


class LRScheduler(Feature):
    """Steps a torch LR scheduler or an ignite param scheduler each time `trigger` fires.

    The current learning rate is the `lr` state object (chart it, or attach
    to `lr_ref`). Torch schedulers write the optimizer's `param_groups`
    directly; when the optimizer is an `Optimizer` component in the state,
    its `lr` state object is kept in step and fires too.

    Args:
        scheduler: a `torch.optim.lr_scheduler.LRScheduler` (e.g. `StepLR`),
            or an ignite `ParamScheduler` (`LinearCyclicalScheduler`,
            `PiecewiseLinear`, `ignite.handlers.LRScheduler`, ...).
        trigger: when to step, e.g. `trainer.n_iteration_completed_ref` or
            `trainer.n_epoch_completed_ref` for torch schedulers, and
            `trainer.n_iteration_started_ref` for ignite's (they set the
            value the coming iteration uses). A `ReduceLROnPlateau` steps
            with the value of its trigger: give it the metric to watch,
            e.g. `state.val_evaluator_loss.value_ref`.
        name: the feature's name (default `lr_scheduler`).

    Example:
        >>> import torch
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, LRScheduler, Optimizer
        >>> with State() as s:
        ...     sgd = Optimizer(torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=1.0))
        ...     trainer = Engine("trainer", lambda e, b: sgd.optimizer.step(), data=range(3), n_epochs=2)
        ...     step = torch.optim.lr_scheduler.StepLR(sgd.optimizer, step_size=1, gamma=0.5)
        ...     scheduler = LRScheduler(step, trigger=trainer.n_epoch_completed_ref)
        ...     _ = trainer.run()
        ...     print(scheduler.lr, sgd.lr)
        0.25 0.25
    """

    category = "handlers"

    lr = StateObject(None, doc="the learning rate of the first param group", persist=False)
    extra_state: ClassVar[dict[str, str]] = {"scheduler": "scheduler"}

    def __init__(self, scheduler: Any, *, trigger: Ref | FilteredRef, name: str | None = None) -> None:
        trigger = as_ref(trigger, "trigger of LRScheduler")
        if isinstance(scheduler, ParamScheduler):
            self._step = lambda value: scheduler(None)
        elif isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self._step = lambda value: scheduler.step(_plateau_metric(value, trigger))
        elif isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler):
            self._step = lambda value: scheduler.step()
        else:
            raise TypeError(
                "scheduler of LRScheduler must be a torch.optim.lr_scheduler.LRScheduler or an "
                f"ignite ParamScheduler, got {type(scheduler).__name__}: {scheduler!r}"
            )
        super().__init__(name=name)
        validate.same_state(self)(trigger, "trigger", f"LRScheduler {self.name!r}")
        self.scheduler = scheduler
        self.trigger = trigger
        self.optimizer = scheduler.optimizer
        self.lr_ref.set(self._current_lr(), fire=False)  # mirrors the optimizer: not an event
        trigger.attach(self._triggered)

    def _current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def _component(self) -> Any:
        state = self.state
        for feature in [] if state is None else state.components:
            if getattr(feature, "optimizer", None) is self.optimizer and "lr" in type(feature).state_objects():
                return feature
        return None

    def _triggered(self, value: Any) -> None:
        self.step(value)

    def step(self, value: Any = None) -> None:
        """Step the scheduler (a plateau scheduler with `value`, the trigger's), then publish the new lr."""
        self._step(value)
        lr = self._current_lr()
        component = self._component()
        if component is not None:
            if len({group["lr"] for group in self.optimizer.param_groups}) == 1:
                component.lr = lr  # the same value in every group: the set changes nothing but fires
            else:
                _ = component.lr  # groups differ: reading refreshes the shown value without overwriting them
        self.lr = lr

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        super().load_state_dict(state_dict, strict)
        self.lr_ref.set(self._current_lr(), fire=False)  # mirrors the restored optimizer: not an event


def _plateau_metric(value: Any, trigger: Ref | FilteredRef) -> float:
    """The number a `ReduceLROnPlateau` watches: the trigger's value."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"a ReduceLROnPlateau steps with the value of its trigger, {trigger.path}, which holds "
            f"{value!r}; trigger it with the metric to watch, e.g. state.val_evaluator_loss.value_ref"
        ) from None


class Timer(Feature):
    """Times an engine's epochs: the last epoch's duration and the total, in seconds.

    The total is cumulative over the engine's life and part of the state
    dict, so it keeps growing across a resume. Evaluators run on the
    trainer's epoch completion are not counted: the clock stops first.
    Uses ignite's `Timer` as the stopwatch.

    Args:
        engine: the engine to time.
        name: the feature's name (default `<engine>_timer`).

    Example:
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, Timer
        >>> with State() as s:
        ...     trainer = Engine("trainer", lambda e, b: sum(range(1000)), data=range(10), n_epochs=2)
        ...     timer = Timer(trainer)
        ...     _ = trainer.run()
        ...     print(timer.name, timer.n_epochs_timed, 0 < timer.epoch_time <= timer.total_time)
        trainer_timer 2 True
    """

    category = "handlers"

    epoch_time = StateObject(None, doc="seconds the last completed epoch took")
    iteration_time = StateObject(None, doc="mean seconds per iteration in the last completed epoch")
    total_time = StateObject(0.0, doc="seconds of all timed epochs")
    n_epochs_timed = Counter(doc="epochs timed")

    def __init__(self, engine: Engine, *, name: str | None = None) -> None:
        _engine(engine, "engine", "Timer")
        super().__init__(name=name or f"{engine.name}_timer")
        validate.same_state(self)(engine, "engine", f"Timer {self.name!r}")
        self.engine = engine
        self._clock: _Stopwatch | None = None
        self._first_iteration = 0
        # Start last (just before the loop) and stop first (before evaluators run).
        engine.n_epoch_started_ref.attach(self._start, priority=TIMER_START_PRIORITY)
        engine.n_iteration_completed_ref.attach(self._resume_clock)
        engine.n_epoch_completed_ref.attach(self._stop, priority=TIMER_STOP_PRIORITY)

    def _start(self) -> None:
        self._clock = _Stopwatch()
        self._first_iteration = self.engine.n_iteration_completed

    def _resume_clock(self) -> None:
        if self._clock is None:  # a run resumed mid-epoch had no epoch start: time the rest
            self._start()
            self._first_iteration -= 1

    def _stop(self) -> None:
        if self._clock is None:
            return
        elapsed = self._clock.value()
        iterations = max(1, self.engine.n_iteration_completed - self._first_iteration)
        self._clock = None
        self.total_time = self.total_time + elapsed
        self.iteration_time = elapsed / iterations
        self.epoch_time = elapsed
        self.n_epochs_timed += 1
