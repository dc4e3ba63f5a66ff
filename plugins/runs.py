"""Runs that remember their code: a directory, a record and a code snapshot for every run.

A `Run` in a State gives the experiment a directory `root/<experiment>/<id>/`
holding `run.json` (status, times, config, git snapshot, final metrics,
kept current), `config.json`, `series.jsonl` (every metric value with its
step) and, at the end, `flow.svg`; `TensorBoard()` and `Checkpoint()` made
without a directory write into it. The run is indexed in the `Registry` of
its root from its start.

What the Run costs the training loop: one small callback per metric set
(an append to a list), and at each epoch end of the engines that follow no
other a hand-over to a writer thread. That thread writes `series.jsonl`,
`run.json` (temp file, fsync, rename) and the registry (one transaction),
and a heartbeat when nothing came for 30 s; the fsyncs never stall training,
and epoch ends closer than a second apart are written together.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import platform
import re
import secrets
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from statefire.features._files import write_atomically
from statefire.frame import Counter, Feature, FilteredRef, Ref, State, StateObject, as_ref

from . import _snapshot
from ._snapshot import RunWarning
from .registry import SERIES_FILE, Registry, RegistryError, process_started, read_series_file

__all__ = ["Run", "RunWarning", "RunError", "HEARTBEAT_S"]

#: Seconds between heartbeats while the run is active.
HEARTBEAT_S = 30.0
#: Epoch ends closer than this are written together (an fsync'ed file per epoch of 30 ms would cost).
_MIN_WRITE_S = 1.0
#: Points buffered before a flush forced from the hot path (normally epoch ends flush).
_FLUSH_POINTS = 20_000
_EXPERIMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

# Defaults that `statefire run --root/--experiment` gives a Run the script makes itself.
_cli_defaults: dict[str, Any] = {}
# Runs not finished yet: finished at process exit (completed), by an uncaught exception (failed) or SIGTERM.
_active: list[Run] = []


class RunError(RuntimeError):
    """A Run was created or resumed in a way that cannot work (a second Run, an unknown id to resume)."""


def now_iso() -> str:
    """The current UTC time in ISO 8601, to the millisecond."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """An id that sorts by start time and is unique across processes and hosts (48 random bits)."""
    t = _dt.datetime.now(_dt.timezone.utc)
    return f"{t:%Y%m%d-%H%M%S}.{t.microsecond // 1000:03d}-{secrets.token_hex(6)}"


def atomic_write(path: Path, text: str, *, temp: Path | None = None) -> None:
    """Write `text` (UTF-8) to `path` atomically: `statefire.features._files.write_atomically`."""
    write_atomically(path, lambda out: out.write(text.encode("utf-8")), temp=temp)


def _jsonable(value: Any) -> Any:
    """What json cannot write: a one-element tensor or array as its number, anything else as its repr."""
    number = _number(value)
    return repr(value) if number is None else number


def _number(value: Any) -> float | int | None:
    """`value` as a Python number when it is one (a one-element tensor or array included), else None."""
    if isinstance(value, (int, float)):
        return value if not isinstance(value, bool) else int(value)
    numel = getattr(value, "numel", None)
    size = numel() if callable(numel) else getattr(value, "size", None)
    if size == 1 and hasattr(value, "item"):
        try:
            item = value.item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return item if isinstance(item, (int, float)) else None
    return None


def _point_line(point: tuple[Any, ...]) -> str:
    """One series point as a JSON line `[key, step, value, wall_time]`."""
    return json.dumps(point, default=_jsonable) + "\n"


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    def version(module: str, dist: str) -> str | None:
        loaded = sys.modules.get(module)
        found = getattr(loaded, "__version__", None)
        if isinstance(found, str):
            return found
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"python": platform.python_version(), "torch": version("torch", "torch"),
            "ignite": version("ignite", "pytorch-ignite"), "statefire": version("statefire", "statefire")}


def _script_dir() -> Path:
    """The directory of the running script (`__main__`), or the working directory (REPL, notebooks)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path and os.path.isfile(path) and not _is_tool(path):
        return Path(os.path.abspath(path)).parent
    return Path.cwd()


