"""Importing statefire.frame (and the torch-free peers) imports no ML library, checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["torch", "ignite", "tensorboard", "numpy", "tensorflow", "networkx"]


def loaded_after(code: str) -> list[str]:
    """The statefire and heavy modules a fresh interpreter holds after running `code`."""
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {[*HEAVY, 'statefire']!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in HEAVY]


def test_import_frame_imports_no_ml_library():
    """`import statefire.frame` loads the core and none of torch, ignite, tensorboard, numpy."""
    modules = loaded_after(
        "import statefire.frame\n"
        "from statefire.frame import State, state, Feature, StateObject, Counter, Param, Ref"
    )
    assert "statefire.frame.state" in modules  # the import happened: the check is not vacuous
    assert heavy(modules) == [], f"statefire.frame imported {heavy(modules)}"
    assert not any(m.startswith(("statefire.features", "statefire.plugins")) for m in modules)


def test_engine_imports_no_torch():
    """`from statefire.features import Engine` loads the engine module and still no torch."""
    modules = loaded_after("from statefire.features import Engine\nimport statefire.features.engine")
    assert "statefire.features.engine" in modules
    assert heavy(modules) == [], f"the engine imported {heavy(modules)}"


def test_the_check_sees_a_heavy_import():
    """The fresh-interpreter check does report torch when a torch-backed peer is imported (it can fail)."""
    modules = loaded_after("from statefire.features import Model")
    assert "torch" in modules and "statefire.features.components" in modules


def test_public_names_exist():
    """Every name the design promises is exported by `statefire.frame`."""
    from statefire import frame

    for name in ["State", "state", "Feature", "StateObject", "Counter", "Param", "Ref", "Params",
                 "FilteredRef", "Handle", "FrameError", "CycleError", "StateDictError"]:
        assert name in frame.__all__ and hasattr(frame, name)
