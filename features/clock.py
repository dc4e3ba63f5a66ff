"""Clock: wall time since the experiment started, as an x axis like any other."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from statefire.frame import Counter, Feature

__all__ = ["Clock"]


class Clock(Feature):
    """Elapsed wall time in whole seconds and milliseconds, read fresh by the charts.

    TensorBoard steps are integers, so time is charted in whole units: pick
    `clock.seconds_ref` (epoch-level curves) or `clock.milliseconds_ref`
    (per-iteration curves) as a chart's x axis. Every engine's curve then
    shares one origin, the clock's start, which TensorBoard's own
    'Relative' axis cannot give (it starts each curve at its first point).

    Time flows without events, so the clock is not followed but read: a
    chart calls `refresh()` just before it reads the clock, and so does
    anyone wanting the current value. The elapsed time at the save is part
    of the state dict (`elapsed_ms`, read at the save whether or not
    anything read the clock since), so after a resume the clock continues
    from the checkpoint's time.

    Args:
        name: the feature's name (default `clock`).

    Example:
        >>> import tempfile
        >>> from statefire.frame import State
        >>> from statefire.features import Clock, Engine, AverageOutput, ScalarChart, TensorBoard
        >>> with State() as s, tempfile.TemporaryDirectory() as log_dir:
        ...     clock = Clock()
        ...     trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0, 2.0], n_epochs=3)
        ...     chart = ScalarChart(AverageOutput(engine=trainer).value_ref, clock.milliseconds_ref)
        ...     writer = TensorBoard(log_dir)
        ...     _ = trainer.run()
        ...     writer.close()
        ...     print(chart.n_written, clock.refresh() < 60_000, clock.seconds == clock.milliseconds // 1000)
        3 True True
    """

    category = "handlers"

    # The counters show the time last read; what is saved is the time at the save.
    seconds = Counter(doc="whole seconds since the clock started", persist=False)
    milliseconds = Counter(doc="whole milliseconds since the clock started", persist=False)
    extra_state: ClassVar[dict[str, str]] = {"elapsed_ms": "_stopwatch"}

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._stopwatch = _Stopwatch(self)

    def refresh(self) -> int:
        """Set `seconds` and `milliseconds` to the time elapsed now; return the milliseconds."""
        milliseconds = self._stopwatch.elapsed_ms()
        if milliseconds != self.milliseconds:
            self.milliseconds = milliseconds
            seconds = milliseconds // 1000
            if seconds != self.seconds:
                self.seconds = seconds
        return milliseconds

    def check_state_dict(self, state_dict: dict[str, Any]) -> list[str]:
        """A saved time must be a whole number of milliseconds, zero or more."""
        elapsed = state_dict.get("elapsed_ms", 0)
        if isinstance(elapsed, bool) or not isinstance(elapsed, int) or elapsed < 0:
            return [f"{self.path}.elapsed_ms: expected whole milliseconds >= 0, found {elapsed!r}"]
        return []


class _Stopwatch:
    """A clock's origin, saved as the milliseconds elapsed: a restore continues from them."""

    __slots__ = ("clock", "origin")

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.origin = time.perf_counter()

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.origin) * 1000)

    def state_dict(self) -> int:
        return self.elapsed_ms()

    def load_state_dict(self, milliseconds: int) -> None:
        self.origin = time.perf_counter() - milliseconds / 1000
        self.clock.refresh()  # inside the restore's silenced block: the counters show it, no event
