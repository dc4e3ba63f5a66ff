"""TensorBoard: the writer feature that charts write to.

One real `torch.utils.tensorboard.SummaryWriter` per run directory
(`<log_dir>/<engine>`), so the same tag written by several engines overlays
in TensorBoard's Scalars dashboard. Writers are flushed at the end of every
engine run, and closed (their threads joined) when the feature is removed
from its State, when it is garbage-collected, or at exit.
"""

from __future__ import annotations

import atexit
import math
import operator
import os
import time
import weakref
from collections.abc import Iterable
from typing import Any

from statefire.frame import Counter, Feature, StateObject, check

from ._artifacts import TENSORBOARD, artifact_dir
from ._priorities import FLUSH_PRIORITY
from .distributed import is_main_process
from .engine import engine_behind

__all__ = ["TensorBoard", "ROOT_RUN", "find_writer", "run_of", "scalar_value", "scalar_values", "step_value"]

#: The run of the log directory itself: it holds what belongs to no engine
#: (the custom-scalars layout).
ROOT_RUN = "."


class TensorBoard(Feature):
    """Writes TensorBoard event files: one run directory per engine under `log_dir`.

    Charts (`ScalarChart`, the chart plugins) find the writer themselves when
    they first write, so it may be created before or after them. Every
    writer is flushed when any engine completes a run, and closed (its
    writer thread ended) by `close()`, when the feature is removed from its
    State, when it is garbage-collected, or at exit.

    Args:
        log_dir: the directory given to `tensorboard --logdir`. Left out,
            the writer writes into the State's `Run` (`<run.dir>/tb`) or
            experiment-tree node, looked up when it first writes.
        name: the feature's name (default `tensor_board`).
        flush_secs: how often the writers flush on their own, in seconds.
        max_queue: events queued before a write to disk.
        purge_step: when resuming, hide events logged at or past this step
            (`SummaryWriter(purge_step=...)`), so curves do not double.

    Example:
        >>> import os, tempfile
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, TensorBoard, ScalarChart
        >>> with State() as s, tempfile.TemporaryDirectory() as log_dir:
        ...     trainer = Engine("trainer", lambda engine, batch: batch * 0.5, data=[1, 2, 3])
        ...     writer = TensorBoard(log_dir)
        ...     chart = ScalarChart(trainer.output_ref, trainer.n_iteration_completed_ref)
        ...     _ = trainer.run()
        ...     writer.close()
        ...     print(chart.tag, chart.n_written, sorted(os.listdir(log_dir)))
        engines/trainer/output 3 ['trainer']
    """

    category = "writers"

    # Not persisted: where this process writes is configuration, not training state, so a
    # restored checkpoint (a resumed run, an experiment tree's parent node) never redirects it.
    log_dir = StateObject("", doc="the directory holding one run directory per engine", persist=False)
    n_flushed = Counter(doc="times the writers were flushed (once per engine run)")

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        flush_secs: int = 120,
        max_queue: int = 10,
        purge_step: int | None = None,
    ) -> None:
        if log_dir is not None and (not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir)):
            raise TypeError(f"log_dir of TensorBoard must be a non-empty path or None, got {log_dir!r}")
        check.optional(check.non_negative_int)(purge_step, "purge_step", "TensorBoard")
        super().__init__(name=name)
        self.log_dir = "" if log_dir is None else os.fspath(log_dir)  # "": asked of the State's Run
        self.flush_secs = flush_secs
        self.max_queue = max_queue
        self.purge_step = purge_step
        self._writers: dict[str, Any] = {}
        self._layouts: dict[str, list[Any]] = {}  # owner name -> custom-scalars categories
        self._followed: weakref.WeakSet[Any] = weakref.WeakSet()
        state = self.require_state()
        for engine in state.engines:
            self._follow_engine(engine)
        state.engines.added_ref.attach(self._follow_engine, owner=self)
        # Writer threads end with the feature: the State calls `close()` when it is removed,
        # cleared or its `with State():` block ends; a finalizer (on the writers, not on the
        # feature) closes them when it is collected, and one exit hook serves every TensorBoard.
        weakref.finalize(self, _close_writers, self._writers)
        _LIVE.add(self)
        _register_exit_hook()

    # -- writers -------------------------------------------------------------
    def writer(self, run: str) -> Any:
        """The `SummaryWriter` of run directory `<log_dir>/<run>`, created on first use."""
        writer = self._writers.get(run)
        if writer is None and not is_main_process():
            writer = self._writers[run] = _Discard()  # one process writes the event files
        if writer is None:
            from torch.utils.tensorboard import SummaryWriter

            if not self.log_dir:
                self.log_dir = os.fspath(artifact_dir(self.state, TENSORBOARD, "TensorBoard()"))
            path = self.log_dir if run == ROOT_RUN else os.path.join(self.log_dir, run)
            _wait_for_a_later_file_name(path)
            writer = SummaryWriter(
                path, max_queue=self.max_queue, flush_secs=self.flush_secs, purge_step=self.purge_step
            )
            self._writers[run] = writer
        return writer

    @property
    def runs(self) -> list[str]:
        """The run directories written so far, relative to `log_dir`."""
        return list(self._writers)

    def add_scalar(self, run: str, tag: str, value: float, step: int) -> None:
        """Write one point of curve `tag` in run `run`."""
        self.writer(run).add_scalar(tag, value, step)

    def add_histogram(self, run: str, tag: str, values: Any, step: int) -> None:
        """Write the distribution of `values` (a tensor) as histogram `tag` in run `run`."""
        self.writer(run).add_histogram(tag, values, step)

    def set_layout(self, owner: str, categories: Iterable[Any]) -> None:
        """Set the custom-scalars categories of `owner` and rewrite the whole layout.

        TensorBoard keeps the last layout written to a run, so the categories
        of every owner (each chart plugin) are merged into one layout written
        to the log directory itself.
        """
        self._layouts[owner] = list(categories)
        self.writer(ROOT_RUN).file_writer.add_summary(_layout_summary(self.layout))

    @property
    def layout(self) -> Any:
        """The merged custom-scalars layout written so far (a `layout_pb2.Layout`)."""
        from tensorboard.plugins.custom_scalar import layout_pb2

        return layout_pb2.Layout(category=[c for cs in self._layouts.values() for c in cs])

    # -- lifecycle ------------------------------------------------------------
    def _follow_engine(self, engine: Any) -> None:
        if engine in self._followed or not hasattr(engine, "n_run_completed_ref"):
            return
        self._followed.add(engine)
        engine.n_run_completed_ref.attach(self.flush, priority=FLUSH_PRIORITY)

    def flush(self) -> None:
        """Write every pending event to disk."""
        for writer in self._writers.values():
            writer.flush()
        self.n_flushed += 1

    def close(self) -> None:
        """Flush and close every writer, ending their threads; writing again later opens new event files.

        The State calls it when this feature is removed, on `state.clear()` and
        when its `with State():` block ends.
        """
        _close_writers(self._writers)

    def __enter__(self) -> TensorBoard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _layout_summary(layout: Any) -> Any:
    """The summary holding a custom-scalars layout (what tensorboard's `summary.pb` builds with TensorFlow)."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.plugins.custom_scalar import metadata

    tensor = TensorProto(dtype="DT_STRING", string_val=[layout.SerializeToString()], tensor_shape=TensorShapeProto())
    plugin_data = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME)
    value = Summary.Value(tag=metadata.CONFIG_SUMMARY_TAG, tensor=tensor, metadata=SummaryMetadata(plugin_data=plugin_data))
    return Summary(value=[value])


def _close_writers(writers: dict[str, Any]) -> None:
    """Close the writers of one TensorBoard feature (kept as one dict, which a finalizer holds)."""
    closing = list(writers.values())
    writers.clear()
    for writer in closing:
        writer.close()


#: Every TensorBoard feature alive, closed by one exit hook.
_LIVE: weakref.WeakSet[TensorBoard] = weakref.WeakSet()
_EXIT_HOOK: list[Any] = []


def _register_exit_hook() -> None:
    if not _EXIT_HOOK:
        _EXIT_HOOK.append(_close_all_at_exit)
        atexit.register(_close_all_at_exit)


def _close_all_at_exit() -> None:
    for writer in list(_LIVE):
        writer.close()


# -- helpers shared by the charts ----------------------------------------------


def find_writer(state: Any, writer: TensorBoard | str | None, who: str) -> TensorBoard:
    """The writer a chart writes to: the one given, or the only one in `state`."""
    if isinstance(writer, TensorBoard):
        return writer
    writers = [] if state is None else list(state.writers)
    if isinstance(writer, str):
        for candidate in writers:
            if candidate.name == writer:
                return candidate
        raise ValueError(
            f"{who} has writer={writer!r}, but the state has no writer of that name; "
            f"writers: {[w.name for w in writers] or 'none'}"
        )
    if writer is not None:
        raise TypeError(f"writer of {who} must be a TensorBoard feature, its name, or None, got {writer!r}")
    tensorboards = [w for w in writers if isinstance(w, TensorBoard)]
    if len(tensorboards) == 1:
        return tensorboards[0]
    if not tensorboards:
        raise RuntimeError(
            f"{who} has nothing to write to: create a writer, e.g. TensorBoard('runs/experiment'), "
            "in the same state (before or after the chart)"
        )
    raise RuntimeError(
        f"{who} cannot choose between the writers {[w.name for w in tensorboards]}; pass writer=..."
    )


class _Discard:
    """The writer of a process other than the first in distributed training: it writes nothing."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self


