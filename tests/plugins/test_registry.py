"""Registry: real SQLite files, concurrent writer processes, lookups, compare, rebuild, kill safety."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from statefire.frame import Params, State
from statefire.features import Engine
from statefire.plugins import Registry, Run, RunRecord
from statefire.plugins import registry as registry_module
from statefire.plugins._snapshot import RunWarning
from statefire.plugins.registry import RegistryError, UnknownRunError, parse_where


def make_runs(root: Path, lrs=(0.1, 0.01, 0.001)) -> list[Run]:
    runs = []
    for lr in lrs:
        with State():
            Params(name="hp", lr=lr, depth=2)
            trainer = Engine("trainer", lambda engine, batch: batch * lr, data=[1.0, 2.0], n_epochs=2)
            run = Run(root, name=f"lr={lr}", snapshot=False, track=[trainer.output_ref])
            trainer.run()
            run.finish()
            runs.append(run)
    return runs


def test_queries_get_series_and_compare(tmp_path):
    runs = make_runs(tmp_path)
    registry = Registry(tmp_path)
    records = registry.runs()
    assert [r.id for r in records] == [r.id for r in reversed(runs)]  # newest first
    assert all(isinstance(r, RunRecord) and r.status == "completed" for r in records)
    assert records[0].params["params.hp.lr"] == 0.001 and records[0].dir == runs[-1].dir
    assert [r.name for r in registry.runs(where=lambda r: r.params["params.hp.lr"] < 0.05)] == ["lr=0.001", "lr=0.01"]
    assert registry.runs(experiment="other") == [] and registry.runs(status="failed") == []
    assert registry.get("latest").id == runs[-1].id
    assert registry.get(runs[0].id[:-3]).id == runs[0].id  # a unique prefix
    points = registry.get(runs[0].id).series("engines.trainer.output")
    # output is set before n_samples grows (the engine's order), so each point has the samples before it
    assert [(step, value) for step, value, _ in points] == [(0, 0.1), (1, 0.2), (2, 0.1), (3, 0.2)]
    comparison = registry.compare([runs[0].id, runs[1].id])
    assert comparison[0].key == "params.hp.lr" and comparison[0].differs
    assert comparison[0].values == (0.1, 0.01)
    assert not [row for row in comparison if row.key == "params.hp.depth"][0].differs
    text = str(comparison)
    assert runs[0].id in text and text.index("params.hp.lr") < text.index("params.hp.depth")


def test_lookups_that_fail_say_what_is_there(tmp_path):
    runs = make_runs(tmp_path, lrs=(0.1, 0.2))
    registry = Registry(tmp_path)
    common = os.path.commonprefix([r.id for r in runs])
    with pytest.raises(UnknownRunError, match=f"prefix '{common}' matches 2 runs.*{runs[0].id}"):
        registry.get(common)
    typo = runs[0].id[:-1] + ("0" if runs[0].id[-1] != "0" else "1")
    with pytest.raises(UnknownRunError, match=f"no run with id '{typo}'.*close ids: .*{runs[0].id}"):
        registry.get(typo)
    with pytest.raises(UnknownRunError, match="no series 'engines.trainer.outptu'.*'engines.trainer.output'"):
        registry.get(runs[0].id).series("engines.trainer.outptu")
    with pytest.raises(UnknownRunError, match="no run under .* so no 'latest'"):
        Registry(tmp_path / "empty").get("latest")


def test_where_expressions(tmp_path):
    make_runs(tmp_path)
    records = Registry(tmp_path).runs()
    keep = parse_where("hp.lr<0.05, status=completed", records)
    assert sorted(r.params["params.hp.lr"] for r in records if keep(r)) == [0.001, 0.01]
    assert [r.name for r in records if parse_where("name=lr=0.1", records)(r)] == ["lr=0.1"]  # split at the first
    with pytest.raises(ValueError, match="--where key 'hp.lx'.*did you mean 'hp.lr'"):
        parse_where("hp.lx<1", records)
    with pytest.raises(ValueError, match="has no comparison"):
        parse_where("hp.lr", records)


def test_rebuild_from_run_directories_skips_a_corrupt_record(tmp_path):
    runs = make_runs(tmp_path)
    before = {r.id: (r.params, r.metrics, r.series("engines.trainer.output")) for r in Registry(tmp_path).runs()}
    corrupt = runs[1].dir / "run.json"
    corrupt.write_text(corrupt.read_text()[:40])  # truncated
    with open(runs[0].dir / "series.jsonl", "a") as series:
        series.write('["engines.trainer.output", 5, 0.')  # a line cut by a kill
    (tmp_path / "registry.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"registry.sqlite{suffix}").unlink(missing_ok=True)
    registry = Registry(tmp_path)
    with pytest.warns(RunWarning, match=f"skipped run file '{corrupt}'"):
        records = registry.runs()  # a missing file is rebuilt from the directories
    assert {r.id for r in records} == {runs[0].id, runs[2].id}
    for record in records:
        assert (record.params, record.metrics, record.series("engines.trainer.output")) == before[record.id]
    with pytest.warns(RunWarning, match="truncated or corrupted"):
        assert registry.rebuild() == 2


WRITER = textwrap.dedent("""
    import sys
    from statefire.plugins.registry import Registry
    registry = Registry(sys.argv[1])
    worker = sys.argv[2]
    for i in range(25):
        run_id = f"{worker}-{i:03d}"
        registry.write({"id": run_id, "status": "running", "started": run_id, "config": {"params.hp.i": i}})
        registry.write(series=[(run_id, "loss", step, 1.0 / (step + 1), 0.0) for step in range(20)])
        registry.write({"id": run_id, "status": "completed", "started": run_id, "config": {"params.hp.i": i}})
