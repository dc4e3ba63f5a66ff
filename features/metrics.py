"""Metrics as peers: they follow a ref, and publish their result in `value`.

The built-ins work on tensors through their methods only, so this module
imports no torch; `IgniteMetric` brings every `ignite.metrics` metric in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from statefire.frame import Feature, FilteredRef, Ref, StateObject, as_ref, check, snake_case

from ._priorities import METRIC_PRIORITY
from .distributed import _collective_device, process_group
from .engine import _size_rule, engine_behind

__all__ = ["Metric", "Accuracy", "Loss", "AverageOutput", "RunningAverage", "METRIC_PRIORITY"]


_MODES = ("epoch", "running", "batch")


class _Accumulators:
    """A metric's `accumulators` seen as one object with a torch-style state dict."""

    __slots__ = ("metric",)

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self.metric, name) for name in self.metric.accumulators}

    def load_state_dict(self, state_dict: Mapping[str, Any] | None) -> None:
        for name, value in (state_dict or {}).items():
            setattr(self.metric, name, value)


class Metric(Feature):
    """The base of every metric: `reset`, `update(value)`, `compute()`.

    A metric updates each time `input_ref` fires (by default its engine's
    `output_ref`). In `"epoch"` mode it resets when the engine starts an
    epoch and sets `value` when the epoch completes; `"running"` sets
    `value` after every update over the epoch so far; `"batch"` resets and
    sets `value` on every update.

    Args:
        engine: the engine whose epochs reset the metric; by default the
            one behind `input_ref` (its owner, or the engine an output
            handler on the way reads from).
        input_ref: what the metric reads; by default `engine.output_ref`.
        name: the feature's name; by default `<engine>_<metric>`.
        mode: `"epoch"`, `"running"` or `"batch"`.

    `__init__` calls `reset()` (and, for the default name, `_default_suffix()`),
    so a subclass with arguments of its own sets them before
    `super().__init__()`; set after it, `reset` would not find them.

    Example:
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, Metric
        >>> class Maximum(Metric):
        ...     def reset(self): self.best = None
        ...     def update(self, value): self.best = value if self.best is None else max(self.best, value)
        ...     def compute(self): return self.best
        >>> with State() as s:
        ...     engine = Engine("engine", lambda e, b: b, data=[3, 9, 4])
        ...     maximum = Maximum(engine=engine)
        ...     _ = engine.run()
        ...     print(maximum.name, maximum.value)
        engine_maximum 9
    """

    category = "metrics"

    value = StateObject(None, doc="the last computed result")

    #: Attributes holding what was accumulated so far: saved in `state_dict`
    #: so that a run resumed mid-epoch computes the same result.
    accumulators: tuple[str, ...] = ()
    #: The accumulators that add up over processes. In distributed training
    #: (an initialized `torch.distributed` process group) each process
    #: accumulates its shard of the data, and `value` is computed from these
    #: accumulators summed over all processes, the same on every one.
    summed: tuple[str, ...] = ()
    #: Whether a higher value is better (True), a lower one (False), or not
    #: known (None). `EarlyStopping` and a best-model `Checkpoint` take their
    #: default `mode` from it; a metric of unknown direction needs `mode=`.
    #: Set it on an instance to declare a direction, e.g. for an
    #: `AverageOutput` of a loss: `average.higher_is_better = False`.
    higher_is_better: bool | None = None
    #: `accumulators` are saved under `accumulated` (an `IgniteMetric` saves its ignite metric's state there).
    extra_state: ClassVar[dict[str, str]] = {"accumulated": "_accumulated"}

    def __init__(
        self,
        *,
        engine: Any = None,
        input_ref: Ref | FilteredRef | None = None,
        name: str | None = None,
        mode: str = "epoch",
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode of a {type(self).__name__} must be one of {_MODES}, got {mode!r}")
        if engine is None and input_ref is not None:
            engine = engine_behind(as_ref(input_ref, f"input_ref of a {type(self).__name__}").owner)
            if engine is None:
                raise TypeError(
                    f"a {type(self).__name__} on {input_ref.path} needs engine=...: its epochs reset the "
                    "metric, and no engine is behind that ref"
                )
        if not hasattr(engine, "n_epoch_started_ref"):
            raise TypeError(f"engine of a {type(self).__name__} must be an Engine, got {engine!r}")
        super().__init__(name=name or f"{engine.name}_{self._default_suffix()}")
        self.engine = engine
        self.mode = mode
        self.input_ref = as_ref(
            engine.output_ref if input_ref is None else input_ref,
            f"input_ref of metric {self.name!r}",
        )
        same_state = check.same_state(self)
        same_state(engine, "engine", f"metric {self.name!r}")
        same_state(self.input_ref, "input_ref", f"metric {self.name!r}")
        self.reset()
        if mode == "epoch":
            self._reset_ref().attach(self.reset, priority=METRIC_PRIORITY)
            self.input_ref.attach(self.update, priority=METRIC_PRIORITY)
            engine.n_epoch_completed_ref.attach(self.completed, priority=METRIC_PRIORITY)
        elif mode == "running":
            self._reset_ref().attach(self.reset, priority=METRIC_PRIORITY)
            self.input_ref.attach(self._update_and_publish, priority=METRIC_PRIORITY)
        else:
            self.input_ref.attach(self._reset_update_publish, priority=METRIC_PRIORITY)

    def _reset_ref(self) -> Ref:
        """What starts the metric afresh in `"epoch"` and `"running"` modes: its engine's epoch start."""
        return self.engine.n_epoch_started_ref

    def _default_suffix(self) -> str:
        return snake_case(type(self).__name__)

    # -- what a metric implements ------------------------------------------
    def reset(self) -> None:
        """Forget what was accumulated."""
        raise NotImplementedError

    def update(self, value: Any) -> None:
        """Accumulate one input value."""
        raise NotImplementedError

    def compute(self) -> Any:
        """The result of what was accumulated."""
        raise NotImplementedError

    # -- serialization ---------------------------------------------------------
    @property
    def _accumulated(self) -> _Accumulators:
        return _Accumulators(self)

    # -- publishing ----------------------------------------------------------
    def completed(self) -> None:
        """Compute and publish the result (sets `value`, firing its callbacks)."""
        self.value = self._result()

    def _update_and_publish(self, value: Any) -> None:
        self.update(value)
        self.value = self._result()

    def _reset_update_publish(self, value: Any) -> None:
        self.reset()
        self.update(value)
        self.value = self._result()

    def _result(self) -> Any:
        """`compute()`, over every process's accumulators in distributed training."""
        group = process_group() if self.summed else None
        if group is None:
            return self.compute()
        local = {name: getattr(self, name) for name in self.summed}
        for name, value in local.items():
            setattr(self, name, _sum_over_processes(group, value))
        try:
            return self.compute()
        finally:
            for name, value in local.items():
                setattr(self, name, value)


def _sum_over_processes(dist: Any, value: Any) -> Any:
    """`value` (a number or a tensor) summed over all processes; this process's copy is left alone."""
    import torch

    device = _collective_device(dist)  # nccl takes CUDA tensors only
    if isinstance(value, torch.Tensor):
        total = value.detach().to(device, copy=True)
        dist.all_reduce(total)
        return total.to(value.device)
    total = torch.tensor(float(value), dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return int(total.item()) if isinstance(value, int) else total.item()


def _pair(value: Any, metric: Metric) -> tuple[Any, Any]:
    try:
        y_pred, y = value
    except (TypeError, ValueError):
        raise TypeError(
            f"metric {metric.name!r} needs (y_pred, y) from {metric.input_ref.path}, got "
            f"{type(value).__name__}; follow an evaluator's output or an OutputHandler returning a pair"
        ) from None
    if not hasattr(y_pred, "shape") or not hasattr(y, "shape"):
        raise TypeError(
            f"metric {metric.name!r} needs tensors (y_pred, y) from {metric.input_ref.path}, got "
            f"({type(y_pred).__name__}, {type(y).__name__})"
        )
    return y_pred, y


def _one_number(value: Any, metric: Metric) -> Any:
    """`value` as one number to average: a one-element tensor (kept on its device) or a real number."""
    if hasattr(value, "detach") and hasattr(value, "numel"):
        if value.numel() == 1 and not value.is_complex():
            return value.detach().reshape(())
        problem = f"a tensor of shape {tuple(value.shape)}"
    elif isinstance(value, (bool, str, bytes)):
        problem = f"{type(value).__name__} {value!r:.60}"
    else:
        try:
            return float(value)  # numpy scalars, Fractions, Decimals, ...
        except (TypeError, ValueError):
            problem = f"{type(value).__name__} {value!r:.60}"
    raise TypeError(
        f"metric {metric.name!r} ({type(metric).__name__}) averages single numbers, but "
        f"{metric.input_ref.path} gave {problem}; follow a scalar, e.g. the trainer's loss, or reduce "
        "the value first with an OutputHandler(ref, lambda out: ...)"
    )


class Accuracy(Metric):
    """The fraction of correct predictions, from `(y_pred, y)`.

    `y_pred` holds class scores (`(N, C)`, argmax taken) or, with the same
    shape as `y`, either class ids (an integer or bool tensor, compared as
    they are) or probabilities of the positive class (a floating tensor,
    thresholded at 0.5; `y` must then be binary, 0 or 1, as ignite requires:
    floating class ids against multiclass targets are refused rather than
    scored as probabilities).
    """

    accumulators = summed = ("n_correct", "n_total")
    higher_is_better = True

    def reset(self) -> None:
        self.n_correct: Any = 0
        self.n_total = 0

    def update(self, value: Any) -> None:
        y_pred, y = _pair(value, self)
        if y_pred.ndim == y.ndim + 1:
            predicted = y_pred.argmax(dim=1)
        elif y_pred.shape == y.shape:
            if not y_pred.is_floating_point():
                predicted = y_pred  # class ids
            else:
                if bool(((y != 0) & (y != 1)).any()):
                    raise ValueError(
                        f"metric {self.name!r}: y_pred has the shape of y and holds floats, read as "
                        f"probabilities of the positive class, but y holds class ids other than 0 and 1 "
                        f"(e.g. {int(y[(y != 0) & (y != 1)][0])}); give class scores (N, C), or class ids "
                        "as an integer tensor (y_pred.argmax(dim=1), or y_pred.long())"
                    )
                predicted = (y_pred > 0.5).to(y.dtype)
        else:
            raise ValueError(
                f"metric {self.name!r}: y_pred of shape {tuple(y_pred.shape)} does not fit y of shape "
                f"{tuple(y.shape)}; give class scores (N, C) or one probability per target"
            )
        self.n_correct = self.n_correct + (predicted == y).sum()  # stays a tensor: no sync per batch
        self.n_total += int(y.shape[0])

    def compute(self) -> float | None:
        return float(self.n_correct) / self.n_total if self.n_total else None


class Loss(Metric):
    """The average of `loss_fn(y_pred, y)` over the samples seen (a mean-reducing loss)."""

    def __init__(
        self,
        loss_fn: Callable[[Any, Any], Any],
        *,
        engine: Any = None,
        input_ref: Ref | FilteredRef | None = None,
        name: str | None = None,
        mode: str = "epoch",
    ) -> None:
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable as loss_fn(y_pred, y), got {loss_fn!r}")
        self.loss_fn = loss_fn
        super().__init__(engine=engine, input_ref=input_ref, name=name, mode=mode)

    accumulators = summed = ("total", "n_total")
    higher_is_better = False

    def reset(self) -> None:
        self.total: Any = 0.0
        self.n_total = 0

    def update(self, value: Any) -> None:
        y_pred, y = _pair(value, self)
        n = int(y.shape[0])
        self.total = self.total + self.loss_fn(y_pred, y).detach() * n
        self.n_total += n

    def compute(self) -> float | None:
        return float(self.total) / self.n_total if self.n_total else None


class AverageOutput(Metric):
    """The mean of the input values (e.g. a trainer's loss) over the epoch.

    By default (`weighted=False`) every value counts once: the mean of the
    batch losses, as ignite's `Average`. With `weighted=True` each value
    counts as many times as its batch has samples (found as the engine finds
    `n_samples`: its `batch_size_fn`, else the first dimension of the
    batch), as Lightning's `self.log(..., on_epoch=True)` averages: for a
    mean-reducing loss, the loss over the whole epoch's data even when the
    last batch is smaller.

    Example:
        >>> import torch
        >>> from statefire.frame import State
        >>> from statefire.features import AverageOutput, Engine
        >>> with State() as s:
        ...     batches = [torch.full((3,), 1.0), torch.full((1,), 5.0)]  # batch sizes 3 and 1
        ...     engine = Engine("engine", lambda e, batch: batch.mean(), data=batches)
        ...     mean_of_batches = AverageOutput(engine=engine)
        ...     mean_of_samples = AverageOutput(engine=engine, weighted=True, name="weighted")
        ...     _ = engine.run()
        ...     print(mean_of_batches.value, mean_of_samples.value)
        3.0 2.0
    """

    accumulators = summed = ("total", "count")

    def __init__(
        self,
        *,
        engine: Any = None,
        input_ref: Ref | FilteredRef | None = None,
        name: str | None = None,
        mode: str = "epoch",
        weighted: bool = False,
    ) -> None:
        if not isinstance(weighted, bool):
            raise TypeError(f"weighted of an AverageOutput must be True or False, got {weighted!r}")
        self.weighted = weighted
        self._size_type: type | None = None
        self._size: Any = 1
        super().__init__(engine=engine, input_ref=input_ref, name=name, mode=mode)

    def reset(self) -> None:
        self.total: Any = 0.0
        self.count = 0

    def update(self, value: Any) -> None:
        if value.__class__ is not float and value.__class__ is not int:
            value = _one_number(value, self)
        if not self.weighted:
            self.total = self.total + value
            self.count += 1
            return
        n = self._batch_size(self.engine.batch)
        self.total = self.total + value * n
        self.count += n

    def _batch_size(self, batch: Any) -> int:
        """The samples in `batch`, by the engine's rule for `n_samples`."""
        size_fn = self.engine.batch_size_fn
        if size_fn is not None:
            return size_fn(batch)
        if type(batch) is not self._size_type:  # the rule depends on the batch's type only: find it once
            self._size_type = type(batch)
            self._size = _size_rule(batch)
        return self._size if isinstance(self._size, int) else self._size(batch)

    def compute(self) -> float | None:
        return float(self.total) / self.count if self.count else None


class RunningAverage(Metric):
    """An exponential moving average of the input: `avg = alpha * avg + (1 - alpha) * value`.

    Publishes after every update (mode `"running"`) and starts afresh each
    epoch, or with `reset_on="run"` each run of its engine, carrying over the
    epochs as ignite's `RunningAverage` does by default.
    """

    def __init__(
        self,
        *,
        engine: Any = None,
        alpha: float = 0.98,
        input_ref: Ref | FilteredRef | None = None,
        name: str | None = None,
        mode: str = "running",
        reset_on: str = "epoch",
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha of a RunningAverage must be in (0, 1), got {alpha!r}")
        if reset_on not in ("epoch", "run"):
            raise ValueError(f"reset_on of a RunningAverage must be 'epoch' or 'run', got {reset_on!r}")
        self.alpha = alpha
        self.reset_on = reset_on
        super().__init__(engine=engine, input_ref=input_ref, name=name, mode=mode)

    def _reset_ref(self) -> Ref:
        return self.engine.n_run_started_ref if self.reset_on == "run" else self.engine.n_epoch_started_ref

    accumulators = ("average",)

    def reset(self) -> None:
        self.average: float | None = None

    def update(self, value: Any) -> None:
        value = float(value if value.__class__ is float or value.__class__ is int else _one_number(value, self))
        group = process_group()
        if group is not None:  # as ignite's: the mean over the processes enters the average
            value = _sum_over_processes(group, value) / group.get_world_size()
        self.average = value if self.average is None else self.alpha * self.average + (1 - self.alpha) * value

    def compute(self) -> float | None:
        return self.average
