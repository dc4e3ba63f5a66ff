"""The Engine: runs `process(engine, batch)` over data, and every step is an event.

Torch-free: it works on any iterable, and finds a data loader's order
generator by duck typing (`get_state` / `set_state`) for exact resume.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from statefire.frame import Counter, Feature, FilteredRef, Param, Ref, StateObject, as_ref, check, wiring
from statefire.frame.errors import FrameError, add_note

from ._priorities import RUN_ON_PRIORITY

__all__ = ["Engine", "RUN_ON_PRIORITY", "EngineError", "ORDER_GENERATOR_FINDERS", "engine_behind"]


_STEP_NAMES = ("batch", "n_iteration_started", "output", "n_samples", "epoch_iteration", "n_iteration_completed")


class EngineError(FrameError, RuntimeError):
    """An engine was used in a way it cannot run (already running, empty data, ...)."""


class Engine(Feature):
    """Runs `process(engine, batch)` over `data` for `n_epochs` epochs per run.

    Every step is a state object, so attaching to a ref is handling an event:
    `engine.n_iteration_completed_ref.attach(fn, every=100)`. Counters are
    cumulative over the engine's life; an evaluator's `n_epoch_completed`
    counts its evaluations.

    The loop, each `set` firing the callbacks attached to that object (here
    in the order the built-in peers run on it, higher priority first; see
    `features/_priorities.py`)::

        run(data, n_epochs, epoch_length):
            if no run is in progress:              # else: a resumed run goes on
                set run_first_epoch, in_epoch=False, epoch_iteration=0 (silently)
                set n_run_started += 1
            while not terminated and epochs of this run < n_epochs:
                if not in_epoch:                   # a resumed epoch does not start again
                    set in_epoch=True, epoch_iteration=0
                    set n_epoch_started += 1       # Metric resets (50), yours (0), Timer starts (-101)
                for batch in data (epoch_length batches, the data restarted if it runs out):
                    set batch
                    set n_iteration_started += 1
                    set output = process(engine, batch)    # Metric updates (50), yours (0)
                    set n_samples += batch size
                    set epoch_iteration += 1
                    set n_iteration_completed += 1         # yours (0), Checkpoint(every=N) last
                    stop here on terminate() or terminate_epoch()
                if terminated: break
                end the epoch (a trainer steps on a partial accumulation window)
                set in_epoch=False
                set n_epoch_completed += 1         # Timer stops (101), engines run_on it (100),
                                                   # Metric values (50), yours and charts (0),
                                                   # Checkpoint (-2**62)
            set in_epoch=False
            set n_run_completed += 1               # yours (0), comparison layout (-999),
                                                   # TensorBoard flush (-1000)
        on any exception: set exception = error (then it propagates); the
        next run() resumes from the batch that did not complete.

    Args:
        name: the engine's name (`state.<name>`).
        process: `process(engine, batch) -> output`, ignite's signature.
        data: any iterable, restarted each epoch; None with `epoch_length`
            calls `process` with `batch=None`.
        n_epochs: epochs per run.
        epoch_length: iterations per epoch; inferred from `len(data)` or from
            the first exhaustion when not given.
        run_on: a ref (or filtered ref) whose every firing runs this engine.
        batch_size_fn: `fn(batch) -> int` for `n_samples` when the default
            rule (first dimension of the first tensor) does not fit.

    Example:
        >>> from statefire.frame import State
        >>> from statefire.features import Engine
        >>> with State() as s:
        ...     trainer = Engine("trainer", lambda engine, batch: sum(batch), data=[[1, 2], [3, 4]], n_epochs=2)
        ...     handle = trainer.n_epoch_completed_ref.attach(
        ...         lambda: print("epoch", trainer.n_epoch_completed, trainer.output)
        ...     )
        ...     _ = trainer.run()
        epoch 1 7
        epoch 2 7
    """

    category = "engines"

    n_run_started = Counter(doc="runs started")
    n_run_completed = Counter(doc="runs completed (a terminated run completes too)")
    n_epoch_started = Counter(doc="epochs started, over all runs")
    n_epoch_completed = Counter(doc="epochs completed, over all runs")
    n_iteration_started = Counter(doc="iterations started, over all runs")
    n_iteration_completed = Counter(doc="iterations completed, over all runs")
    n_samples = Counter(doc="samples processed, over all runs")
    batch = StateObject(persist=False, doc="the current batch")
    output = StateObject(persist=False, doc="what process returned for the current batch")
    exception = StateObject(persist=False, doc="the exception that stopped the engine")
    n_epochs = Param(1, doc="epochs per run")
    epoch_length: Param[int | None] = Param(None, doc="iterations per epoch (None: inferred from the data)")
    epoch_iteration = Counter(doc="iterations completed in the current epoch (for resume)", hidden=True)
    run_first_epoch = Counter(doc="n_epoch_completed when the current run started (for resume)", hidden=True)
    in_epoch = StateObject(False, doc="an epoch started and not completed (for resume)", hidden=True)

    def __init__(
        self,
        name: str,
        process: Callable[[Engine, Any], Any],
        data: Iterable[Any] | None = None,
        *,
        n_epochs: int = 1,
        epoch_length: int | None = None,
        run_on: Ref | FilteredRef | None = None,
        batch_size_fn: Callable[[Any], int] | None = None,
    ) -> None:
        if not callable(process):
            raise TypeError(f"process of engine {name!r} must be callable as process(engine, batch), got {process!r}")
        if batch_size_fn is not None and not callable(batch_size_fn):
            raise TypeError(
                f"batch_size_fn of engine {name!r} must be callable as batch_size_fn(batch) -> int, "
                f"got {type(batch_size_fn).__name__}: {batch_size_fn!r}; leave it out to count the first "
                "dimension of the batch's first tensor"
            )
        _check_data(data, name)
        super().__init__(name=name)
        self.process = process
        self._inferred_length: int | None = None  # the epoch length last found from the data
        self._iterator: Iterator[Any] | None = None
        self._failed = False  # the last run stopped on an exception in this process
        self.data = data
        self.n_epochs = check.positive_int(n_epochs, "n_epochs", f"engine {name!r}")
        self.epoch_length = check.optional(check.positive_int)(epoch_length, "epoch_length", f"engine {name!r}")
        self.batch_size_fn = batch_size_fn
        self.run_on: Ref | FilteredRef | None = None
        self._running = False
        self._terminate = False
        self._stop_epoch = False  # set by terminate() and terminate_epoch(): one check per iteration
        self._data_state: Any = None  # the order generator's state at the start of the epoch
        self._restore_data_state: Any = None
        # (batch, output, step) of an iteration whose process returned but whose events raised:
        # a retry finishes it from the step after `step` rather than running process again.
        self._unfinished: tuple[Any, Any, int] | None = None
        if run_on is not None:
            self.follow(run_on)

    # -- wiring -----------------------------------------------------------
    def follow(self, ref: Ref | FilteredRef) -> None:
        """Run this engine whenever `ref` fires (what `run_on=` does)."""
        ref = as_ref(ref, f"run_on of engine {self.name!r}")
        check.same_state(self)(ref, "run_on", f"engine {self.name!r}")
        self.run_on = ref
        ref.attach(self._run_on_fire, priority=RUN_ON_PRIORITY, kind="run_on")

    def _run_on_fire(self) -> None:
        self.run()

    def _abandon_run(self) -> None:
        """End a run that stopped on an exception, silently, so the next `run()` starts afresh.

        `n_run_completed` counts it (runs ended), without an event: nothing completed.
        """
        values = self.__dict__
        values["n_run_completed"] = values["n_run_started"]
        values["in_epoch"] = False
        self._iterator = None
        self._restore_data_state = None
        self._unfinished = None
        self._failed = False

    @property
    def data(self) -> Iterable[Any] | None:
        """The batches: any iterable, restarted each epoch.

        New data set between runs has its epoch length found again (unless
        it was given). Set during a run (ignite's `set_data`, e.g. for a
        curriculum), it is used from the next epoch start on, and the epoch
        length stays: set it on `n_epoch_started` to use it at once.
        """
        return self._data

    @data.setter
    def data(self, data: Iterable[Any] | None) -> None:
        _check_data(data, self.name)
        self._data = data
        self._iterator = None
        if not self.run_in_progress and self.epoch_length is not None and self.epoch_length == self._inferred_length:
            self.epoch_length = None

    # -- control ----------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while `run()` is executing."""
        return self._running

    @property
    def run_in_progress(self) -> bool:
        """A run started and not completed (executing, or stopped by an error or a checkpoint)."""
        return self.n_run_started > self.n_run_completed

    def terminate(self) -> None:
        """Stop after the current iteration; the epoch does not complete, the run does."""
        self._terminate = self._stop_epoch = True

    def terminate_epoch(self) -> None:
        """Complete the current epoch after the current iteration, then go on."""
        self._stop_epoch = True

    def run(
        self,
        data: Iterable[Any] | None = None,
        *,
        n_epochs: int | None = None,
        epoch_length: int | None = None,
        max_epochs: None = None,
    ) -> Engine:
        """Run `n_epochs` epochs, or continue a run that was stopped (e.g. restored from a checkpoint).

        After an exception, `run()` again retries: the iteration that did not
        complete is finished, and `process` never runs twice on one batch (see
        "Exceptions" in the engines guide).

        Args:
            data: new data for this run (see `data`).
            n_epochs: epochs per run, from now on.
            epoch_length: iterations per epoch, from now on.
            max_epochs: ignite's name, refused with the hint to use `n_epochs`.

        Returns:
            The engine, so `engine.run().output` reads naturally.
        """
        if max_epochs is not None:
            raise TypeError(
                f"run() of engine {self.name!r} got max_epochs={max_epochs!r}, ignite's name: statefire says "
                f"n_epochs, the epochs of each run: run(n_epochs={max_epochs!r}). Unlike ignite's max_epochs it "
                "counts from the run's start, so a second run() trains that many epochs more"
            )
        if self._running:
            raise EngineError(
                f"engine {self.name!r} is already running (iteration {self.n_iteration_completed}); "
                "an engine cannot run inside its own run: give the nested run its own Engine"
            )
        if self._failed and (self.run_on is not None or (data is not None and data is not self._data)):
            # A follower whose last run died starts afresh: the rest of a stale evaluation
            # would mix results of two models. New data after a failed run gets a new run
            # over it, not the rest of the failed one with the old epoch length.
            self._abandon_run()
        if data is not None:
            self.data = data
        if n_epochs is not None:
            self.n_epochs = check.positive_int(n_epochs, "n_epochs", f"engine {self.name!r}")
        if epoch_length is not None:
            self.epoch_length = check.positive_int(epoch_length, "epoch_length", f"engine {self.name!r}")
        if self.data is None and self.epoch_length is None:
            raise EngineError(
                f"engine {self.name!r} has no data: pass data=... (any iterable), "
                "or epoch_length=... to call process with batch=None"
            )
        if self.epoch_length is None:
            length = _length(self.data)  # None for data without len: found at the first exhaustion
            if length == 0:
                raise EngineError(
                    f"the data of engine {self.name!r} is empty (len 0); check the data set and loader"
                )
            self.epoch_length = self._inferred_length = length
        self._running = True
        self._terminate = self._stop_epoch = False
        try:
            if not self.run_in_progress:
                self.run_first_epoch = self.n_epoch_completed
                self.in_epoch = False
                self.epoch_iteration = 0
                self._iterator = None
                self._restore_data_state = None  # a restored mid-epoch position belongs to the old run
                self._unfinished = None
                self.n_run_started += 1
            while not self._terminate and self.n_epoch_completed - self.run_first_epoch < self.n_epochs:
                if not self.in_epoch:
                    self._stop_epoch = self._terminate  # a callback on the epoch start may stop it
                    self.in_epoch = True
                    self.epoch_iteration = 0
                    self.n_epoch_started += 1
                self._run_epoch()
                if self._terminate:
                    break
                self._end_epoch()
                self.in_epoch = False
                self.n_epoch_completed += 1
            self.in_epoch = False
            self._failed = False
            self.n_run_completed += 1
        except BaseException as error:
            # Any exit, KeyboardInterrupt included, leaves the engine the same way: a retry
            # resumes like a restore, the same order, from the batch that did not complete.
            note = f"in engine {self.name!r} at iteration {self.n_iteration_started} (epoch {self.n_epoch_started})"
            add_note(error, note)
            self._iterator = None
            self._restore_data_state = self._data_state if self.in_epoch else None
            self._failed = True
            self.exception = error
            raise
        finally:
            self._running = False
        return self

    # -- the loop -----------------------------------------------------------
    def _end_epoch(self) -> None:
        """Called when the epoch's iterations are done, before it completes (a trainer steps here)."""

    def _run_epoch(self) -> None:
        values = self.__dict__
        machinery = self.fire_functions
        process = self.process
        size_fn = self.batch_size_fn
        size_type: type | None = None
        size: Any = 1 if size_fn is None else size_fn  # a constant, or a function of the batch
        epoch_length = self.epoch_length
        done = values["epoch_iteration"]
        restarted_at = -1
        version = -1
        fire_batch = fire_started = fire_output = fire_samples = fire_done = fire_completed = None
        if self._stop_epoch:  # terminate() or terminate_epoch() on the epoch start: no iteration runs
            return
        if self._unfinished is not None or values["n_iteration_started"] != values["n_iteration_completed"]:
            # A retry after an exception inside an iteration (cold path).
            done = self._finish_iteration()
            if done == epoch_length or self._stop_epoch:
                if epoch_length is not None and epoch_length == _length(self.data):
                    self._iterator = None
                return
        iterator = self._epoch_iterator()
        step = 0  # how far the current iteration got once process returned: what a retry must not redo
        try:
            while epoch_length is None or done < epoch_length:
                for batch in iterator:
                    if wiring.version != version:
                        # Callbacks attached or removed: reload what each step fires.
                        version = wiring.version
                        fire_batch, fire_started, fire_output, fire_samples, fire_done, fire_completed = map(
                            machinery.get, _STEP_NAMES
                        )
                    values["batch"] = batch
                    if fire_batch is not None:
                        fire_batch(batch)
                    n = values["n_iteration_started"] + 1
                    values["n_iteration_started"] = n
                    if fire_started is not None:
                        fire_started(n)
                    output = process(self, batch)
                    step = 1
                    values["output"] = output
                    if fire_output is not None:
                        fire_output(output)
                    if size_fn is None and type(batch) is not size_type:
                        size_type = type(batch)
                        size = _size_rule(batch)
                    if size.__class__ is int:
                        n = values["n_samples"] + size
                    else:
                        n = size(batch)
                        if n.__class__ is not int or n < 0:
                            n = _batch_size(n, self.name, size is size_fn)
                        n += values["n_samples"]
                    step = 2
                    values["n_samples"] = n
                    if fire_samples is not None:
                        fire_samples(n)
                    done += 1
                    step = 3
                    values["epoch_iteration"] = done
                    if fire_done is not None:
                        fire_done(done)
                    n = values["n_iteration_completed"] + 1
                    step = 0
                    values["n_iteration_completed"] = n
                    if fire_completed is not None:
                        fire_completed(n)
                    if done == epoch_length or self._stop_epoch:
                        break
                else:  # the data ran out
                    fresh = self._exhausted(done, restarted_at)
                    if fresh is None:
                        break
                    iterator = fresh
                    restarted_at = done
                    epoch_length = self.epoch_length
                    continue
                break
        except BaseException:
            if step:  # process returned for this batch: a retry finishes the iteration, without process
                self._unfinished = (values["batch"], values["output"], step)
            raise
        if epoch_length is not None and epoch_length == _length(self.data):
            self._iterator = None  # the data was used up: the next epoch starts afresh

    def _finish_iteration(self) -> int:
        """Finish the iteration an exception interrupted; returns the epoch's completed iterations.

        If `process` had returned, the steps after the one whose callbacks
        raised run now (each event fires at most once per iteration, and
        `process` never runs twice on one batch). If `process` itself raised
        (or a callback before it), the iteration starts again: its
        `n_iteration_started` number is given back, so it fires again with
        the same number.
        """
        values = self.__dict__
        unfinished, self._unfinished = self._unfinished, None
        if unfinished is None:
            values["n_iteration_started"] = values["n_iteration_completed"]
            return values["epoch_iteration"]
        batch, _, step = unfinished
        if step < 2:
            rule = _size_rule(batch) if self.batch_size_fn is None else self.batch_size_fn
            size = rule if isinstance(rule, int) else _batch_size(rule(batch), self.name, rule is self.batch_size_fn)
            self.n_samples = values["n_samples"] + size
        if step < 3:
            self.epoch_iteration = values["epoch_iteration"] + 1
            self._iterator = None  # the data then skips this batch too
        self.n_iteration_completed = values["n_iteration_completed"] + 1
        return values["epoch_iteration"]

    def _epoch_iterator(self) -> Iterator[Any]:
        if self.data is None:
            return itertools.repeat(None)
        if self._iterator is None:
            # Resuming mid-epoch: the same order, without the processed part.
            self._iterator = self._new_iterator(skip=self.epoch_iteration)
        return self._iterator

    def _new_iterator(self, skip: int = 0) -> Iterator[Any]:
        data = self.data
        if data is None:
            return itertools.repeat(None)
        sampler = _epoch_sampler(data)
        if sampler is not None:
            # A DistributedSampler shuffles by seed and epoch: without this, every epoch
            # would see one order. The epoch comes from the counters, so a resume agrees.
            sampler.set_epoch(self.n_epoch_started - 1)
        generator = _order_generator(self.data)
        restore, self._restore_data_state = self._restore_data_state, None
        if generator is None or restore is None:
            if generator is not None:
                self._data_state = generator.get_state()
            iterator = iter(data)
            for _ in range(skip):
                next(iterator)
            return iterator
        # Resuming mid-epoch: draw the epoch's order from the state the generator
        # had when the epoch started, skip the processed batches while it is in
        # that state (samplers draw lazily, on the first `next`), then put it back
        # where it was saved.
        now = generator.get_state()
        generator.set_state(restore)
        self._data_state = restore
        try:
            iterator = iter(data)
            for _ in range(skip):
                next(iterator)
        finally:
            generator.set_state(now)
        return iterator

    def _exhausted(self, done: int, restarted_at: int) -> Iterator[Any] | None:
        """The data ran out after `done` iterations: end the epoch, or restart the data."""
        self._iterator = None
        if done == 0 or done == restarted_at:
            raise EngineError(
                f"the data of engine {self.name!r} is empty: it yielded no batch"
                + ("" if done == 0 else f" after a restart at iteration {done} of the epoch")
                + "; check the data set and loader (drop_last with too few samples?)"
            )
        if self.epoch_length is None:
            self.epoch_length = self._inferred_length = done
            return None
        self._iterator = self._new_iterator()
        return self._iterator

    # -- serialization ------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The counters and params, plus the data order: its generator's state at
        the start of the current epoch and now (None when the data has none)."""
        state_dict = super().state_dict()
        generator = _order_generator(self.data)
        state_dict["data_state"] = {
            "epoch_start": self._data_state,
            "now": None if generator is None else generator.get_state(),
        }
        return state_dict

    def check_state_dict(self, state_dict: dict[str, Any]) -> list[str]:
        """What in `state_dict` does not fit this engine, as `"<path>: expected ..., found ..."`.

        `Checkpoint.load` asks every feature before it restores anything, so a
        bad file changes nothing.
        """
        problems = []
        data_state = state_dict.get("data_state")
        if data_state is not None and not (
            isinstance(data_state, dict) and set(data_state) <= {"epoch_start", "now"}
        ):
            problems.append(
                f"{self.path}.data_state: expected a dict with 'epoch_start' and 'now', found {data_state!r:.80}"
            )
        elif data_state is not None:
            generator = _order_generator(self.data)
            for key in ("epoch_start", "now"):
                value = data_state.get(key)
                if value is None or generator is None:
                    continue
                problem = _generator_state_problem(generator, value)
                if problem:
                    problems.append(f"{self.path}.data_state.{key}: {problem}")
        return problems

    def _load(self, state_dict: Mapping[str, Any]) -> None:
        super()._load(state_dict)
        self._failed = False  # a restored run is continued, whatever this process did before
        self._unfinished = None
        data_state = state_dict.get("data_state") or {}
        generator = _order_generator(self.data)
        if generator is not None and data_state.get("now") is not None:
            generator.set_state(data_state["now"])
        mid_epoch = self.epoch_iteration and self.in_epoch and self.run_in_progress
        self._restore_data_state = data_state.get("epoch_start") if mid_epoch else None
        self._iterator = None


def _check_data(data: Any, engine: str) -> None:
    """Refuse data that cannot be iterated, at construction rather than at the first epoch."""
    if data is None or hasattr(type(data), "__iter__") or hasattr(type(data), "__getitem__"):
        return
    raise TypeError(
        f"data of engine {engine!r} must be an iterable of batches (a list, a DataLoader, a generator, ...), "
        f"got {type(data).__name__}: {data!r}; for a process called without batches pass data=None "
        "and epoch_length=..."
    )


def _batch_size(value: Any, engine: str, from_fn: bool) -> int:
    """A batch size as an int: integral numbers (numpy ints, 0-d integer tensors, 3.0) convert."""
    number: Any = None
    if not isinstance(value, bool):
        try:
            number = operator.index(value)
        except TypeError:
            if isinstance(value, float) and value.is_integer():
                number = int(value)
    if number is not None and number >= 0:
        return number
    source = "batch_size_fn" if from_fn else "the batch size rule"
    raise ValueError(
        f"{source} of engine {engine!r} returned {value!r} of type {type(value).__name__}; "
        "n_samples counts samples, so it must return a non-negative whole number (an int)"
    )


def _length(data: Any) -> int | None:
    try:
        return len(data)
    except TypeError:
        return None


#: Functions `finder(data) -> generator or None`, asked when the data has no order
#: generator of its own. A torch-importing feature registers one returning torch's
#: global RNG for a `DataLoader` built without `generator=` (which draws its order
#: from it), so the engine captures that RNG at each epoch start and stays torch-free.
ORDER_GENERATOR_FINDERS: list[Callable[[Any], Any]] = []


def _order_generator(data: Any) -> Any:
    """The generator deciding a loader's order (`loader.generator` or its sampler's), if any."""
    batch_sampler = getattr(data, "batch_sampler", None)
    for holder in (data, getattr(data, "sampler", None), batch_sampler, getattr(batch_sampler, "sampler", None)):
        generator = getattr(holder, "generator", None)
        if generator is not None and hasattr(generator, "get_state") and hasattr(generator, "set_state"):
            return generator
    for finder in ORDER_GENERATOR_FINDERS:
        generator = finder(data)
        if generator is not None:
            return generator
    return None


def _generator_state_problem(generator: Any, value: Any) -> str | None:
    """Why `value` cannot be `generator`'s state (the same type and size as its own), or None."""
    current = generator.get_state()
    if type(value) is not type(current):
        return f"expected a generator state of type {type(current).__name__}, found {type(value).__name__}"
    shape, dtype = getattr(current, "shape", None), getattr(current, "dtype", None)
    if shape is not None and (getattr(value, "shape", None) != shape or getattr(value, "dtype", None) != dtype):
        return (
            f"expected a generator state of shape {tuple(shape)} and dtype {dtype}, "
            f"found {tuple(value.shape)} {value.dtype}"
        )
    return None


