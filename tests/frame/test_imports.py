"""Importing frame imports no ML library (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["torch", "ignite", "tensorboard", "numpy", "tensorflow", "networkx", "features", "plugins"]


def test_import_frame_imports_no_ml_library():
    """`import frame` in a fresh interpreter loads none of torch, ignite, tensorboard, numpy."""
    code = (
        "import sys, frame\n"
        "from statefire.frame import State, state, Feature, StateObject, Counter, Param, Ref\n"
        f"heavy = {HEAVY!r}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"frame imported: {result.stdout.strip()}"


def test_the_check_can_see_a_heavy_import():
    """The fresh-interpreter check does detect a module that is imported (the test can fail)."""
    code = "import sys, json; print('json' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def test_public_names_exist():
    """Every name the design promises is exported by `frame`."""
    from statefire import frame

    for name in ["State", "state", "Feature", "StateObject", "Counter", "Param", "Ref", "Params",
                 "FilteredRef", "Handle", "FrameError", "CycleError", "StateDictError"]:
        assert name in frame.__all__ and hasattr(frame, name)
