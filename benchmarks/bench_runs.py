"""What a Run costs, measured side by side in one process.

1. The quickstart workload (digits MLP, a trainer and two evaluators) with and
   without a Run: the training loop's time, so the ratio is what recording
   every metric set, the epoch-end records and the heartbeat cost. The Run's
   `finish()` (tree, flow.svg drawn with matplotlib) is printed apart: it runs
   once, after training.
2. One metric set with the Run's recorder attached against one without.
3. A registry of 2,000 runs: `Registry.runs()` (target < 0.3 s) and the
   `statefire runs list` command, process start included (target < 1 s).
4. The code snapshot of a 2,000-file repository with edits and untracked
   files (target < 1 s), beside `git stash create` (which snapshots tracked
   files only and is what a user would otherwise reach for).

Run: python benchmarks/bench_runs.py [--epochs N] [--repeats N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from statefire.frame import State
from statefire.features import AverageOutput, Engine, SupervisedEvaluator, SupervisedTrainer
from statefire.plugins import Registry, Run
from statefire.plugins import _snapshot
from statefire.plugins.registry import _put


def quickstart(n_epochs: int) -> SupervisedTrainer:
    """The quickstart's features in the current State (same data, model and loaders)."""
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    split = int(0.8 * len(x))
    train = DataLoader(TensorDataset(x[:split], y[:split]), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.functional.cross_entropy
    trainer = SupervisedTrainer(model, optimizer, loss_fn, train, n_epochs=n_epochs)
    for name, loader in [("train_evaluator", DataLoader(TensorDataset(x[:split], y[:split]), batch_size=256)),
                         ("val_evaluator", DataLoader(TensorDataset(x[split:], y[split:]), batch_size=256))]:
        SupervisedEvaluator(model, loader, name=name, run_on=trainer.n_epoch_completed_ref,
                            metrics=["accuracy", "loss"], loss_fn=loss_fn)
    return trainer


def bench_workload(n_epochs: int, repeats: int, root: Path) -> None:
    times: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    finish = []
    for repeat in range(repeats):
        # alternate which side goes first, so drift in machine load hits both alike
        for with_run in ((False, True) if repeat % 2 == 0 else (True, False)):
            with State():
                trainer = quickstart(n_epochs)
                run = Run(root, experiment="bench", snapshot=False) if with_run else None
                start, start_cpu = time.perf_counter(), time.process_time()
                trainer.run()
                times[with_run].append(time.perf_counter() - start)
                cpu[with_run].append(time.process_time() - start_cpu)  # both threads; steadier on a busy machine
                if run is not None:
                    start = time.perf_counter()
                    run.finish()
                    finish.append(time.perf_counter() - start)
    best_plain, best_run = min(times[False]), min(times[True])
    pairs = sorted(r / p for r, p in zip(times[True], times[False]))
    print(f"quickstart, {n_epochs} epochs, best of {repeats}: without Run {best_plain:.3f} s, "
          f"with Run {best_run:.3f} s -> ratio {best_run / best_plain:.3f} (target <= 1.02); "
          f"median ratio of the {len(pairs)} side-by-side pairs {pairs[len(pairs) // 2]:.3f}")
    print(f"  CPU time of the process (main and writer threads): without {min(cpu[False]):.3f} s, "
          f"with {min(cpu[True]):.3f} s -> ratio {min(cpu[True]) / min(cpu[False]):.3f}")
    print(f"  run.finish() (tree, flow.svg, final record), once after training: {min(finish):.3f} s")


def bench_set(n: int, root: Path) -> None:
    with State():
        engine = Engine("worker", lambda engine, batch: batch, data=[1.0])
        metric = AverageOutput(engine=engine, name="mean")
        start = time.perf_counter()
        for i in range(n):
            metric.value = 0.5
        bare = time.perf_counter() - start
        run = Run(root, experiment="bench", snapshot=False)
        start = time.perf_counter()
        for i in range(n):
            metric.value = 0.5
        recorded = time.perf_counter() - start
        run.finish()
    print(f"one metric set: bare {bare / n * 1e9:.0f} ns, recorded by the Run {recorded / n * 1e9:.0f} ns "
          f"(ratio {recorded / bare:.1f}; a quickstart epoch makes 4 such sets)")


def build_registry(root: Path, n_runs: int) -> None:
    registry = Registry(root)

    def work(conn):  # one transaction, as rebuild() does
        for i in range(n_runs):
            run_id = f"20260101-{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}.000-{i:012x}"
            record = {"id": run_id, "experiment": f"exp{i % 5}", "name": f"run {i}", "status": "completed",
                      "started": f"2026-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000+00:00",
                      "duration": 60.0 + i, "host": "h", "pid": 1, "git": {"snapshot": "0" * 40, "dirty": False},
                      "metrics": {f"{e}_{m}": i / n_runs for e in ("train_evaluator", "val_evaluator")
                                  for m in ("accuracy", "loss", "f1")},
                      "config": {f"params.hp.p{k}": i * k for k in range(10)}}
            _put(conn, record, root / record["experiment"] / run_id)
            conn.executemany("INSERT INTO series VALUES (?, ?, ?, ?, ?)",
                             ((run_id, "val_evaluator_accuracy", s * 1000, s / 50, 0.0) for s in range(50)))

    registry._write(work)
    registry.close()


def bench_registry(root: Path, n_runs: int) -> None:
    build_registry(root, n_runs)
    times = []
    for _ in range(5):
        registry = Registry(root)  # a fresh connection each time, as a new process would have
        start = time.perf_counter()
        records = registry.runs()
        times.append(time.perf_counter() - start)
        registry.close()
    assert len(records) == n_runs
    print(f"Registry.runs() over {n_runs} runs: {min(times):.3f} s (target < 0.3 s)")
    command = [sys.executable, "-m", "statefire.plugins.cli", "runs", "list", "--root", str(root)]
    walls = []
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        walls.append(time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    python = time.perf_counter() - start
    print(f"statefire runs list over {n_runs} runs: {min(walls):.3f} s wall, process start included "
          f"(an empty python starts in {python:.3f} s; {len(out.splitlines()) - 2} rows printed; target < 1 s)")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def bench_snapshot(base: Path, n_files: int) -> None:
    repo = base / "repo"
    for d in range(20):
        (repo / f"pkg{d}").mkdir(parents=True)
        for f in range(n_files // 20):
            (repo / f"pkg{d}" / f"mod{f}.py").write_text(f"# module {d}.{f}\n" + "x = 1\n" * 40)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "-m", "base")
    for f in range(10):
        (repo / "pkg0" / f"mod{f}.py").write_text("edited\n")
        (repo / f"new{f}.py").write_text("untracked\n")
    times = []
    for i in range(5):
        start = time.perf_counter()
        info = _snapshot.take(repo, f"bench-{i}", [repo / "runs"])
        times.append(time.perf_counter() - start)
    files = len(git(repo, "ls-tree", "-r", "--name-only", info["snapshot"]).split())
    stash = []
    for _ in range(5):
        start = time.perf_counter()
        git(repo, "stash", "create")
        stash.append(time.perf_counter() - start)
    print(f"snapshot of a {files}-file repository (10 edits, 10 untracked): first {times[0]:.3f} s, "
          f"best {min(times):.3f} s (target < 1 s); git stash create (tracked files only) {min(stash):.3f} s "
          f"-> ratio {min(times) / min(stash):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        bench_workload(args.epochs, args.repeats, base / "runs")
        bench_set(200_000, base / "runs")
        bench_registry(base / "registry", args.runs)
        bench_snapshot(base, args.files)


if __name__ == "__main__":
    main()