def _epoch_sampler(data: Any) -> Any:
    """The sampler of a loader that takes the epoch (`set_epoch`, a DistributedSampler), if any."""
    batch_sampler = getattr(data, "batch_sampler", None)
    for holder in (getattr(data, "sampler", None), getattr(batch_sampler, "sampler", None)):
        if callable(getattr(holder, "set_epoch", None)):
            return holder
    return None


def _first_dimension(batch: Any) -> int:
    # `shape[0]`, not `len()`: the same number, but a tensor's `__len__` is Python code
    # (a torch-function check, `dim()`, a tracing check) run at every iteration.
    return batch.shape[0]


def _first_dimension_of_first(batch: Any) -> int:
    return batch[0].shape[0]


def _size_rule(batch: Any) -> int | Callable[[Any], int]:
    """How to read the size of batches of this type: a constant, or a function.

    The first dimension of a tensor, of the first element of a tuple or list,
    or of the first value of a mapping; 1 for anything else (a scalar).
    """
    if hasattr(batch, "shape") and hasattr(batch, "dtype"):
        return _first_dimension if len(batch.shape) else 1
    if isinstance(batch, (list, tuple)) and batch:
        inner = _size_rule(batch[0])
        if isinstance(inner, int):
            return inner
        if inner is _first_dimension:
            return _first_dimension_of_first
        nested = inner
        return lambda b: nested(b[0])
    if isinstance(batch, Mapping) and batch:
        inner = _size_rule(next(iter(batch.values())))
        if isinstance(inner, int):
            return inner
        return lambda b: inner(next(iter(b.values())))
    return 1


def engine_behind(feature: Any) -> Engine | None:
    """The engine a feature works for: itself, its `engine`, or the one behind its `input_ref`.

    Follows chains of output handlers, so a metric of a handler of an
    engine's output belongs to that engine; None when there is no engine.
    """
    for _ in range(32):  # a chain of handlers reading each other
        if isinstance(feature, Engine):
            return feature
        engine = getattr(feature, "engine", None)
        if isinstance(engine, Engine):
            return engine
        inner = getattr(feature, "input_ref", None)
        if not isinstance(inner, (Ref, FilteredRef)):
            return None
        feature = inner.owner
    return None
