"""Clock: wall time since the experiment started, as an x axis like any other."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

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
    of the state dict, so after a resume the clock continues from the
    checkpoint's time.

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

    seconds = Counter(doc="whole seconds since the clock started")
    milliseconds = Counter(doc="whole milliseconds since the clock started")

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self._origin = time.perf_counter()

    def _elapsed_ms(self) -> int:
        return int((time.perf_counter() - self._origin) * 1000)

    def refresh(self) -> int:
        """Set `seconds` and `milliseconds` to the time elapsed now; return the milliseconds."""
        milliseconds = self._elapsed_ms()
        if milliseconds != self.milliseconds:
            self.milliseconds = milliseconds
            seconds = milliseconds // 1000
            if seconds != self.seconds:
                self.seconds = seconds
        return milliseconds

    def state_dict(self) -> dict[str, Any]:
        """The time elapsed now (whether or not anything read the clock since)."""
        milliseconds = self._elapsed_ms()
        return {**super().state_dict(), "seconds": milliseconds // 1000, "milliseconds": milliseconds}

    def _load(self, state_dict: Mapping[str, Any]) -> None:
        super()._load(state_dict)
        # Continue from the restored time, not from this process's start.
        self._origin = time.perf_counter() - self.milliseconds / 1000
