"""The run registry: one SQLite file indexing every run under a root, its params and its series.

`Run` writes here from its start (status, config, final metrics, series in
batches); the run directories keep everything too, so `rebuild()` makes the
file again from them. WAL mode and a busy timeout let several processes
write at once; every batch of writes is one transaction, so a kill leaves
the file as it was before or after the batch.
"""

from __future__ import annotations

import ast
import datetime as _dt
import difflib
import json
import operator
import os
import socket
import sqlite3
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ._snapshot import RunWarning
from ._table import table

__all__ = ["Registry", "RunRecord", "Comparison", "RegistryError", "UnknownRunError", "REGISTRY_FILE",
           "LOST_AFTER_S", "parse_where"]

REGISTRY_FILE = "registry.sqlite"
#: A running run of another host whose heartbeat is older than this is shown `lost`.
LOST_AFTER_S = 600.0
_BUSY_TIMEOUT_S = 10.0
#: Bumped when the tables change; a file of another version is rebuilt from the run directories.
_SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, experiment TEXT NOT NULL, name TEXT, status TEXT NOT NULL,
    started TEXT, ended TEXT, duration REAL, heartbeat TEXT, host TEXT, pid INTEGER,
    process_started TEXT, dir TEXT, git TEXT, metrics TEXT, error TEXT, config TEXT);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started, id);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL, path TEXT NOT NULL, value TEXT, PRIMARY KEY (run_id, path));
CREATE TABLE IF NOT EXISTS series (
    run_id TEXT NOT NULL, key TEXT NOT NULL, step NUMERIC, value REAL, wall_time REAL);
