"""statefire installs under one import name, and a user's own `features.py` or `plugins/` cannot shadow it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_only_the_statefire_package(wheel):
    """The wheel's top level is `statefire/`, its dist-info and the debugger's view of a feature:
    no frame/, features/, plugins/, tests/, docs/."""
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    dist_info = {top for top in tops if top.endswith(".dist-info")}
    assert tops - dist_info == {"statefire", "pydevd_plugins"}, sorted(tops)
    assert {"statefire/frame/state.py", "statefire/features/engine.py", "statefire/plugins/cli.py"} <= set(names)
    assert not any(name.startswith(("statefire/tests", "statefire/examples", "statefire/docs")) for name in names)
    # pydevd's extension folder holds one module and no __init__.py, so it never replaces pydevd's own package
    extension = [name for name in names if name.startswith("pydevd_plugins/")]
    assert extension == ["pydevd_plugins/extensions/pydevd_plugin_statefire.py"]
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "statefire = statefire.plugins.cli:main" in entry_points


def test_wheel_installed_elsewhere_has_one_import_name(installed, tmp_path):
    """Installed from the wheel into a fresh environment outside the checkout:
    `statefire.frame` imports (with no torch), and `frame`, `features`, `plugins` do not exist."""
    python = installed
    probe = textwrap.dedent(
        """
        import importlib, sys
        import statefire.frame
        from statefire.frame import State
        assert "torch" not in sys.modules
        assert statefire.frame.__file__.startswith(sys.prefix), statefire.frame.__file__
        for name in ("frame", "features", "plugins"):
            try:
                importlib.import_module(name)
            except ImportError:
                continue
            raise SystemExit(f"import {name} worked")
        print("ok")
        """
    )
    result = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr


def test_a_users_own_features_frame_and_plugins_do_not_shadow_statefire(tmp_path):
    """A script beside its own `features.py`, `frame.py` and `plugins/` package runs a statefire experiment."""
    (tmp_path / "features.py").write_text("def scale(x):\n    return 2 * x\n")
    (tmp_path / "frame.py").write_text("WIDTH = 3\n")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "__init__.py").write_text("NAME = 'mine'\n")
    (tmp_path / "train.py").write_text(textwrap.dedent(
        """
        import features, frame, plugins
        from statefire.frame import state
        from statefire.features import AverageOutput, Engine
        from statefire.plugins import DataFlowGraph

        trainer = Engine("trainer", lambda engine, batch: features.scale(batch), data=range(frame.WIDTH), n_epochs=2)
        mean = AverageOutput(engine=trainer)
        trainer.run()
        assert plugins.NAME == "mine"
        assert "engines.trainer.n_samples" in DataFlowGraph(state).graph
        print(trainer.n_epoch_completed, trainer.n_samples, mean.value)
        """
    ))
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "train.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "6", "2.0"]


def test_every_import_uses_the_installed_names():
    """No code, doc, example, test or benchmark imports the folders as top-level `frame`, `features`, `plugins`."""
    pattern = re.compile(r"^\s*(?:>>> |\.\.\. )?(?:from|import) (?:frame|features|plugins)\b", re.M)
    offenders = []
    for folder in ("frame", "features", "plugins", "tests", "examples", "docs", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            if path == Path(__file__).resolve():  # its user script imports its own frame.py on purpose
                continue
            if path.suffix in (".py", ".md", ".ipynb") and pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    if pattern.search((ROOT / "README.md").read_text(encoding="utf-8")):
        offenders.append("README.md")
    assert offenders == [], f"top-level imports of the folders in {offenders}; use statefire.frame etc."
