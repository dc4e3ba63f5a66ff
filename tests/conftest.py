"""Shared fixtures: every test that asks for `s` runs inside its own `with State() as s:` scope."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from statefire.frame import State


@pytest.fixture
def s() -> Iterator[State]:
    """A fresh State, current for the duration of the test; TensorBoard writers it opened are closed after."""
    with State() as st:
        yield st
        # Frame tests never import the TensorBoard feature, so their States may have no `writers` container.
        for writer in list(getattr(st, "writers", ())):
            writer.close()


@pytest.fixture(scope="session")
def digit_tensors() -> tuple[Any, Any]:
    """All 1797 of sklearn's 8x8 digits as (pixels scaled to [0, 1], labels) tensors, loaded once.

    torch and sklearn are imported here, not at module level, so frame tests stay torch-free.
    """
    import torch
    from sklearn.datasets import load_digits

    data = load_digits()
    return torch.tensor(data.data, dtype=torch.float32) / 16, torch.tensor(data.target)


@pytest.fixture
def write_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """Writes a user script as `experiment.py` in a temp cwd; the global state is cleared around the test."""
    from statefire import frame

    def write(text: str) -> Path:
        path = tmp_path / "experiment.py"
        path.write_text(text)
        return path

    monkeypatch.chdir(tmp_path)
    frame.state.clear()
    yield write
    frame.state.clear()