def _is_tool(path: str) -> bool:
    """pytest, ipykernel and friends run as `__main__`: their directory is not the experiment's code."""
    return "site-packages" in path or "dist-packages" in path or os.path.basename(path) in ("pytest", "__main__.py")


def _agree(value: Any) -> Any:
    """`value` of the main process, in every process of a running process group (torch.distributed)."""
    from statefire.features.distributed import process_group

    group = process_group()
    if group is None:
        return value
    holder = [value]
    group.broadcast_object_list(holder, src=0)
    return holder[0]


class Run(Feature):
    """A run of the experiment in this State: its directory, record, code snapshot and metric series.

    Created before or after the other features, before `run()`. The run
    ends `completed` at process exit or `finish()`, `failed` when an engine
    raises or the script ends on an uncaught exception, `interrupted` on
    KeyboardInterrupt or SIGTERM. Only the main process of a distributed
    run writes; every process gets the same `id` and `dir`.

    Args:
        root: the runs root: `root/<experiment>/<id>/` and `root/registry.sqlite`.
        experiment: the experiment's name, a folder of `root`.
        name: a display name (the feature itself is always `state.run`).
        snapshot: commit the code as it is on disk under
            `refs/statefire/runs/<id>` (the git work tree holding the script,
            or the one holding this path); False: no snapshot.
        x_axis_ref: the step of every series point (default:
            `state.trainer.n_samples` when a trainer exists, else the count of sets).
        track: more refs whose every set is recorded as a series (key: the ref's path).
        resume: an id, a unique id prefix or `"latest"`: continue that run
            (same directory and id, series continue).

    Example:
        >>> import json, tempfile
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, AverageOutput
        >>> from statefire.plugins import Run
        >>> with tempfile.TemporaryDirectory() as root, State() as s:
        ...     trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0, 3.0], n_epochs=2)
        ...     _ = AverageOutput(engine=trainer, name="mean")
        ...     run = Run(root, experiment="demo", snapshot=False)
        ...     _ = trainer.run()
        ...     run.finish()
        ...     record = json.loads((run.dir / "run.json").read_text())
        ...     print(record["status"], record["metrics"], s.run is run, run.dir.parent.name)
        completed {'mean': 2.0} True demo
    """

    category = "plugins"

    id: str  #: the run's id: sorts by start time, unique across processes and hosts
    dir: Path  #: root / experiment / id

    status = StateObject("running", persist=False, doc="running, completed, failed or interrupted")
    n_points = Counter(persist=False, doc="series points recorded")

    def __init__(
        self,
        root: str | os.PathLike[str] = "runs",
        *,
        experiment: str = "default",
        name: str | None = None,
        snapshot: bool | str | os.PathLike[str] = True,
        x_axis_ref: Ref | FilteredRef | None = None,
        track: Iterable[Ref | FilteredRef] = (),
        resume: str | None = None,
    ) -> None:
        if root == "runs" and "root" in _cli_defaults:
            root = _cli_defaults["root"]
        if experiment == "default" and "experiment" in _cli_defaults:
            experiment = _cli_defaults["experiment"]
        if not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
            raise TypeError(f"root of Run must be a non-empty path, got {root!r}")
        if not isinstance(experiment, str) or not _EXPERIMENT.fullmatch(experiment):
            raise ValueError(
                f"experiment of Run must be a folder name of letters, digits, '_', '-' or '.', got {experiment!r}"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name of Run must be a string or None, got {name!r}")
        if not isinstance(snapshot, (bool, str, os.PathLike)):
            raise TypeError(f"snapshot of Run must be True, False or a path in the git work tree, got {snapshot!r}")
        if resume is not None and (not isinstance(resume, str) or not resume):
            raise TypeError(f"resume of Run must be a run id, a unique prefix or 'latest', got {resume!r}")
        x_ref = None if x_axis_ref is None else as_ref(x_axis_ref, "x_axis_ref of Run")
        track_refs = [as_ref(r, "each ref in track of Run") for r in ([track] if isinstance(track, (Ref, FilteredRef))
                                                                      else list(track))]
        current = State.current()
        for feature in current.features:
            if isinstance(feature, Run):
                raise RunError(
                    f"this State already has a Run ({feature.path}, id {feature.id}); a State holds one Run: "
                    "use state.run, or make the second experiment in its own `with State():`"
                )
        super().__init__(name="run")
        self.root = Path(root)
        self.experiment = experiment
        self.display_name = name
        self.registry = Registry(self.root)
        self._x_ref = None if x_ref is None else (x_ref.ref if isinstance(x_ref, FilteredRef) else x_ref)
        self._x: tuple[Any, str] | None = None if self._x_ref is None else (self._x_ref.owner, self._x_ref.name)
        self._counts: dict[str, int] = {}
        self._buffer: list[tuple[str, Any, float, float]] = []
        self._last: dict[str, float | int] = {}
        self._lock = threading.RLock()
        self._finished = False
        self._signal: str | None = None
        self._engine_error: dict[str, str] | None = None
        self._mirrors: list[Any] = []
        self._warned: set[str] = set()
        self._writer: threading.Thread | None = None
        self._wake = threading.Condition()
        self._pending: tuple[dict[str, Any], list[tuple[Any, ...]]] | None = None
        self._submitted = self._written = 0
        self._closing = self._urgent = False
        self._pid = os.getpid()
        self._t0 = time.monotonic()
        self._ended_at: float | None = None
        self._config_written: dict[str, Any] | None = None

        from statefire.features.distributed import is_main_process

        self.is_writer = is_main_process()
        record: dict[str, Any] | None = None
        opened: tuple[str | None, str | None] = (None, None)  # other processes get the main one's
        if self.is_writer:
            run_id, experiment, record = self._open(resume, snapshot)
            opened = (run_id, experiment)
        agreed_id, agreed_experiment = _agree(opened)
        self.id = agreed_id
        self.experiment = agreed_experiment
        self.dir = self.root / self.experiment / self.id
        if not self.is_writer:
            self._finished = True  # other processes record nothing
            return
        assert record is not None  # the writer opened it
        self._record: dict[str, Any] = record
        self._prior_duration = float(record.get("duration") or 0.0)
        self.status = "running"
        try:
            self._write(self._capture(), [], strict=True)
        except RegistryError as error:
            self._record.update(status="failed", error={"type": "RegistryError", "message": str(error)})
            atomic_write(self.dir / "run.json", self._dumps())
            raise
        state = self.require_state()
        for metric in list(state.metrics):
            self._follow_metric(metric)
        state.metrics.added_ref.attach(self._follow_metric, owner=self)
        for engine in list(state.engines):
            self._follow_engine(engine)
        state.engines.added_ref.attach(self._follow_engine, owner=self)
        for ref in track_refs:
            base = ref.ref if isinstance(ref, FilteredRef) else ref
            ref.attach(self._recorder(base.path, metric=False), owner=self)
        _active.append(self)
        _install_exit_hooks()
        self._writer = threading.Thread(target=self._writer_loop, name=f"statefire-run-{self.id}", daemon=True)
        self._writer.start()

    # -- opening ----------------------------------------------------------------
    def _open(self, resume: str | None, snapshot: bool | str | os.PathLike[str]) -> tuple[str, str, dict[str, Any]]:
        started = now_iso()
        base = {"heartbeat": started, "argv": list(sys.argv), "cwd": os.getcwd(), "host": socket.gethostname(),
                "pid": os.getpid(), "process_started": process_started(os.getpid()), "versions": _versions(),
                "status": "running", "ended": None, "error": None}
        if resume is not None:
            return self._reopen(resume, base)
        for _ in range(5):
            run_id = new_run_id()
            directory = self.root / self.experiment / run_id
            try:
                directory.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:  # 48 random bits in the same millisecond: try again
                continue
        else:
            raise RunError(f"could not make a new run directory under {str(self.root / self.experiment)!r}")
        git = None
        if snapshot is not False:
            start = _script_dir() if snapshot is True else Path(snapshot)
            git = _snapshot.take(start, run_id, [self.root])
        record = {"id": run_id, "experiment": self.experiment, "name": self.display_name, "started": started,
                  "duration": 0.0, **base, "config": {}, "git": git, "metrics": {}}
        return run_id, self.experiment, record

    def _reopen(self, resume: str, base: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        from .registry import UnknownRunError

        try:
            found = self.registry.get(resume, experiment=self.experiment if resume == "latest" else None)
        except UnknownRunError as error:
            raise RunError(f"cannot resume run {resume!r}: {error}") from None
        path = found.dir / "run.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RunError(
                f"cannot resume run {found.id!r}: its record {str(path)!r} is unreadable ({error})"
            ) from None
        record.update(base)
        record.pop("tree", None)
        record.setdefault("resumed", []).append(base["heartbeat"])
        if self.display_name is not None:
            record["name"] = self.display_name
        self.display_name = record.get("name")
        self._last.update(record.get("metrics") or {})
        self.dir = found.dir
        return found.id, record.get("experiment", found.experiment), record

    # -- what the run follows ----------------------------------------------------------
    def _follow_metric(self, metric: Any) -> None:
        metric.value_ref.attach(self._recorder(metric.name, metric=True), owner=self)

    def _follow_engine(self, engine: Any) -> None:
        engine.exception_ref.attach(self._engine_failed, owner=self)

        def save() -> None:
            # The engines that follow no other (the trainer): an evaluator's epoch ends inside the trainer's.
            if engine.run_on is None and not self._finished:
                self._save()

        # After the evaluators and charts on the same ref: the metrics recorded are this epoch's.
        engine.n_epoch_completed_ref.attach(save, priority=-1000, owner=self)
        engine.n_run_completed_ref.attach(save, priority=-1000, owner=self)
        if engine.name == "trainer" and self._x_ref is None:
            self._x = (engine, "n_samples")

    def resume_from(self, info: Any) -> None:
        """Drop the series points recorded past the checkpoint being loaded (`Checkpoint.load` calls it).

        A resumed run logs those steps again; without this, a crash between two
        checkpoints would leave every curve with two points at each such step.
        """
        if not self.is_writer or self._x is None:
            return  # steps counted by sets cannot be matched to the checkpoint
        owner, name = self._x
        try:
            last = info.restored_value(f"{owner.path}.{name}")
        except KeyError:
            return
        self._save(wait=True)  # whatever is buffered reaches the files first
        run_id = self.id
        with self._lock:
            path = self.dir / SERIES_FILE
            if path.exists():
                kept = [point for point in read_series_file(path) if not point[1] > last]
                atomic_write(path, "".join(_point_line(point) for point in kept))

            def drop(conn: Any) -> None:
                conn.execute("DELETE FROM series WHERE run_id = ? AND step > ?", (run_id, last))

            self.registry._write(drop)

    def _recorder(self, key: str, metric: bool) -> Any:
        buffer_owner = self
        last = self._last if metric else None
        counts = self._counts
        clock = time.time

        def record(value: Any) -> None:
            number = value if type(value) is float or type(value) is int else _number(value)
            if number is None:
                return
            x = buffer_owner._x
            if x is None:
                step = counts[key] = counts.get(key, 0) + 1
            else:
                step = x[0].__dict__[x[1]]
            buffer = buffer_owner._buffer
            buffer.append((key, step, number, clock()))
            if last is not None:
                last[key] = number
            if len(buffer) >= _FLUSH_POINTS:
                buffer_owner._save()

        record.__qualname__ = f"Run.record[{key}]"
        return record

    def _engine_failed(self, error: BaseException) -> None:
        if error is not None and not self._finished:
            self._engine_error = {"type": type(error).__name__, "message": str(error)}
            self.status = "failed"
            self._save(wait=True)  # on disk before the exception reaches anything that could end the process

    # -- writing: the main thread captures, a writer thread writes -------------------------------
    def _dumps(self) -> str:
        return json.dumps(self._record, indent=1, default=_jsonable, ensure_ascii=False)

    def _capture(self) -> dict[str, Any]:
        """The record's changing fields, read on the main thread (the writer never touches the State)."""
        end = self._ended_at if self._ended_at is not None else time.monotonic()
        update = {"heartbeat": now_iso(), "duration": round(self._prior_duration + end - self._t0, 3),
                  "metrics": dict(self._last), "status": self.__dict__["status"]}
        state = self.state
        if state is not None:
            update["config"] = state.config()
        return update

    def _save(self, wait: bool = False) -> None:
        """Hand the buffered points and the current record to the writer thread (or write them now).

        A writer still busy with an earlier hand-over finds one pending item:
        the newest record with every point, so memory stays bounded however
        short the epochs are.
        """
        points, self._buffer = self._buffer, []
        if points:
            self.n_points += len(points)
        update = self._capture()
        writer = self._writer
        if writer is None or not writer.is_alive():
            self._write(update, points)
            return
        with self._wake:
            pending = self._pending
            self._pending = (update, points if pending is None else pending[1] + points)
            self._submitted += 1
            ticket = self._submitted
            if wait:
                self._urgent = True
                self._wake.notify_all()
            while wait and self._written < ticket and writer.is_alive():
                self._wake.wait(1.0)

    def flush(self) -> None:
        """Write the buffered series points and the record now: series.jsonl, run.json, the registry."""
        self._save(wait=True)

    def _writer_loop(self) -> None:
        """Write what the main thread hands over, at most once per `_MIN_WRITE_S` unless asked to
        wait; with nothing handed over for HEARTBEAT_S seconds, a heartbeat."""
        last = time.monotonic()
        while True:
            with self._wake:
                while not self._closing:
                    now = time.monotonic()
                    if self._pending is not None and (self._urgent or now - last >= _MIN_WRITE_S):
                        break
                    if self._pending is None and now - last >= HEARTBEAT_S:
                        break
                    # A poll rather than a wake-up per hand-over: each wake would take the GIL from training.
                    self._wake.wait(min(_MIN_WRITE_S, max(last + HEARTBEAT_S - now, 0.001)))
                item, self._pending = self._pending, None
                ticket, closing, self._urgent = self._submitted, self._closing, False
            if item is not None:
                self._guarded_write(*item)
            elif closing:
                return
            else:
                beat = {
                    "heartbeat": now_iso(),
                    "duration": round(self._prior_duration + time.monotonic() - self._t0, 3),
                }
                self._guarded_write(beat, [])
            last = time.monotonic()
            with self._wake:
                self._written = ticket
                self._wake.notify_all()

    def _guarded_write(self, update: dict[str, Any], points: list[tuple[Any, ...]]) -> None:
        try:
            self._write(update, points)
        except Exception as error:  # a full disk must not kill training; say it once
            self._warn("write", f"run {self.id} could not write its record: {error!r}")

    def _write(self, update: dict[str, Any], points: list[tuple[Any, ...]], strict: bool = False) -> None:
        """Append the points to series.jsonl, rewrite run.json atomically, update the registry in one transaction."""
        with self._lock:
            if points:
                with open(self.dir / SERIES_FILE, "a", encoding="utf-8") as out:
                    out.write("".join(_point_line(p) for p in points))
            record = self._record
            record.update(update)
            if self._engine_error is not None and record.get("error") is None:
                record["error"] = self._engine_error
            atomic_write(self.dir / "run.json", self._dumps())
            config_changed = record.get("config") != self._config_written
            if config_changed:
                atomic_write(self.dir / "config.json", json.dumps(record["config"], indent=1, default=_jsonable))
                self._config_written = dict(record["config"])
            run_id = self.id
            try:
                self.registry.write(record, [(run_id, *p) for p in points], run_dir=self.dir, params=config_changed)
            except RegistryError as error:  # run.json and series.jsonl have it all: rebuild() recovers it
                if strict:
                    raise
                self._warn("registry", f"run {run_id} could not update the registry: {error}")
            if points:
                for mirror in self._mirrors:
                    mirror.series(self, points)

    def _warn(self, topic: str, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            warnings.warn(message, RunWarning, stacklevel=3)

    # -- artifacts --------------------------------------------------------------------------
    def artifact_dir(self, kind: str) -> Path:
        """Where a writer given no directory writes: `run.dir / kind` ("tb", "checkpoints")."""
        return self.dir / kind

    @property
    def record(self) -> dict[str, Any]:
        """A copy of what `run.json` holds."""
        with self._lock:
            return json.loads(self._dumps()) if self.is_writer else {"id": self.id}

    # -- ending -----------------------------------------------------------------------------
    def finish(self, error: BaseException | None = None) -> None:
        """End the run: `completed`, or `failed`/`interrupted` with `error`; write the record, tree and flow.svg.

        Called at process exit when the script did not call it; a second call does nothing.
        """
        if self._finished or os.getpid() != self._pid:
            return
        self._finished = True
        if self in _active:
            _active.remove(self)
        if self._writer is not None and self._writer.is_alive() and self._writer is not threading.current_thread():
            with self._wake:
                self._closing = True  # the writer writes what is pending, then ends
                self._wake.notify_all()
            self._writer.join(timeout=60)
        if self._signal is not None or isinstance(error, KeyboardInterrupt):
            status = "interrupted"
            info = {"type": self._signal or type(error).__name__, "message": str(error or "")}
        elif error is not None:
            status, info = "failed", {"type": type(error).__name__, "message": str(error)}
        elif self._engine_error is not None:
            status, info = "failed", self._engine_error
        else:
            status, info = "completed", None
        self._ended_at = time.monotonic()
        self.status = status
        state = self.state
        with self._lock:
            self._record["ended"] = now_iso()
            self._record["error"] = info
            if state is not None:
                try:
                    self._record["tree"] = state.tree()
                except Exception as problem:  # a broken repr must not lose the record
                    self._record["tree"] = f"<state.tree() failed: {problem!r}>"
        if state is not None:
            try:
                from .dataflow import DataFlowGraph

                DataFlowGraph(state).save(self.dir / "flow.svg")
            except Exception as problem:
                self._warn("flow", f"flow.svg of run {self.id} was not drawn: {problem!r}")
        self._save()  # the writer has stopped: written now, in this thread
        for mirror in self._mirrors:
            mirror.finish(self)

    def _finish_quietly(self, error: BaseException | None = None) -> None:
        try:
            self.finish(error)
        except Exception as problem:  # at exit, report rather than raise from a hook
            print(f"statefire: run {self.id} could not record its end: {problem!r}", file=sys.stderr)

    def __repr__(self) -> str:
        return f"<Run {self.id} ({self.experiment}) {self.__dict__.get('status')} at {self.__dict__.get('dir')!s}>"


# -- process-wide hooks: exit, uncaught exceptions, SIGTERM ---------------------------------------
_hooks_installed = False
_previous_excepthook = sys.excepthook


def _install_exit_hooks() -> None:
    global _hooks_installed, _previous_excepthook
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _at_exit() -> None:
    for run in list(_active):
        run._finish_quietly()


def _excepthook(kind: type[BaseException], error: BaseException, traceback: Any) -> None:
    for run in list(_active):
        run._finish_quietly(error)
    _previous_excepthook(kind, error, traceback)


def _on_sigterm(signum: int, frame: Any) -> None:
    for run in _active:
        run._signal = "SIGTERM"
    # Unwind like an exit (finally blocks run, atexit records `interrupted`), with the status of a SIGTERM death.
    raise SystemExit(128 + signum)
