"""The lint gate: ruff, with the project's configuration in pyproject.toml, finds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What is linted: the packages, the tests, the examples (notebook included), the benchmarks, the docs hooks.
FOLDERS = ["frame", "features", "plugins", "tests", "examples", "benchmarks", *(
    str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.py")))]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_checks_the_project_files_with_its_config():
    """The gate really looks at the code: the files it checks include the core, the tests and the docs hook."""
    listed = _ruff("check", "--show-files", *FOLDERS)
    assert listed.returncode == 0, listed.stderr
    checked = {Path(line.strip()).resolve() for line in listed.stdout.splitlines() if line.strip()}
    for name in ("frame/state.py", "features/engine.py", "plugins/runs.py", "tests/test_lint.py", "docs/_hooks.py"):
        assert (ROOT / name).resolve() in checked, f"ruff does not check {name}"
    settings = _ruff("check", "--show-settings", "frame/state.py")
    assert settings.returncode == 0, settings.stderr
    assert "linter.line_length = 120" in settings.stdout, "ruff does not read pyproject.toml"


def test_ruff_finds_nothing():
    result = _ruff("check", "--no-fix", "--output-format", "json", *FOLDERS)
    assert result.returncode in (0, 1), result.stderr  # 2 would be a ruff error (bad config, crash)
    findings = json.loads(result.stdout or "[]")
    report = "\n".join(
        f"{f['filename']}:{f['location']['row']}:{f['location']['column']}: {f['code']} {f['message']}"
        for f in findings
    )
    assert not findings, f"ruff found {len(findings)} problems:\n{report}"
