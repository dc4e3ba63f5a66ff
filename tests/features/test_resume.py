"""Exact resume, for real: a training process is SIGKILLed, restarted from its
latest checkpoint, and ends bit-identical to a run that was never stopped.

Each scenario runs `resume_script.py` in subprocesses: once uninterrupted,
and once through five kills (self-inflicted SIGKILLs at precise points —
between iterations, mid-step after the optimizer step, halfway through
writing a checkpoint, at an epoch end after the evaluator ran — and one
SIGKILL sent by this test from outside while the process trains). The two
scenarios differ in where the data order comes from: a loader with its own
seeded `torch.Generator`, and one drawing from torch's global RNG. Both
scenarios run side by side (one per core). The training processes are forked
from a launcher that imported torch once, so restarts are cheap; each is
still a separate process that dies of a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("resume_script.py")
ITERATIONS = 30  # 3 epochs of 10 batches of 32
EVERY = 4  # the script checkpoints every 4 iterations

# Kill points, in training order; after each, the latest complete checkpoint
# is the one of the iteration given second (a killed save leaves the previous).
SCENARIOS = {
    "own": [("iter:6", 4), ("step:13", 12), ("save:16", 12), ("epoch:2", 20), ("external:25", None)],
    "global": [("step:6", 4), ("iter:10", 8), ("save:12", 8), ("iter:23", 20), ("external:26", None)],
}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    """The digits as tensors, prepared once so the subprocesses need no sklearn."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16
    y = torch.tensor(digits.target)
    path = tmp_path_factory.mktemp("digits") / "data.pt"
    torch.save({"x_train": x[:320], "y_train": y[:320], "x_val": x[1500:1628], "y_val": y[1500:1628]}, path)
    return path


def _workdir(root: Path, name: str, data_file: Path) -> Path:
    workdir = root / name
    workdir.mkdir()
    (workdir / "data.pt").write_bytes(data_file.read_bytes())
    return workdir


class _Launcher:
    """A `resume_script.py --serve` process: forks one training child per run."""

    def __init__(self, log: Path) -> None:
        self.stderr = open(log, "w")  # noqa: SIM115  # held for the launcher's life, closed by close()
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
        )  # fmt: skip

    def run(self, workdir: Path, loader: str, kill: str | None = None) -> int:
        """Run the script once; an `external:N` kill is sent by us once iteration N is logged."""
        argv = [str(workdir), loader]
        if kill and not kill.startswith("external"):
            argv += ["--kill", kill]
        self.process.stdin.write(json.dumps(argv) + "\n")
        self.process.stdin.flush()
        pid = int(self._answer("pid"))
        if kill and kill.startswith("external"):
            at = int(kill.split(":")[1])
            log = workdir / "log.txt"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if log.exists() and any(line.startswith(f"it {at} ") for line in log.read_text().splitlines()):
                    break
                time.sleep(0.002)
            os.kill(pid, signal.SIGKILL)
        return int(self._answer("exit"))

    def _answer(self, word: str) -> str:
        line = self.process.stdout.readline().split()
        if not line or line[0] != word:
            self.close()
            raise AssertionError(f"launcher said {line!r}:\n{Path(self.stderr.name).read_text()}")
        return line[1]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.stderr.close()


def _scenario(root: Path, loader: str, data_file: Path) -> tuple[Path, Path, list[int]]:
    launcher = _Launcher(root / f"{loader}_stderr.txt")
    try:
        reference = _workdir(root, f"{loader}_reference", data_file)
        assert launcher.run(reference, loader) == 0
        killed = _workdir(root, f"{loader}_killed", data_file)
        codes = [launcher.run(killed, loader, kill) for kill, _ in SCENARIOS[loader]]
        codes.append(launcher.run(killed, loader))
    finally:
        launcher.close()
    return reference, killed, codes


def _values(log: Path) -> dict[tuple[str, int], set[str]]:
    """Every logged value by (kind, iteration or epoch), all writes of it kept."""
    values: dict[tuple[str, int], set[str]] = {}
    for line in log.read_text().splitlines():
        words = line.split()
        if words[0] in ("it", "acc", "val", "avg"):
            values.setdefault((words[0], int(words[1])), set()).add(words[2])
    return values


