"""Every error frame raises derives from `FrameError`, and from the matching builtin."""

from __future__ import annotations

__all__ = [
    "FrameError",
    "CycleError",
    "StateDictError",
    "NameConflictError",
    "UnknownNameError",
    "CallbackSignatureError",
    "CounterTypeError",
    "CounterValueError",
]


class FrameError(Exception):
    """Base of every error raised by frame."""


class CycleError(FrameError, RuntimeError):
    """Callbacks set each other in a loop deeper than the re-entrancy limit."""

    def __init__(self, message: str, cycle: list[str]) -> None:
        super().__init__(message)
        self.cycle = cycle


class StateDictError(FrameError, KeyError):
    """A state dict does not match the state it is loaded into."""

    def __init__(self, message: str, missing: list[str], unexpected: list[str]) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NameConflictError(FrameError, ValueError):
    """A feature name is taken, reserved, or not an identifier."""


class UnknownNameError(FrameError, AttributeError):
    """A state, container or feature has no attribute of that name."""


class CallbackSignatureError(FrameError, TypeError):
    """A callback takes more than the one value a state object passes."""


class CounterTypeError(FrameError, TypeError):
    """A counter was set to something that is not an int."""


class CounterValueError(FrameError, ValueError):
    """A counter was set to a negative int."""
