"""A tqdm progress bar per engine, showing the values it is given."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm.auto import tqdm

from statefire.frame import Feature, FilteredRef, Ref, as_ref, check

from .engine import Engine

__all__ = ["ProgressBar"]


def _number(value: Any) -> Any:
    """A short printable form: tensors and numpy scalars become floats (read when shown only)."""
    if value is None:
        return "-"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return f"<{tuple(value.shape)}>"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


def _value_ref(item: Any) -> Any:
    """A metric feature stands for its `value_ref`; anything else is taken as given."""
    return item.value_ref if isinstance(item, Feature) and hasattr(item, "value_ref") else item


class ProgressBar(Feature):
    """One tqdm bar per epoch of `engine`, with the values of `metrics` as postfix.

    Silent when the output is not a terminal (logs and CI stay clean),
    unless `force=True`. Values are read only when the bar refreshes, every
    `every` iterations, so a loss tensor is not synced on each step.

    Args:
        engine: the engine to follow.
        metrics: what to show: metric features (their `value`) and refs, or
            a mapping label -> metric or ref. An engine's output is shown
            with `engine.output_ref`.
        every: refresh every N iterations.
        force: show the bar even when the output is not a terminal.
        file: where to write (default `sys.stderr`).
        leave: keep each epoch's finished bar on screen.
        name: the feature's name (default `<engine>_progress_bar`).

    Example:
        >>> import io
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, ProgressBar
        >>> with State() as s:
        ...     out = io.StringIO()
        ...     trainer = Engine("trainer", lambda e, b: b * 0.5, data=range(4))
        ...     bar = ProgressBar(trainer, metrics=[trainer.output_ref], force=True, file=out)
        ...     _ = trainer.run()
        ...     print("4/4" in out.getvalue(), "output=1.5" in out.getvalue())
        True True
    """

    category = "handlers"

    def __init__(
        self,
        engine: Engine,
        *,
        metrics: Iterable[Any] | dict[str, Any] = (),
        every: int = 1,
        force: bool = False,
        file: IO[str] | None = None,
        leave: bool = True,
        name: str | None = None,
    ) -> None:
        if not isinstance(engine, Engine):
            raise TypeError(f"engine of ProgressBar must be an Engine (e.g. state.trainer), got {engine!r}")
        check.positive_int(every, "every", "ProgressBar")
        shown = self._labels(metrics)
        super().__init__(name=name or f"{engine.name}_progress_bar")
        same_state = check.same_state(self)
        same_state(engine, "engine", f"ProgressBar {self.name!r}")
        for label, ref in shown.items():
            same_state(ref, f"metrics[{label!r}]", f"ProgressBar {self.name!r}")
        self.engine = engine
        self.shown = shown
        self.every = every
        self.force = force
        self.file = file
        self.leave = leave
        self.bar: Any = None
        engine.n_epoch_started_ref.attach(self._open)
        engine.n_iteration_completed_ref.attach(self._update, every=every)
        engine.n_epoch_completed_ref.attach(self._close)
        engine.n_run_completed_ref.attach(self._close)
        engine.exception_ref.attach(self._close)

    @staticmethod
    def _labels(metrics: Any) -> dict[str, Ref | FilteredRef]:
        if isinstance(metrics, dict):
            return {
                str(label): as_ref(_value_ref(item), f"metrics[{label!r}] of ProgressBar")
                for label, item in metrics.items()
            }
        shown: dict[str, Ref | FilteredRef] = {}
        for item in metrics:
            ref = as_ref(_value_ref(item), "each of metrics of ProgressBar")
            label = ref.owner.name if ref.name == "value" else ref.name
            shown[label] = ref
        return shown

    def _open(self) -> None:
        self._close()
        engine = self.engine
        self.bar = tqdm(
            total=engine.epoch_length,
            initial=engine.epoch_iteration,
            desc=f"{engine.name} epoch {engine.n_epoch_started}",
            file=self.file or sys.stderr,
            disable=False if self.force else None,  # None: tqdm disables itself off a terminal
            leave=self.leave,
            dynamic_ncols=True,
        )

    def _update(self) -> None:
        if self.bar is None:  # resumed mid-epoch: no epoch start fired
            self._open()
        bar = self.bar
        bar.update(self.engine.epoch_iteration - bar.n)
        if self.shown and not bar.disable:
            bar.set_postfix({label: _number(ref.value) for label, ref in self.shown.items()}, refresh=False)
            bar.refresh()

    def _close(self) -> None:
        bar, self.bar = self.bar, None
        if bar is not None:
            if self.shown and not bar.disable:
                bar.set_postfix({label: _number(ref.value) for label, ref in self.shown.items()}, refresh=False)
            bar.update(self.engine.epoch_iteration - bar.n)
            bar.close()