CREATE INDEX IF NOT EXISTS series_by_run ON series (run_id, key);
"""
_RUN_COLUMNS = ("id", "experiment", "name", "status", "started", "ended", "duration", "heartbeat", "host",
                "pid", "process_started", "dir", "git", "metrics", "error", "config")


class RegistryError(OSError):
    """The registry file cannot be read or written (read-only, locked, not a database)."""


class UnknownRunError(LookupError):
    """No run has that id, or a prefix matches several runs."""


@dataclass
class RunRecord:
    """One run as the registry knows it.

    `params` is the config by path (`params["params.hp.lr"]`), `metrics` the
    final value of every numeric metric by name. `status` is `lost` for a run
    whose process is gone without finishing (or, on another host, whose
    heartbeat stopped ten minutes ago).

    Example:
        >>> import tempfile
        >>> from statefire.frame import State, Params
        >>> from statefire.plugins import Registry, Run
        >>> with tempfile.TemporaryDirectory() as root, State():
        ...     hp = Params(name="hp", lr=0.1)
        ...     run = Run(root, snapshot=False)
        ...     run.finish()
        ...     record = Registry(root).get("latest")
        ...     print(record.status, record.params["params.hp.lr"], record.id == run.id)
        completed 0.1 True
    """

    id: str
    experiment: str
    name: str | None
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    started: str | None
    duration: float | None
    dir: Path
    git: dict[str, Any] | None
    ended: str | None = None
    heartbeat: str | None = None
    host: str | None = None
    pid: int | None = None
    error: dict[str, Any] | None = None
    _registry: Registry | None = field(default=None, repr=False, compare=False)

    def series(self, key: str) -> list[tuple[Any, float, float]]:
        """`[(step, value, wall_time), ...]` in the order recorded; `key` is a metric's name or a ref's path."""
        if self._registry is None:
            raise RuntimeError(f"run {self.id!r} was not read from a registry; use Registry(root).get(id)")
        return self._registry._series(self.id, key)

    def series_keys(self) -> list[str]:
        """The keys this run has series for."""
        if self._registry is None:
            return []
        return self._registry._series_keys(self.id)


class CompareRow(NamedTuple):
    """One param or metric of the compared runs."""

    key: str
    kind: str  # "param" or "metric"
    values: tuple[Any, ...]
    differs: bool


class Comparison(list):
    """Rows of `CompareRow`, the differing ones first; prints as a table with one column per run."""

    def __init__(self, ids: Sequence[str], rows: Iterable[CompareRow]) -> None:
        super().__init__(rows)
        self.ids = list(ids)

    def __str__(self) -> str:
        headers = ["", "key", *self.ids]
        return table(headers, [("*" if r.differs else "", r.key, *r.values) for r in self])

    def __repr__(self) -> str:
        return str(self)


class Registry:
    """The SQLite index of the runs under `root` (`root/registry.sqlite`).

    Args:
        root: the runs root, as given to `Run(root)`.

    Example:
        >>> import tempfile
        >>> from statefire.frame import State
        >>> from statefire.plugins import Registry, Run
        >>> with tempfile.TemporaryDirectory() as root:
        ...     for lr in (0.1, 0.01):
        ...         with State():
        ...             Run(root, name=f"lr={lr}", snapshot=False).finish()
        ...     registry = Registry(root)
        ...     print([r.name for r in registry.runs()], len(registry.runs(status="completed")))
        ['lr=0.01', 'lr=0.1'] 2
    """

    def __init__(self, root: str | os.PathLike[str] = "runs") -> None:
        if not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
            raise TypeError(f"root of Registry must be a non-empty path, got {root!r}")
        self.root = Path(root)
        self.path = self.root / REGISTRY_FILE
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # -- connections ---------------------------------------------------------
    def _connect(self, create: bool) -> sqlite3.Connection | None:
        """This thread's connection; None when the file does not exist and `create` is False."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        if not self.path.exists():
            if not create:
                if self._has_run_dirs():
                    self.rebuild()
                    return self._connect(create=False)
                return None
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a killed process loses nothing committed
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != _SCHEMA_VERSION:
                self._migrate(conn, version)
        except sqlite3.Error as error:
            raise self._error(error, "open") from None
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        """Make the tables of this version; a file of another version is rebuilt from the run directories."""
        old = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone() is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:  # not done by another process
                if old:
                    for name in ("series", "params", "runs"):
                        conn.execute(f"DROP TABLE IF EXISTS {name}")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if old:
            self._local.conn, self._local.pid = conn, os.getpid()
            self.rebuild()

    def _has_run_dirs(self) -> bool:
        return self.root.is_dir() and any(self.root.glob("*/*/run.json"))

    def close(self) -> None:
        """Close this thread's connection (it reopens on the next use)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _error(self, error: sqlite3.Error, doing: str) -> RegistryError:
        text = str(error)
        if "readonly" in text or "read-only" in text:
            why = "it is read-only: make the file and its folder writable, or pass another root"
        elif "locked" in text or "busy" in text:
            why = (f"it stayed locked by another process for {_BUSY_TIMEOUT_S:.0f} s: wait for that process, "
                   "or remove a stale lock by copying the file")
        elif "not a database" in text or "malformed" in text:
            why = "it is not a valid SQLite database: move it away and call Registry(root).rebuild()"
        else:
            why = text
        return RegistryError(f"cannot {doing} the run registry {str(self.path)!r}: {why} (sqlite: {text})")

    def _write(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """Run `work` in one IMMEDIATE transaction (all of it is written, or none)."""
        conn = self._connect(create=True)
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._error(error, "write to") from None

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        conn = self._connect(create=False)
        if conn is None:
            return []
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.Error as error:
            raise self._error(error, "read") from None

    # -- writes (used by Run) ----------------------------------------------------
    def write(self, record: dict[str, Any] | None = None, series: Sequence[tuple[Any, ...]] = (),
              *, run_dir: str | os.PathLike[str] | None = None, params: bool = True) -> None:
        """Upsert a run from its `run.json` record and append series points, in one transaction.

        `series` holds `(run_id, key, step, value, wall_time)` tuples; `params=False`
        leaves the params table as it is (the config did not change).
        """
        def work(conn: sqlite3.Connection) -> None:
            if record is not None:
                _put(conn, record, run_dir, params)
            if series:
                conn.executemany("INSERT INTO series VALUES (?, ?, ?, ?, ?)", series)

        self._write(work)

    # -- queries ---------------------------------------------------------------------
    def runs(
        self,
        experiment: str | None = None,
        status: str | None = None,
        where: Callable[[RunRecord], bool] | None = None,
    ) -> list[RunRecord]:
        """The runs, newest first, filtered by experiment, status (`lost` included) and `where(record)`."""
        if experiment is None:
            rows = self._read("SELECT * FROM runs ORDER BY started DESC, id DESC")
        else:
            rows = self._read("SELECT * FROM runs WHERE experiment = ? ORDER BY started DESC, id DESC", (experiment,))
        liveness = _Liveness()
        records = [self._record(row, liveness) for row in rows]
        if status is not None:
            records = [r for r in records if r.status == status]
        if where is not None:
            records = [r for r in records if where(r)]
        return records

    def get(self, id: str, *, experiment: str | None = None) -> RunRecord:
        """The run of that id, unique id prefix, or `"latest"` (the newest run).

        Raises:
            UnknownRunError: no such run (close ids are listed), or the prefix is ambiguous (matches listed).
        """
        if not isinstance(id, str) or not id:
            raise TypeError(f"a run id must be a non-empty string (an id, a unique prefix or 'latest'), got {id!r}")
        if id == "latest":
            if experiment is None:
                rows = self._read("SELECT * FROM runs ORDER BY started DESC, id DESC LIMIT 1")
            else:
                rows = self._read("SELECT * FROM runs WHERE experiment = ? ORDER BY started DESC, id DESC LIMIT 1",
                                  (experiment,))
            if not rows:
                where = f" of experiment {experiment!r}" if experiment else ""
                raise UnknownRunError(f"there is no run{where} under {str(self.root)!r} yet, so no 'latest'")
        else:
            rows = self._read("SELECT * FROM runs WHERE id = ?", (id,))
            if not rows:
                escaped = id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                rows = self._read("SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY id", (escaped + "%",))
            if len(rows) > 1:
                shown = ", ".join(r[0] for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
                raise UnknownRunError(
                    f"run id prefix {id!r} matches {len(rows)} runs ({shown}); give more characters of the id"
                )
            if not rows:
                ids = [r[0] for r in self._read("SELECT id FROM runs")]
                close = difflib.get_close_matches(id, ids, n=5, cutoff=0.5)
                hint = (f"close ids: {', '.join(close)}" if close else
                        f"{len(ids)} runs are known; `statefire runs list --root {self.root}` shows them")
                raise UnknownRunError(f"no run with id {id!r} under {str(self.root)!r}; {hint}")
        return self._record(rows[0], _Liveness())

    def _record(self, row: tuple[Any, ...], liveness: _Liveness) -> RunRecord:
        v = dict(zip(_RUN_COLUMNS, row))
        status = v["status"]
        if status == "running" and liveness.lost(v["host"], v["pid"], v["process_started"], v["heartbeat"]):
            status = "lost"
        return RunRecord(
            id=v["id"], experiment=v["experiment"], name=v["name"], status=status, params=_loads(v["config"], {}),
            metrics=_loads(v["metrics"], {}), started=v["started"], duration=v["duration"],
            dir=self.root / v["experiment"] / v["id"], git=_loads(v["git"], None),  # dir: from where the registry is read
            ended=v["ended"], heartbeat=v["heartbeat"], host=v["host"], pid=v["pid"],
            error=_loads(v["error"], None), _registry=self,
        )

    def _series(self, run_id: str, key: str) -> list[tuple[Any, float, float]]:
        rows = self._read("SELECT step, value, wall_time FROM series WHERE run_id = ? AND key = ? ORDER BY rowid",
                          (run_id, key))
        if not rows:
            keys = self._series_keys(run_id)
            if key not in keys:
                from statefire.frame import did_you_mean

                raise UnknownRunError(f"run {run_id!r} has no series {key!r}; " + did_you_mean(key, keys))
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def _series_keys(self, run_id: str) -> list[str]:
        return [r[0] for r in self._read("SELECT DISTINCT key FROM series WHERE run_id = ? ORDER BY key", (run_id,))]

    def compare(self, ids: Sequence[str]) -> Comparison:
        """Every param and final metric of the runs `ids` (ids, prefixes or 'latest'), the differing ones first."""
        if isinstance(ids, str) or len(ids) < 1:
            raise TypeError(f"compare takes a list of run ids, got {ids!r}")
        records = [self.get(i) for i in ids]
        rows = []
        for kind, attr in (("param", "params"), ("metric", "metrics")):
            keys = sorted({k for r in records for k in getattr(r, attr)})
            for key in keys:
                values = tuple(getattr(r, attr).get(key) for r in records)
                rows.append(CompareRow(key, kind, values, any(v != values[0] for v in values)))
        rows.sort(key=lambda r: (not r.differs, r.kind != "param", r.key))
        return Comparison([r.id for r in records], rows)

    # -- rebuilding --------------------------------------------------------------------
    def rebuild(self) -> int:
        """Make the registry again from the run directories; returns how many runs it holds.

        A run whose `run.json` is truncated or not JSON is skipped with a
        `RunWarning` naming the file; the other runs are indexed.
        """
        found: list[tuple[dict[str, Any], Path]] = []
        for path in sorted(self.root.glob("*/*/run.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                    raise ValueError("not a run record (no 'id')")
            except (OSError, ValueError) as error:
                warnings.warn(f"skipped run file {str(path)!r}: it is truncated or corrupted ({error})",
                              RunWarning, stacklevel=2)
                continue
            found.append((record, path.parent))

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM series")
            conn.execute("DELETE FROM params")
            conn.execute("DELETE FROM runs")
            for record, run_dir in found:
                _put(conn, record, run_dir)
                conn.executemany("INSERT INTO series VALUES (?, ?, ?, ?, ?)",
                                 ((record["id"], *point) for point in read_series_file(run_dir / SERIES_FILE)))

        self._write(work)
        return len(found)


SERIES_FILE = "series.jsonl"


def read_series_file(path: Path) -> list[tuple[Any, ...]]:
    """`(key, step, value, wall_time)` points of a run's series file; a torn last line is skipped."""
    points = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return points
    for line in text.splitlines():
        try:
            key, step, value, wall_time = json.loads(line)
        except (ValueError, TypeError):
            continue  # a line cut by a kill
        points.append((key, step, value, wall_time))
    return points