""")


def test_processes_writing_at_once_lose_no_row(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    Registry(tmp_path / "runs").write({"id": "first", "status": "completed"})  # the file exists in WAL mode
    workers = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs"), f"w{n}"],
                                stderr=subprocess.PIPE, text=True) for n in range(4)]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
    conn = sqlite3.connect(tmp_path / "runs" / "registry.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'completed'").fetchone()[0] == 4 * 25 + 1
    assert conn.execute("SELECT COUNT(*) FROM series").fetchone()[0] == 4 * 25 * 20
    assert conn.execute("SELECT COUNT(*) FROM params").fetchone()[0] == 4 * 25
    conn.close()


def test_a_locked_registry_is_a_clear_error(tmp_path, monkeypatch):
    Registry(tmp_path).write({"id": "a", "status": "running"})
    monkeypatch.setattr(registry_module, "_BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(tmp_path / "registry.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RegistryError, match="cannot write to the run registry .*locked by another process"):
            Registry(tmp_path).write({"id": "b", "status": "running"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    (tmp_path / "registry.sqlite").write_text("this is not sqlite " * 100)
    with pytest.raises(RegistryError, match="not a valid SQLite database.*rebuild"):
        Registry(tmp_path).runs()


def test_a_read_only_registry_is_a_clear_error(tmp_path):
    """A file the process may not write (immutable for root, whom permissions do not stop; else read-only)."""
    Registry(tmp_path).write({"id": "a", "status": "completed"})
    Registry(tmp_path).close()
    path = tmp_path / "registry.sqlite"
    if os.getuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o444)
    try:
        with pytest.raises(RegistryError, match="registry.sqlite.*it is read-only: make the file and its folder"):
            Registry(tmp_path).write({"id": "b", "status": "running"})
    finally:
        if os.getuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o644)


KILLED = textwrap.dedent("""
    import sys
    from statefire.features import Engine
    from statefire.plugins import Run, runs
    runs._MIN_WRITE_S = 0.0  # write at every epoch end, so the kills land in the middle of writes
    trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0], n_epochs=10**9)
    run = Run(sys.argv[1], snapshot=False, track=[trainer.output_ref])
    print(run.dir, flush=True)
    trainer.run()  # every epoch end rewrites run.json and writes the registry
""")


def test_sigkill_during_writes_leaves_complete_files_and_a_consistent_registry(tmp_path):
    """Killed at random moments while it writes run.json and the registry, nothing is half-written."""
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    rng = random.Random(0)
    root = tmp_path / "runs"
    run_dirs = []
    deadline = time.monotonic() + 20
    for attempt in range(8):
        if time.monotonic() > deadline:
            break
        process = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE, text=True)
        run_dir = Path(process.stdout.readline().strip())
        run_dirs.append(run_dir)
        time.sleep(rng.uniform(0.01, 0.4))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        record = json.loads((run_dir / "run.json").read_text())  # the last complete version
        assert record["id"] == run_dir.name and record["status"] == "running"
        conn = sqlite3.connect(root / "registry.sqlite")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        stored = Registry(root).get(run_dir.name)
        assert stored.status == "lost"
        # series.jsonl is appended before the registry's transaction: the registry never holds more points
        in_file = len(registry_module.read_series_file(run_dir / "series.jsonl"))
        in_registry = len(stored.series("engines.trainer.output")) if stored.series_keys() else 0
        assert in_registry <= in_file
    assert len(run_dirs) >= 3
    assert not list(root.rglob("*.tmp")) or all(p.name.startswith(".run.json") for p in root.rglob("*.tmp"))
    assert Registry(root).rebuild() == len(run_dirs)


def test_a_registry_of_another_version_is_rebuilt_from_the_run_directories(tmp_path):
    runs = make_runs(tmp_path, lrs=(0.1, 0.2))
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"registry.sqlite{suffix}").unlink(missing_ok=True)
    old = sqlite3.connect(tmp_path / "registry.sqlite")
    old.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, status TEXT)")  # an older layout, user_version 0
    old.execute("INSERT INTO runs VALUES ('stale', 'running')")
    old.commit()
    old.close()
    records = Registry(tmp_path).runs()
    assert {r.id for r in records} == {r.id for r in runs}
    assert records[0].params["params.hp.lr"] == 0.2
