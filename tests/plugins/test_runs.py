"""Run: the directory, run.json, series, statuses (real processes), heartbeat, resume, code snapshots (real git)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from statefire.features import (
    AverageOutput,
    Checkpoint,
    Engine,
    ScalarChart,
    SupervisedEvaluator,
    SupervisedTrainer,
    TensorBoard,
)
from statefire.frame import Params, State
from statefire.plugins import Registry, Run
from statefire.plugins import runs as runs_module
from statefire.plugins._snapshot import MAX_UNTRACKED_BYTES, RunWarning
from statefire.plugins.runs import RunError, new_run_id

ROOT = Path(__file__).resolve().parents[2]
RECORD_KEYS = {"id", "experiment", "name", "status", "started", "ended", "duration", "heartbeat", "argv", "cwd",
               "host", "pid", "versions", "config", "git", "metrics", "error"}


def recorded_mean(tmp_path: Path, engine: Engine, **run_kwargs: Any) -> Run:
    """A Run (no snapshot) recording `engine`'s average output as `mean` while the engine runs; left open."""
    AverageOutput(engine=engine, name="mean")
    run = Run(tmp_path, snapshot=False, **run_kwargs)
    engine.run()
    return run


def digits_experiment(n_epochs: int = 2) -> tuple[SupervisedTrainer, SupervisedEvaluator]:
    """A small real training: an MLP on 400 of sklearn's digits, a validation evaluator on 200 more."""
    from sklearn.datasets import load_digits
    from torch.utils.data import DataLoader, TensorDataset

    digits = load_digits()
    x = torch.tensor(digits.data[:600], dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target[:600])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    Params(name="hp", lr=1e-2, hidden=32)
    train = DataLoader(TensorDataset(x[:400], y[:400]), batch_size=50, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, train, n_epochs=n_epochs)
    evaluator = SupervisedEvaluator(model, DataLoader(TensorDataset(x[400:], y[400:]), batch_size=100),
                                    name="val_evaluator", run_on=trainer.n_epoch_completed_ref,
                                    metrics=["accuracy", "loss"], loss_fn=torch.nn.functional.cross_entropy)
    return trainer, evaluator


