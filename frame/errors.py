"""Every error frame raises derives from `FrameError`, and from the matching builtin."""

from __future__ import annotations

import sys

__all__ = [
    "FrameError",
    "CycleError",
    "DepthError",
    "StateDictError",
    "NameConflictError",
    "UnknownNameError",
    "CallbackSignatureError",
    "CounterTypeError",
    "CounterValueError",
    "CopyError",
]


def add_note(error: BaseException, note: str) -> None:
    """Append `note` to `error`'s notes (`BaseException.add_note`, written out on Python 3.10)."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # Python 3.10
        error.__notes__ = [*getattr(error, "__notes__", []), note]


class FrameError(Exception):
    """Base of every error raised by frame."""


class _ChainError(FrameError):
    """An error raised inside nested sets, naming the chain of sets it passed through.

    Each dispatch the error propagates through adds the path of its object
    (`passed`), so by the time anyone reads the error it holds the whole
    chain, outermost set first; the message is written from it when read.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message
        self._inner_first: list[str] = []

    def passed(self, path: str) -> None:
        """Called by each dispatch the error propagates through, innermost first."""
        self._inner_first.append(path)

    @property
    def chain(self) -> list[str]:
        """The paths of the sets in progress when the error was raised, outermost first."""
        return self._inner_first[::-1]


class CycleError(_ChainError, RuntimeError):
    """Callbacks set each other in a loop.

    Raised when an object re-enters its own dispatch `MAX_DEPTH` times, or
    when a chain of sets that repeats an object reaches Python's recursion
    limit. `cycle` names the loop by paths, closed on its first element
    (`["engines.a.x", "metrics.b.value", "engines.a.x"]`).
    """

    def __init__(self, message: str = "", cycle: list[str] | None = None) -> None:
        super().__init__(message)
        self._cycle = cycle

    @property
    def cycle(self) -> list[str]:
        if self._cycle is not None:
            return self._cycle
        return _shortest_cycle(self.chain)

    def __str__(self) -> str:
        if self.message and self._cycle is not None:
            return self.message
        cycle = self.cycle
        if len(cycle) > 12:  # the `cycle` attribute keeps every path
            cycle = [*cycle[:5], f"... {len(cycle) - 10} more ...", *cycle[-5:]]
        return (
            f"callbacks set each other in a cycle of {len(self.cycle) - 1} objects: {' -> '.join(cycle)}"
            + (f" ({self.message})" if self.message else "")
            + "; break the loop, or guard the set with a condition"
        )


class DepthError(_ChainError, RecursionError):
    """A chain of nested sets (a callback setting an object whose callback sets another...)
    reached Python's recursion limit without repeating an object.

    `chain` lists the sets in progress, outermost first; `depth` is their number.
    """

    def __init__(self, message: str = "", limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = sys.getrecursionlimit() if limit is None else limit

    @property
    def depth(self) -> int:
        return len(self._inner_first)

    def __str__(self) -> str:
        chain = self.chain
        shown = chain if len(chain) <= 6 else [*chain[:3], f"... {len(chain) - 5} more ...", *chain[-2:]]
        return (
            f"a chain of {len(chain)} nested sets reached Python's recursion limit "
            f"({self.limit}): {' -> '.join(shown)}; every set runs its callbacks before it "
            "returns, so each link of the chain adds Python frames. If the chain is meant to be "
            "this deep, raise the limit with sys.setrecursionlimit(...); otherwise let a callback "
            "record what to do and do it after the set returns"
        )


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


class CopyError(FrameError, TypeError):
    """A State, feature or ref was copied or pickled: its callbacks and wiring cannot be."""


def _shortest_cycle(chain: list[str]) -> list[str]:
    """The repeating tail of a chain of sets (outermost first), closed on its first element."""
    if not chain:
        return chain
    last = chain[-1]
    for i in range(len(chain) - 2, -1, -1):
        if chain[i] == last:
            return chain[i:]
    return chain