def _loads(text: str | None, empty: Any) -> Any:
    if text is None or text == "null":
        return empty
    return json.loads(text)


def _put(conn: sqlite3.Connection, record: dict[str, Any], run_dir: str | os.PathLike[str] | None,
         params: bool = True) -> None:
    run_id = record["id"]
    config = record.get("config") or {}

    def dumps(value: Any) -> str:
        return json.dumps(value, default=repr)

    conn.execute(
        "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (run_id, record.get("experiment", "default"), record.get("name"), record.get("status", "running"),
         record.get("started"), record.get("ended"), record.get("duration"), record.get("heartbeat"),
         record.get("host"), record.get("pid"), record.get("process_started"),
         None if run_dir is None else os.fspath(run_dir), dumps(record.get("git")),
         dumps(record.get("metrics") or {}), dumps(record.get("error")), dumps(config)),
    )
    if params:  # one row per param, for SQL queries of your own (`SELECT run_id FROM params WHERE ...`)
        conn.execute("DELETE FROM params WHERE run_id = ?", (run_id,))
        conn.executemany("INSERT INTO params VALUES (?, ?, ?)",
                         ((run_id, path, dumps(value)) for path, value in config.items()))


# -- is a running run's process still there? ------------------------------------------
def process_started(pid: int) -> str | None:
    """When process `pid` started, as the kernel counts it (Linux), or None when unknown or gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()  # field 22: starttime, in clock ticks after boot
    except (OSError, IndexError):
        return None


def _alive(pid: int | None, started: str | None) -> bool:
    if not pid:
        return False
    if os.path.isdir("/proc/self"):
        now = process_started(pid)
        return now is not None and (started is None or now == started)  # a reused pid has another start time
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Liveness:
    """Decides `lost` for running runs, once per (host, pid) in one listing."""

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self.now = _dt.datetime.now(_dt.timezone.utc)
        self.cache: dict[tuple[Any, ...], bool] = {}

    def lost(self, host: str | None, pid: int | None, started: str | None, heartbeat: str | None) -> bool:
        key = (host, pid, started, heartbeat)
        if key not in self.cache:
            if host == self.host:
                self.cache[key] = not _alive(pid, started)
            else:
                try:
                    beat = _dt.datetime.fromisoformat(heartbeat or "")
                    self.cache[key] = (self.now - beat).total_seconds() > LOST_AFTER_S
                except ValueError:
                    self.cache[key] = True
        return self.cache[key]


# -- --where EXPR ---------------------------------------------------------------------------
_OPERATORS = ("<=", ">=", "!=", "==", "=", "<", ">")


def parse_where(expression: str, records: Sequence[RunRecord]) -> Callable[[RunRecord], bool]:
    """A predicate for `runs(where=...)` from comparisons joined by `,` (`hp.lr<0.01,status=completed`).

    A key is a record field (`status`, `name`, `experiment`, `id`, `duration`),
    a param by path or by its end (`hp.lr` for `params.hp.lr`), or a metric name.

    Raises:
        ValueError: a comparison without an operator, or a key no run has (close keys listed).
    """
    tests = []
    known = {"status", "name", "experiment", "id", "duration", "started"}
    known |= {k for r in records for k in (*r.params, *r.metrics)}
    for part in filter(None, (p.strip() for p in expression.split(","))):
        for op in _OPERATORS:
            if op in part:
                key, raw = (s.strip() for s in part.split(op, 1))
                break
        else:
            raise ValueError(f"--where part {part!r} has no comparison; write KEY<VALUE, KEY=VALUE, KEY!=VALUE, ...")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if key not in known and not any(k.endswith("." + key) for k in known):
            from statefire.frame import did_you_mean

            short = {k.split(".", 1)[1] for k in known if k.count(".") >= 2}  # hp.lr for params.hp.lr
            raise ValueError(f"--where key {key!r} is no field, param or metric of these runs; "
                             + did_you_mean(key, known | short))
        tests.append((key, op, value))

    def lookup(record: RunRecord, key: str) -> Any:
        if key in ("status", "name", "experiment", "id", "duration", "started"):
            return getattr(record, key)
        for mapping in (record.params, record.metrics):
            if key in mapping:
                return mapping[key]
            for k, v in mapping.items():
                if k.endswith("." + key):
                    return v
        return _MISSING

    def predicate(record: RunRecord) -> bool:
        for key, op, value in tests:
            have = lookup(record, key)
            if have is _MISSING:
                return False
            try:
                if op in ("=", "=="):
                    ok = have == value
                elif op == "!=":
                    ok = have != value
                else:
                    ok = have is not None and _COMPARE[op](have, value)
            except TypeError:
                ok = False
            if not ok:
                return False
        return True

    return predicate


_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


_MISSING = object()