def read_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def test_a_run_records_its_directory_config_metrics_series_and_artifacts(tmp_path):
    """run.json has every key, the final metrics, the config; series steps are the trainer's n_samples."""
    with State() as s:
        trainer, _evaluator = digits_experiment()
        run = Run(tmp_path / "runs", experiment="digits", name="first", snapshot=False)
        TensorBoard()
        ScalarChart(s.metrics.val_evaluator_accuracy.value_ref, trainer.n_samples_ref)
        Checkpoint(trigger=trainer.n_epoch_completed_ref)
        live = read_record(run.dir)
        assert live["status"] == "running" and set(live) >= RECORD_KEYS
        trainer.run()
        run.finish()
        accuracy = s.metrics.val_evaluator_accuracy.value
        config = s.config()
    assert run.dir == tmp_path / "runs" / "digits" / run.id
    record = read_record(run.dir)
    assert RECORD_KEYS | {"tree"} <= set(record)
    assert record["status"] == "completed" and record["error"] is None and record["name"] == "first"
    assert record["metrics"]["val_evaluator_accuracy"] == accuracy > 0.5
    assert record["config"] == config and record["config"]["params.hp.lr"] == 0.01
    assert json.loads((run.dir / "config.json").read_text()) == config
    assert record["versions"]["torch"] == torch.__version__ and record["git"] is None
    assert record["ended"] >= record["started"] and record["duration"] > 0
    assert "val_evaluator_accuracy (Accuracy)" in record["tree"]
    assert (run.dir / "flow.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    assert any((run.dir / "tb").rglob("events.out.tfevents.*"))
    assert Checkpoint.latest(run.dir / "checkpoints").name == "checkpoint_2.pt"
    stored = Registry(tmp_path / "runs").get(run.id)
    assert stored.status == "completed" and stored.metrics == record["metrics"]
    assert stored.params["params.hp.hidden"] == 32
    series = stored.series("val_evaluator_accuracy")
    assert [step for step, _, _ in series] == [400, 800]  # the trainer's n_samples at each evaluation
    assert series[-1][1] == accuracy and series[0][2] <= series[1][2]


def test_ids_sort_by_start_time_and_are_unique():
    """Ids made a few ms apart sort in creation order; a thousand made at once never collide."""
    ordered = []
    for _ in range(5):
        ordered.append(new_run_id())
        time.sleep(0.002)
    assert ordered == sorted(ordered)
    assert len({new_run_id() for _ in range(1000)}) == 1000


def test_a_second_run_in_one_state_is_a_clear_error(tmp_path):
    with State():
        run = Run(tmp_path, snapshot=False)
        with pytest.raises(RunError, match="already has a Run.*one Run"):
            Run(tmp_path, snapshot=False)
        run.finish()


def test_bad_arguments_are_clear_errors(tmp_path):
    with State():
        with pytest.raises(ValueError, match="experiment of Run must be a folder name.*'a/b'"):
            Run(tmp_path, experiment="a/b")
        with pytest.raises(TypeError, match="x_axis_ref of Run must be a ref"):
            Run(tmp_path, x_axis_ref=3)
        with pytest.raises(RunError, match="cannot resume run 'nope'.*no run with id"):
            Run(tmp_path, resume="nope", snapshot=False)


def test_x_axis_ref_and_track_record_series(tmp_path):
    """x_axis_ref gives the steps; every set of a tracked ref is a point under the ref's path."""
    with State():
        trainer = Engine("trainer", lambda engine, batch: batch * 2.0, data=[1.0, 2.0, 3.0], n_epochs=2)
        run = recorded_mean(tmp_path, trainer, x_axis_ref=trainer.n_epoch_completed_ref, track=[trainer.output_ref])
        run.finish()
    record = Registry(tmp_path).get(run.id)
    assert [(s, v) for s, v, _ in record.series("mean")] == [(1, 4.0), (2, 4.0)]  # set as the epoch completes
    assert [v for _, v, _ in record.series("engines.trainer.output")] == [2.0, 4.0, 6.0] * 2
    assert "mean" in record.metrics and "engines.trainer.output" not in record.metrics


def test_without_a_trainer_the_step_is_the_count_of_sets(tmp_path):
    with State():
        run = recorded_mean(tmp_path, Engine("worker", lambda engine, batch: batch, data=[1.0], n_epochs=3))
        run.finish()
    assert [s for s, _, _ in Registry(tmp_path).get(run.id).series("mean")] == [1, 2, 3]


def test_resume_continues_the_same_run(tmp_path):
    """resume='latest' reuses the id and directory; series go on from the checkpoint; status is running again."""
    def build():
        trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0, 2.0], n_epochs=4)
        AverageOutput(engine=trainer, name="mean")
        Checkpoint(trigger=trainer.n_epoch_completed_ref)
        return trainer

    with State():
        trainer = build()
        first = Run(tmp_path, snapshot=False)
        trainer.n_epoch_completed_ref.attach(lambda n: trainer.terminate() if n == 2 else None)
        trainer.run()
        first.finish()
    with State():
        trainer = build()
        run = Run(tmp_path, snapshot=False, resume="latest")
        assert (run.id, run.dir) == (first.id, first.dir)
        assert read_record(run.dir)["status"] == "running"
        Checkpoint.load(Checkpoint.latest(run.dir / "checkpoints"))
        trainer.run()
        run.finish()
    record = read_record(run.dir)
    assert record["status"] == "completed" and len(record["resumed"]) == 1
    steps = [s for s, _, _ in Registry(tmp_path).get(run.id).series("mean")]
    assert steps == [2, 4, 6, 8]


