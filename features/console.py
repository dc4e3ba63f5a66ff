"""One summary line per epoch on the console: what ignite users print by hand."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from statefire.frame import Counter, Feature, check

from .engine import Engine, engine_behind
from .progress import _number

__all__ = ["EpochLog"]


class EpochLog(Feature):
    """Prints one line when each epoch of `engine` completes: the epoch, every metric, the time.

    The line is printed after the evaluators that follow the epoch (they run
    first, at a higher priority), so their metrics are current. Metrics are
    grouped by engine and shown without their engine's name:

        Epoch[3/10] trainer loss 0.312 | val_evaluator accuracy 0.931 loss 0.204 | 1.24 s

    ignite users write this as a handler on `Events.EPOCH_COMPLETED`.

    Args:
        engine: the engine whose epochs are logged (the trainer).
        metrics: the metric features to show; by default every metric of the
            State holding a number when the line is printed.
        every: print every N epochs.
        file: where to write (default `sys.stdout`).
        name: the feature's name (default `<engine>_epoch_log`).

    Example:
        >>> import io
        >>> from statefire.frame import State
        >>> from statefire.features import AverageOutput, Engine, EpochLog
        >>> with State() as s:
        ...     trainer = Engine("trainer", lambda engine, batch: batch / 2, data=[1, 2, 3], n_epochs=2)
        ...     _ = AverageOutput(engine=trainer, name="trainer_loss")
        ...     out = io.StringIO()
        ...     log = EpochLog(trainer, file=out)
        ...     _ = trainer.run()
        >>> print(log.lines[-1].rsplit(" | ", 1)[0], log.n_lines, out.getvalue().count("Epoch["))
        Epoch[2/2] trainer loss 1 2 2
    """

    category = "handlers"

    n_lines = Counter(doc="lines printed")

    def __init__(
        self,
        engine: Engine,
        metrics: list[Any] | None = None,
        *,
        every: int = 1,
        file: IO[str] | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(engine, Engine):
            raise TypeError(f"engine of EpochLog must be an Engine, got {engine!r}")
        check.positive_int(every, "every", "EpochLog")
        if metrics is not None:
            metrics = list(metrics)
            for metric in metrics:
                if not hasattr(metric, "value_ref"):
                    raise TypeError(f"metrics of EpochLog must be metric features, got {metric!r}")
        super().__init__(name=name or f"{engine.name}_epoch_log")
        check.same_state(self)(engine, "engine", f"EpochLog {self.name!r}")
        self.engine = engine
        self.metrics = metrics
        self.every = every
        self.file = file
        #: the lines printed so far, for tests and notebooks
        self.lines: list[str] = []
        self._started = time.perf_counter()
        engine.n_epoch_started_ref.attach(self._epoch_started, owner=self)
        engine.n_epoch_completed_ref(every=every).attach(self._epoch_completed, owner=self)

    def _epoch_started(self) -> None:
        self._started = time.perf_counter()

    def _epoch_completed(self) -> None:
        line = self.line()
        self.lines.append(line)
        print(line, file=self.file if self.file is not None else sys.stdout, flush=True)
        self.n_lines += 1

    def line(self) -> str:
        """The line for the epoch that just completed."""
        engine = self.engine
        epoch_in_run = engine.n_epoch_completed - getattr(engine, "run_first_epoch", 0)
        head = f"Epoch[{epoch_in_run}/{engine.n_epochs}]" if engine.n_epochs else f"Epoch[{engine.n_epoch_completed}]"
        groups: dict[str, list[str]] = {}
        for metric in self.metrics if self.metrics is not None else list(self.require_state().metrics):
            shown = _shown(metric.value)
            if shown is None:
                continue
            owner = engine_behind(metric)
            prefix = f"{owner.name}_" if owner is not None else ""
            label = metric.name[len(prefix):] if prefix and metric.name.startswith(prefix) else metric.name
            groups.setdefault(owner.name if owner is not None else "", []).append(f"{label} {shown}")
        parts = [f"{group} {' '.join(items)}".strip() for group, items in groups.items()]
        parts.append(f"{time.perf_counter() - self._started:.2f} s")
        return " | ".join([f"{head} {parts[0]}", *parts[1:]]) if len(parts) > 1 else f"{head} | {parts[0]}"


def _shown(value: Any) -> str | None:
    """A number's short form, or None for what is not one number (a vector, a matrix, no value yet)."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    if hasattr(value, "shape") and tuple(value.shape) not in ((), (1,)):
        return None
    shown = _number(value)
    return shown if isinstance(shown, str) else f"{shown:.4g}" if isinstance(shown, float) else str(shown)
