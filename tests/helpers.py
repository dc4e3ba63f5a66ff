"""Helpers shared by test modules (importable because tests/conftest.py puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from statefire.frame import Feature, StateObject


def points(run_dir: str | Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one tag, read from disk by TensorBoard's reader; [] when the tag was never written."""
    # imported here: frame tests use this module too, and stay free of tensorboard (0.2 s to import)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run_dir))
    accumulator.Reload()
    if tag not in accumulator.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in accumulator.Scalars(tag)]


class Score(Feature):
    """A params feature with two plain state objects, for save/load round trips."""

    category = "params"
    value = StateObject(None)
    tick = StateObject(0)


class Listener:
    """A plain object whose bound methods are attached as callbacks; `seen` records their calls."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on(self, value: Any) -> None:
        self.seen.append(value)

    def on_without_value(self) -> None:
        self.seen.append("no value")