def _wait_for_a_later_file_name(path: str) -> None:
    """Make sure a new event file in `path` sorts after the ones already there.

    TensorBoard reads a run's event files in name order, and a name is
    `events.out.tfevents.<second>.<host>.<pid>.<counter>`: two files opened
    in the same second sort by host, pid and counter as text, so file 10 of
    a process is read before its file 9 (a resume in the same process, in
    a notebook or a test), and a purge would hit the wrong events. In that
    one case, wait for the next second.
    """
    now = int(time.time())
    try:
        names = os.listdir(path)
    except OSError:
        return
    if any(name.startswith(f"events.out.tfevents.{now:010d}.") for name in names):
        time.sleep(max(0.0, now + 1 - time.time()))


def run_of(owner: Any) -> str:
    """The run directory of a feature's curves: the name of the engine it works for, else its own name."""
    engine = engine_behind(owner)
    return owner.name if engine is None else engine.name


def scalar_value(value: Any, path: str) -> float:
    """`value` as a Python float (a one-element tensor or array is read once).

    Raises:
        TypeError: naming `path`, when the value is not a number.
    """
    if isinstance(value, float):
        return value
    if isinstance(value, (int, bool)):
        return float(value)
    numel = getattr(value, "numel", None)
    size = getattr(value, "size", None)
    if callable(numel):
        count = numel()
    elif isinstance(size, int):
        count = size
    else:
        count = None
    if count is not None and count != 1:
        shape = tuple(getattr(value, "shape", ()))
        raise TypeError(
            f"cannot chart {path}: it holds {type(value).__name__} of shape {shape}, not a single number; "
            "chart a scalar (e.g. an OutputHandler reducing it)"
        )
    try:
        return float(value.item() if count == 1 and hasattr(value, "item") else value)
    except (TypeError, ValueError):
        raise TypeError(
            f"cannot chart {path}: its value {value!r} of type {type(value).__name__} is not a number"
        ) from None