def _restarts(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines() if line.split()[0] in ("started", "resumed")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_file) -> dict[str, tuple[Path, Path, list[int]]]:
    root = tmp_path_factory.mktemp("resume")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {loader: pool.submit(_scenario, root, loader, data_file) for loader in SCENARIOS}
        return {loader: future.result() for loader, future in futures.items()}


@pytest.mark.parametrize("loader", list(SCENARIOS))
def test_every_kill_was_a_real_sigkill(runs, loader):
    """Five processes died of SIGKILL; the sixth finished."""
    _, killed, codes = runs[loader]
    assert codes == [-signal.SIGKILL] * 5 + [0]
    assert (killed / "final.pt").exists()


@pytest.mark.parametrize("loader", list(SCENARIOS))
def test_final_weights_and_optimizer_are_bit_identical(runs, loader):
    """Weights and the optimizer's momentum buffers equal the uninterrupted run's, bit for bit."""
    reference, killed, _ = runs[loader]
    expected = torch.load(reference / "final.pt", weights_only=True)
    got = torch.load(killed / "final.pt", weights_only=True)
    for key, tensor in expected["model"].items():
        assert torch.equal(got["model"][key], tensor), key
    assert expected["optimizer"]["param_groups"] == got["optimizer"]["param_groups"]
    for index, buffers in expected["optimizer"]["state"].items():
        assert torch.equal(got["optimizer"]["state"][index]["momentum_buffer"], buffers["momentum_buffer"])


@pytest.mark.parametrize("loader", list(SCENARIOS))
def test_every_logged_value_matches(runs, loader):
    """Every loss, epoch-average loss and validation metric ever logged — including
    those logged again after a resume — equals the uninterrupted run's."""
    reference, killed, _ = runs[loader]
    expected = _values(reference / "log.txt")
    got = _values(killed / "log.txt")
    assert len([k for k in expected if k[0] == "it"]) == ITERATIONS
    assert got.keys() == expected.keys()
    mismatches = {key: (got[key], expected[key]) for key in expected if got[key] != expected[key]}
    assert not mismatches


@pytest.mark.parametrize("loader", list(SCENARIOS))
def test_each_restart_resumed_from_the_latest_checkpoint(runs, loader):
    """No restart trained from scratch: each resumed at the last completed checkpoint
    before its kill (a kill mid-save falls back to the one before), and logged
    iterations continue right after it."""
    _, killed, _ = runs[loader]
    restarts = _restarts(killed / "log.txt")
    assert restarts[0] == ["started"]
    assert len(restarts) == 6
    resumed_at = [int(words[2]) for words in restarts[1:]]
    for (kill, expected), got in zip(SCENARIOS[loader], resumed_at, strict=False):
        if expected is None:  # killed from outside at or after iteration N
            at = int(kill.split(":")[1])
            assert at - EVERY <= got <= at + EVERY and got % EVERY == 0, (kill, got)
        else:
            assert got == expected, (kill, got)
    lines = (killed / "log.txt").read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith("resumed"):
            iteration = int(line.split()[2])
            following = next(later for later in lines[index + 1:] if later.startswith("it "))
            assert following.split()[1] == str(iteration + 1)


@pytest.mark.parametrize("loader", list(SCENARIOS))
def test_killed_save_left_no_damage(runs, loader):
    """The save killed halfway left the previous checkpoint usable; its temp file was
    cleaned by the next start; at most n_saved=2 checkpoints remain."""
    _, killed, _ = runs[loader]
    lines = (killed / "log.txt").read_text().splitlines()
    assert any(line.startswith("killed save:") for line in lines)
    files = sorted(p.name for p in (killed / "ckpt").iterdir())
    assert not [name for name in files if ".tmp-" in name]
    # 7 saves (iterations 4, 8, ..., 28), numbered on across restarts; the last two kept
    assert files == ["checkpoint_6.pt", "checkpoint_7.pt"], files