def test_a_resume_drops_the_points_logged_past_its_checkpoint(tmp_path):
    """Regression: a run that crashed between two checkpoints, then resumed, kept the points it had logged
    past the checkpoint, so the steps it logs again appeared twice in series.jsonl and the registry."""
    def build():
        trainer = Engine("trainer", lambda engine, batch: batch * engine.n_epoch_started, data=[1.0, 2.0], n_epochs=4)
        AverageOutput(engine=trainer, name="mean")
        Checkpoint(trigger=trainer.n_epoch_completed_ref(every=2))
        return trainer

    def crash(n):
        if n == 3:
            raise KeyboardInterrupt("killed after epoch 3, past the checkpoint of epoch 2")

    with State():
        trainer = build()
        first = Run(tmp_path, snapshot=False)
        trainer.n_epoch_completed_ref.attach(crash, priority=-(2**63))
        with pytest.raises(KeyboardInterrupt):
            trainer.run()
        first.finish()
    assert [s for s, _, _ in Registry(tmp_path).get(first.id).series("mean")] == [2, 4, 6]
    with State():
        trainer = build()
        run = Run(tmp_path, snapshot=False, resume="latest")
        Checkpoint.load(Checkpoint.latest(run.dir / "checkpoints"))
        trainer.run()
        run.finish()
    series = Registry(tmp_path).get(run.id).series("mean")
    assert [(s, v) for s, v, _ in series] == [(2, 1.5), (4, 3.0), (6, 4.5), (8, 6.0)]
    from statefire.plugins.registry import read_series_file

    assert [p[1] for p in read_series_file(run.dir / "series.jsonl") if p[0] == "mean"] == [2, 4, 6, 8]


def test_the_heartbeat_is_written_while_an_engine_runs(tmp_path, monkeypatch):
    """Between epoch ends, the heartbeat thread keeps run.json's heartbeat current."""
    monkeypatch.setattr(runs_module, "HEARTBEAT_S", 0.05)
    seen = []
    with State():
        engine = Engine("trainer", lambda engine, batch: time.sleep(0.02), data=range(20))
        run = Run(tmp_path, snapshot=False)
        engine.n_iteration_completed_ref.attach(lambda: seen.append(read_record(run.dir)["heartbeat"]))
        engine.run()
        run.finish()
    assert len(set(seen)) >= 3  # the heartbeat moved during the one epoch


def test_only_the_main_process_writes(tmp_path):
    """Two gloo processes agree on the run's id and directory; only rank 0 writes it."""
    script = tmp_path / "two.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys, torch.distributed as dist
        dist.init_process_group("gloo", rank=int(sys.argv[1]), world_size=2)
        from statefire.plugins import Run
        run = Run({str(tmp_path / 'runs')!r}, snapshot=False)
        dirs = [None, None]
        dist.all_gather_object(dirs, str(run.dir))
        print("DIRS", dirs[0] == dirs[1], run.is_writer, flush=True)
        run.finish()
        dist.barrier()
        dist.destroy_process_group()
    """))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(29500 + os.getpid() % 2000)}
    processes = [subprocess.Popen([sys.executable, str(script), str(rank)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = [p.communicate(timeout=120) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
    assert [out.split()[:3] for out, _ in outputs] == [["DIRS", "True", "True"], ["DIRS", "True", "False"]]
    (record,) = Registry(tmp_path / "runs").runs()
    assert record.status == "completed" and len(list((tmp_path / "runs" / "default").iterdir())) == 1


def test_an_engine_error_marks_the_run_failed_at_once(tmp_path):
    """The engine's exception is recorded when it happens, before anything else can end the process."""
    def step(engine, batch):
        if batch == 2.0:
            raise ValueError("bad batch 2")
        return batch

    with State():
        trainer = Engine("trainer", step, data=[1.0, 2.0])
        run = Run(tmp_path, snapshot=False)
        with pytest.raises(ValueError):
            trainer.run()
        record = read_record(run.dir)
        assert record["status"] == "failed" and record["error"] == {"type": "ValueError", "message": "bad batch 2"}
        run.finish()
    assert Registry(tmp_path).get(run.id).status == "failed"


# -- statuses, with real processes ----------------------------------------------------------
STATUS_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from statefire.features import Engine, AverageOutput
    from statefire.plugins import Run

    how = sys.argv[1]
    def step(engine, batch):
        if how == "interrupt" and engine.n_iteration_started == 3:
            raise KeyboardInterrupt
        if how in ("wait", "kill"):
            time.sleep(0.01)
        return batch
    trainer = Engine("trainer", step, data=[1.0, 2.0], n_epochs=10_000 if how in ("wait", "kill") else 3)
    run = Run(sys.argv[2], snapshot=False, track=[trainer.n_epoch_completed_ref])
    print(run.dir, flush=True)
    trainer.run()
