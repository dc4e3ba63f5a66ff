"""The event trace: every set of every state object, with the callbacks it ran.

`EventTrace(state)` observes a State (through `State.observe`, which swaps
the per-object dispatchers while the trace is active, so an inactive or
never-started trace costs nothing). It records each fired event and each
callback with its duration and nesting, exports a Chrome / Perfetto trace
and summarizes the time spent per callback.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import threading
import time
from typing import Any, NamedTuple

from statefire.frame import Feature, State, check, summarize
from statefire.frame.state import Container

__all__ = ["EventTrace", "TraceRecord", "SummaryRow", "TraceSummary"]

_FUNCTION_PREFIX = "fn:"


@dataclasses.dataclass(slots=True, eq=False, repr=False)  # one per span: slots keep the buffer small
class TraceRecord:
    """One recorded span: an event (a set) or a callback it ran.

    Attributes:
        kind: `"event"` or `"callback"`.
        name: the ref path for an event, the callback's readable name for a callback.
        ref: the path of the object set (for a callback, the object it is attached to).
        value: a short summary of the value set (events only).
        depth: how many spans were open around this one (0: set by plain code).
        parent: the span this one happened inside, or None.
        thread: the id of the thread that set the object.
        start_ns, end_ns: `time.perf_counter_ns()` at entry and exit.
    """

    kind: str
    name: str
    ref: str
    value: str | None
    depth: int
    parent: TraceRecord | None
    thread: int
    _trace: EventTrace
    setter: str | None = dataclasses.field(init=False, default=None)  # callbacks: the graph node of their owner
    key: tuple[str, str] | None = dataclasses.field(init=False, default=None)
    start_ns: int = dataclasses.field(init=False, default_factory=time.perf_counter_ns)  # last: at the entry itself
    end_ns: int = dataclasses.field(init=False, default=-1)

    @property
    def duration_s(self) -> float:
        """Seconds between entry and exit (0 while still open)."""
        return max(self.end_ns - self.start_ns, 0) / 1e9

    @property
    def wall_time(self) -> float:
        """When the span started, in seconds since the epoch (like `time.time()`)."""
        trace = self._trace
        return trace.started_at + (self.start_ns - trace._t0_ns) / 1e9

    def __repr__(self) -> str:
        what = f"{self.name} = {self.value}" if self.kind == "event" else f"{self.name} on {self.ref}"
        return f"<{self.kind} {what} ({self.duration_s * 1e6:.1f} µs, depth {self.depth})>"


class SummaryRow(NamedTuple):
    """Time spent in one callback attached to one object."""

    callback: str
    ref: str
    count: int  # type: ignore[assignment]  # the published field name; it hides tuple.count
    total_s: float
    mean_s: float
    max_s: float


class TraceSummary(list):
    """Rows of `SummaryRow`, most total time first; prints as a table."""

    def __str__(self) -> str:
        headers = ("callback", "ref", "count", "total_s", "mean_s", "max_s")
        body = [
            (r.callback, r.ref, str(r.count), f"{r.total_s:.6f}", f"{r.mean_s:.6f}", f"{r.max_s:.6f}")
            for r in self
        ]
        total = sum(r.total_s for r in self)
        footer = ("total", "", str(sum(r.count for r in self)), f"{total:.6f}", "", "")
        table = [headers, *body, footer]
        widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
        numeric = (False, False, True, True, True, True)

        def line(row: tuple[str, ...]) -> str:
            cells = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=False)]
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(headers), rule, *(line(r) for r in body), rule, line(footer)])

    def __repr__(self) -> str:
        return str(self)


class EventTrace:
    """Records every fired event of a State while active.

    For each set: when, the object's path, a summary of the value, and each
    callback it ran with its duration; spans nest (an event set inside a
    callback is that callback's child). The buffer of spans keeps the last
    `max_events`; `summary()` and `counts()` cover the whole trace, even
    when older spans were dropped.

    Args:
        state: the State to observe; the current one by default.
        max_events: how many spans (events and callbacks) to keep.

    Example:
        >>> from statefire.frame import State
        >>> from statefire.features import Engine
        >>> with State() as s:
        ...     engine = Engine("engine", lambda e, b: b * 2, data=[1, 2, 3])
        ...     handle = engine.output_ref.attach(lambda value: None)
        ...     with EventTrace(s) as trace:
        ...         _ = engine.run()
        >>> trace.counts()["engines.engine.output"]
        3
        >>> [(row.ref, row.count) for row in trace.summary()]
        [('engines.engine.output', 3)]
    """

    def __init__(self, state: State | None = None, *, max_events: int = 100_000) -> None:
        if state is None:
            state = State.current()
        if not isinstance(state, State):
            raise TypeError(f"EventTrace needs a State, got {state!r}")
        check.positive_int(max_events, "max_events", "EventTrace")
        self.state = state
        self.max_events = max_events
        self._records: collections.deque[TraceRecord] = collections.deque(maxlen=max_events)
        self._n_records = 0
        self._local = threading.local()
        self._handle: Any = None
        self._callback_info: dict[Any, tuple[str, str, str]] = {}
        self._stats: dict[tuple[str, str], list[int]] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        self._sets: collections.Counter[tuple[str, str]] = collections.Counter()
        self._threads: dict[int, str] = {}
        self.started_at = time.time()
        self._t0_ns = time.perf_counter_ns()

    # -- control --------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True between `start()` and `stop()`."""
        return self._handle is not None

    def start(self) -> EventTrace:
        """Start recording (again, after a `stop()`: the new spans are added)."""
        if self._handle is not None:
            raise RuntimeError("this EventTrace is already recording; stop() it before starting it again")
        self._handle = self.state.observe(self)
        return self

    def stop(self) -> EventTrace:
        """Stop recording; the dispatchers are swapped back, so tracing costs nothing after."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.remove()
        return self

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self._records.clear()
        self._n_records = 0
        self._stats.clear()
        self._counts.clear()
        self._sets.clear()

    def __enter__(self) -> EventTrace:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "recording" if self.active else "stopped"
        return f"<EventTrace {state}: {sum(self._counts.values())} events, {len(self._records)} spans kept>"

    # -- the observer protocol (called by State.observe) ------------------------
    def _stack(self) -> list[TraceRecord]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
            thread = threading.current_thread()
            self._threads[thread.ident or 0] = thread.name
        return stack

    def enter_event(self, ref: Any, value: Any) -> TraceRecord:
        stack = self._stack()
        parent = stack[-1] if stack else None
        path = ref.path
        record = TraceRecord("event", path, path, _value_summary(value), len(stack), parent,
                             threading.get_ident(), self)
        stack.append(record)
        self._counts[path] += 1
        if parent is not None and parent.setter is not None:
            self._sets[(parent.setter, path)] += 1
        return record

    def exit_event(self, record: TraceRecord) -> None:
        self._close(record)

    def enter_callback(self, handle: Any) -> TraceRecord:
        info = self._callback_info.get(handle)
        if info is None:
            info = self._callback_info[handle] = _callback_info(handle)
        name, ref, setter = info
        stack = self._stack()
        parent = stack[-1] if stack else None
        record = TraceRecord("callback", name, ref, None, len(stack), parent, threading.get_ident(), self)
        record.setter = setter
        record.key = (name, ref)
        stack.append(record)
        return record

    def exit_callback(self, record: TraceRecord) -> None:
        self._close(record)
        elapsed = record.end_ns - record.start_ns
        stats = self._stats.get(record.key)  # type: ignore[arg-type]
        if stats is None:
            self._stats[record.key] = [1, elapsed, elapsed]  # type: ignore[index]
        else:
            stats[0] += 1
            stats[1] += elapsed
            if elapsed > stats[2]:
                stats[2] = elapsed

    def _close(self, record: TraceRecord) -> None:
        record.end_ns = time.perf_counter_ns()
        stack = self._stack()
        if stack and stack[-1] is record:
            stack.pop()
        elif record in stack:  # unwound by an exception past an inner span
            del stack[stack.index(record):]
        self._records.append(record)
        self._n_records += 1

    # -- results ----------------------------------------------------------------
    @property
    def records(self) -> list[TraceRecord]:
        """The spans kept, events and callbacks, in start order."""
        return sorted(self._records, key=lambda r: (r.start_ns, r.depth))

    @property
    def events(self) -> list[TraceRecord]:
        """The event spans kept, in start order."""
        return [r for r in self.records if r.kind == "event"]

    @property
    def dropped(self) -> int:
        """How many spans the bounded buffer let go (the oldest first)."""
        return self._n_records - len(self._records)

    def counts(self) -> dict[str, int]:
        """How many times each object was set, by path, over the whole trace."""
        return dict(self._counts)

    def sets(self) -> list[tuple[str, str, int]]:
        """`(setter, path, count)`: objects set inside a callback, by the callback's owner.

        The setter is a feature's path, a container's category, or
        `"fn:<name>"` for a plain function, as in `DataFlowGraph`.
        """
        return [(setter, path, n) for (setter, path), n in sorted(self._sets.items())]

    def summary(self) -> TraceSummary:
        """One row per callback and object: count, total, mean and max seconds.

        Like ignite's `HandlersTimeProfiler`; `print()` it for a table.
        Nested time counts in each enclosing callback too (an evaluator run
        inside a trainer callback counts in that callback).
        """
        rows = [
            SummaryRow(name, ref, count, total / 1e9, total / count / 1e9, most / 1e9)
            for (name, ref), (count, total, most) in self._stats.items()
        ]
        rows.sort(key=lambda r: (-r.total_s, r.callback, r.ref))
        return TraceSummary(rows)

    def to_chrome_trace(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """The trace in the Chrome trace-event format; written to `path` if given.

        Open the file in `chrome://tracing` or https://ui.perfetto.dev: each
        thread is a track, events and callbacks are `X` (complete) spans that
        nest by time, `M` metadata names the process and the tracks.

        Returns:
            The JSON document as a dict (`{"traceEvents": [...], ...}`).
        """
        pid = os.getpid()
        tids: dict[int, int] = {}
        spans: list[dict[str, Any]] = []
        for record in self.records:
            if record.end_ns < 0:
                continue  # still open (stopped from inside a callback)
            tid = tids.setdefault(record.thread, len(tids) + 1)
            span: dict[str, Any] = {
                "name": record.name,
                "cat": record.kind,
                "ph": "X",
                "ts": (record.start_ns - self._t0_ns) / 1e3,
                "dur": (record.end_ns - record.start_ns) / 1e3,
                "pid": pid,
                "tid": tid,
            }
            if record.kind == "event":
                span["args"] = {"value": record.value, "depth": record.depth}
            else:
                span["args"] = {"ref": record.ref, "depth": record.depth}
            spans.append(span)
        metadata: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "ts": 0, "pid": pid, "tid": 0,
             "args": {"name": "statefire events"}},
        ]
        for thread, tid in tids.items():
            name = self._threads.get(thread, f"thread {thread}")
            metadata.append({"name": "thread_name", "ph": "M", "ts": 0, "pid": pid, "tid": tid,
                             "args": {"name": f"{name} (sets and callbacks)"}})
            metadata.append({"name": "thread_sort_index", "ph": "M", "ts": 0, "pid": pid, "tid": tid,
                             "args": {"sort_index": tid}})
        document = {
            "traceEvents": metadata + spans,
            "displayTimeUnit": "ms",
            "otherData": {
                "tool": "statefire EventTrace",
                "started_at": self.started_at,
                "dropped_spans": self.dropped,
            },
        }
        if path is not None:
            with open(os.fspath(path), "w", encoding="utf-8") as file:
                json.dump(document, file)
        return document


def _callback_info(handle: Any) -> tuple[str, str, str]:
    """(readable name, path it is attached to, the graph node of its owner)."""
    ref = handle.ref
    path = "?" if ref is None else ref.path
    name = handle.name
    owner = handle.callback_owner
    if isinstance(owner, (Feature, Container)):
        return name, path, owner.path
    callback = handle.callback
    return name, path, _FUNCTION_PREFIX + function_label(callback, name)


def function_label(callback: Any, name: str) -> str:
    """A readable, findable name for a callback: lambdas get their file and line."""
    if "<lambda>" in name:
        code = getattr(callback, "__code__", None)
        if code is not None:
            return f"{name} at {os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    return name


def _value_summary(value: Any) -> str:
    """A short summary that never reads a tensor's data off its device (no sync)."""
    if type(value) is int:  # counters: the common case
        return str(value)
    device = getattr(value, "device", None)
    if device is not None and getattr(device, "type", "cpu") != "cpu":
        shape = getattr(value, "shape", ())
        return f"{type(value).__name__}[{', '.join(str(int(d)) for d in shape)}] on {device}"
    try:
        return summarize(value)
    except Exception:  # a summary must never break the set it describes
        return f"<{type(value).__name__}>"
