"""Shared fixtures: every frame test runs inside its own `with State() as s:` scope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from statefire.frame import State


@pytest.fixture
def s() -> Iterator[State]:
    """A fresh State, current for the duration of the test."""
    with State() as st:
        yield st
