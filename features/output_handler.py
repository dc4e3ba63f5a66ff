"""OutputHandler: a value derived from another, as a peer others can follow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from statefire.frame import Feature, FilteredRef, Ref, StateObject, as_ref, check

__all__ = ["OutputHandler"]


class OutputHandler(Feature):
    """Sets `output` to `transform(value)` whenever `input_ref` fires.

    Peers wire to its `output_ref`: a metric on an output handler's output
    works exactly as on an engine's.

    Example:
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, OutputHandler
        >>> with State() as s:
        ...     engine = Engine("engine", lambda e, b: b, data=[1, 2, 3])
        ...     doubled = OutputHandler(engine.output_ref, lambda x: 2 * x, name="doubled")
        ...     seen = []
        ...     handle = doubled.output_ref.attach(seen.append)
        ...     _ = engine.run()
        >>> seen
        [2, 4, 6]
    """

    category = "output_handlers"

    output = StateObject(persist=False, doc="transform(value) of the last input")

    def __init__(
        self,
        input_ref: Ref | FilteredRef,
        transform: Callable[[Any], Any],
        *,
        name: str | None = None,
    ) -> None:
        if not callable(transform):
            raise TypeError(f"transform of OutputHandler {name!r} must be callable, got {transform!r}")
        super().__init__(name=name)
        self.input_ref = as_ref(input_ref, f"input_ref of OutputHandler {self.name!r}")
        check.same_state(self)(self.input_ref, "input_ref", f"OutputHandler {self.name!r}")
        self.transform = transform
        self.input_ref.attach(self._update)

    def _update(self, value: Any) -> None:
        self.output = self.transform(value)
