"""Every script in examples/ runs to completion, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]


def test_quickstart_reaches_its_accuracy(tmp_path: Path) -> None:
    """The quickstart's validation accuracy ends at 0.95 or better."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    last_epoch = [line for line in out.splitlines() if line.startswith("epoch")][-1]
    val_accuracy = float(last_epoch.split("val acc")[1].split()[0])
    assert val_accuracy >= 0.95, last_epoch
    assert "val_evaluator_accuracy (Accuracy)" in out