""")


def start(tmp_path: Path, how: str) -> subprocess.Popen:
    script = tmp_path / "status.py"
    script.write_text(STATUS_SCRIPT)
    return subprocess.Popen([sys.executable, str(script), how, str(tmp_path / "runs")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_epochs(run_dir: Path, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len((run_dir / "series.jsonl").read_text().splitlines()) >= n:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no {n} epochs in {run_dir}")


def test_a_keyboard_interrupt_marks_the_run_interrupted(tmp_path):
    process = start(tmp_path, "interrupt")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "KeyboardInterrupt" in err
    record = read_record(Path(out.split()[0]))
    assert record["status"] == "interrupted" and record["error"]["type"] == "KeyboardInterrupt"
    assert Registry(tmp_path / "runs").get(record["id"]).status == "interrupted"


def test_sigterm_marks_the_run_interrupted(tmp_path):
    process = start(tmp_path, "wait")
    run_dir = Path(process.stdout.readline().strip())
    wait_for_epochs(run_dir, 1)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM
    record = read_record(run_dir)
    assert record["status"] == "interrupted" and record["error"]["type"] == "SIGTERM"


def test_a_killed_run_is_listed_lost(tmp_path):
    """SIGKILL leaves `running` in run.json; listings say `lost` once the process is gone."""
    process = start(tmp_path, "kill")
    run_dir = Path(process.stdout.readline().strip())
    wait_for_epochs(run_dir, 1)
    registry = Registry(tmp_path / "runs")
    assert registry.runs()[0].status == "running"
    process.kill()
    process.communicate(timeout=30)
    assert read_record(run_dir)["status"] == "running"
    assert registry.runs()[0].status == "lost"
    assert registry.runs(status="lost")[0].id == run_dir.name


def test_lost_on_another_host_follows_the_heartbeat_and_a_reused_pid_is_not_alive(tmp_path):
    registry = Registry(tmp_path)
    old = "2020-01-01T00:00:00.000+00:00"
    fresh = runs_module.now_iso()
    me = runs_module.process_started(os.getpid())
    registry.write({"id": "a", "status": "running", "host": "elsewhere", "heartbeat": old, "started": "1"})
    registry.write({"id": "b", "status": "running", "host": "elsewhere", "heartbeat": fresh, "started": "2"})
    registry.write({"id": "c", "status": "running", "host": socket.gethostname(), "pid": os.getpid(),
                    "process_started": me, "started": "3"})
    registry.write({"id": "d", "status": "running", "host": socket.gethostname(), "pid": os.getpid(),
                    "process_started": str(int(me) - 1), "started": "4"})
    assert {r.id: r.status for r in registry.runs()} == {"a": "lost", "b": "running", "c": "running", "d": "lost"}


# -- code snapshots in real git repositories -------------------------------------------------
def git(repo: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, env=env).stdout


def make_repo(path: Path, n_files: int = 3) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Tester")
    git(path, "config", "user.email", "tester@example.com")
    for i in range(n_files):
        (path / f"module_{i}.py").write_text(f"VALUE = {i}\n")
    (path / ".gitignore").write_text("*.log\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return path


def repo_view(repo: Path) -> dict:
    """What a snapshot must leave untouched."""
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "index": (repo / ".git" / "index").read_bytes(),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "stash": git(repo, "stash", "list"),
        "branches": git(repo, "for-each-ref", "refs/heads", "refs/tags"),
        "files": sorted((p.relative_to(repo).as_posix(), p.read_bytes()) for p in repo.rglob("*")
                        if p.is_file() and ".git" not in p.parts),
    }


def test_the_snapshot_commits_the_tree_as_on_disk_and_touches_nothing(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "module_0.py").write_text("VALUE = 'edited'\n")  # tracked, with an uncommitted edit
    git(repo, "add", "module_0.py")
    (repo / "module_0.py").write_text("VALUE = 'edited again'\n")  # the work tree differs from the index
    (repo / "module_1.py").write_text("VALUE = 'stashed'\n")
    git(repo, "stash", "push", "-q", "module_1.py")
    (repo / "new.py").write_text("NEW = True\n")  # untracked, not ignored
    (repo / "debug.log").write_text("ignored\n")
    with open(repo / "data.bin", "wb") as big:  # untracked and over 10 MB: data
        big.truncate(MAX_UNTRACKED_BYTES + 1)
    before = repo_view(repo)
    with State(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = Run(repo / "runs", snapshot=repo)
        run.finish()
    after = repo_view(repo)
    after["files"] = [f for f in after["files"] if not f[0].startswith("runs/")]
    after["status"] = "".join(row for row in after["status"].splitlines(True) if not row.startswith("?? runs/"))
    assert after == before
    git_info = read_record(run.dir)["git"]
    snapshot = git_info["snapshot"]
    assert git(repo, "rev-parse", f"refs/statefire/runs/{run.id}").strip() == snapshot
    assert git(repo, "rev-parse", f"{snapshot}^").strip() == before["head"].strip() == git_info["head"]
    assert git_info["branch"] == "main" and git_info["dirty"] is True
    assert os.path.realpath(git_info["repo"]) == os.path.realpath(repo)
    files = set(git(repo, "ls-tree", "-r", "--name-only", snapshot).split())
    assert {"module_0.py", "module_1.py", "new.py", ".gitignore"} <= files
    assert not {"debug.log", "data.bin"} & files and not any(f.startswith("runs/") for f in files)
    assert git(repo, "show", f"{snapshot}:module_0.py") == "VALUE = 'edited again'\n"
    assert git(repo, "show", f"{snapshot}:module_1.py") == "VALUE = 1\n"  # as on disk: the stash is not applied
    assert [str(w.message) for w in caught if "data.bin" in str(w.message)]


def test_the_runs_root_is_never_in_a_snapshot_even_when_tracked(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "runs").mkdir()
    (repo / "runs" / "old.txt").write_text("tracked by mistake\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "runs tracked")
    with State():
        run = Run(repo / "runs", snapshot=repo)
        run.finish()
    files = git(repo, "ls-tree", "-r", "--name-only", read_record(run.dir)["git"]["snapshot"]).split()
    assert "module_0.py" in files and not any(f.startswith("runs/") for f in files)


def test_a_clean_tree_is_not_dirty_and_the_default_is_the_script_directory(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text("*.log\nruns/\n")
    git(repo, "commit", "-q", "-am", "ignore runs")
    (repo / "train.py").write_text("from statefire.plugins import Run\nRun(snapshot=True).finish()\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "script")
    out = subprocess.run([sys.executable, "train.py"], cwd=repo, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (record,) = Registry(repo / "runs").runs()
    assert record.git["dirty"] is False and record.git["head"] == git(repo, "rev-parse", "HEAD").strip()
    assert git(repo, "status", "--porcelain") == ""


def test_a_repository_without_identity_or_commit_still_gets_a_snapshot(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.useConfigOnly", "true")  # git would refuse to commit as anyone
    (repo / "train.py").write_text("print('hi')\n")
    with State():
        run = Run(tmp_path / "runs", snapshot=repo)
        run.finish()
    info = read_record(run.dir)["git"]
    assert info["head"] is None and info["dirty"] is True
    assert git(repo, "log", "--format=%P|%an", info["snapshot"]).strip() == "|statefire"
    assert git(repo, "show", f"{info['snapshot']}:train.py") == "print('hi')\n"
    assert git(repo, "status", "--porcelain") == "?? train.py\n"


def test_outside_a_repository_the_snapshot_is_absent_with_one_warning(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with State(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = Run(tmp_path / "runs", snapshot=plain)
        run.finish()
    mine = [w for w in caught if issubclass(w.category, RunWarning)]
    assert len(mine) == 1 and "not in a git work tree" in str(mine[0].message)
    assert read_record(run.dir)["git"] is None and read_record(run.dir)["status"] == "completed"


def test_many_short_epochs_lose_no_point(tmp_path):
    """Epochs shorter than a write: hand-overs merge (memory stays bounded) and every point is kept."""
    with State():
        run = recorded_mean(tmp_path, Engine("trainer", lambda engine, batch: batch, data=[1.0], n_epochs=3000))
        assert run.n_points == 3000
        run.finish()
    record = Registry(tmp_path).get(run.id)
    assert [step for step, _, _ in record.series("mean")] == list(range(1, 3001))
    assert len((run.dir / "series.jsonl").read_text().splitlines()) == 3000
