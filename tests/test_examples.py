"""Every script in examples/ runs to completion, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def check_quickstart(out: str) -> None:
    """The quickstart's validation accuracy ends at 0.95 or better, and it prints the state."""
    last_epoch = [line for line in out.splitlines() if line.startswith("epoch")][-1]
    val_accuracy = float(last_epoch.split("val acc")[1].split()[0])
    assert val_accuracy >= 0.95, last_epoch
    assert "val_evaluator_accuracy (Accuracy)" in out


def check_runs(out: str) -> None:
    """Both runs land in runs/digits/ and the comparison lists the learning rate first among differences."""
    assert out.count("-> runs/digits/") == 2
    assert "*  params.hp.lr" in out and out.index("*  params.hp.lr") < out.index("params.hp.hidden")
    assert "best: lr=0.3" in out


CHECKS = {"quickstart.py": check_quickstart, "runs.py": check_runs}


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MPLBACKEND": "Agg"}  # statefire is installed: no path set-up
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    check = CHECKS.get(script.name)
    if check is not None:
        check(result.stdout)
