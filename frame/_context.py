"""Which State is current: a context variable, so threads and tasks do not leak."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .state import State

_current: contextvars.ContextVar[State | None] = contextvars.ContextVar(
    "statefire_state", default=None
)
_default: list[State] = []  # the global `frame.state`, set once by frame.state


def current() -> State:
    state = _current.get()
    return _default[0] if state is None else state