def scalar_values(value: Any, path: str) -> float | list[float]:
    """A number as a float, or a 1-D value (tensor, array, list, tuple) as its elements' floats.

    A chart writes the elements as one curve each, as per-class metrics
    (`Precision(average=False)`) need.

    Raises:
        TypeError: naming `path`, when the value is neither (a matrix, a dict, a string).
    """
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        shape = getattr(value, "shape", None)
        if shape is None or len(shape) == 0 or (len(shape) == 1 and shape[0] == 1):
            return scalar_value(value, path)
        if len(shape) > 1:
            raise TypeError(
                f"cannot chart {path}: it holds {type(value).__name__} of shape {tuple(shape)}; a chart "
                "takes a number or a 1-D value (one curve per element): reduce it with an OutputHandler"
            )
        items = value.tolist()
    return [scalar_value(item, f"{path}[{i}]") for i, item in enumerate(items)]


def step_value(value: Any, path: str) -> int:
    """`value` as an int TensorBoard step.

    Raises:
        TypeError: naming `path`, when the value is not a whole number.
    """
    if type(value) is int:
        return value
    try:
        return operator.index(value)
    except TypeError:
        pass
    number = None
    try:
        number = scalar_value(value, path)
    except TypeError:
        pass
    if number is not None and math.isfinite(number) and number == int(number):
        return int(number)
    raise TypeError(
        f"cannot use {path} as the x axis: its value {value!r} is not a whole number, and TensorBoard "
        "steps are integers; use a counter (n_samples, n_epoch_completed, ...), or for time a "
        "Clock's seconds_ref or milliseconds_ref"
    )
