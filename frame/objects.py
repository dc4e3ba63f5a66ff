"""State objects: data descriptors whose every set fires the attached callbacks.

A state object has only `__set__`, so reads are plain instance-dict reads.
A set stores the value, then calls the owner's active fire callable for that
name if there is one; there is one only while callbacks are attached (or a
hold or an observer is active), so an unobserved set costs one dict write and
one dict lookup.
"""

from __future__ import annotations

import copy
import operator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .errors import CounterTypeError, CounterValueError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["StateObject", "Counter", "Param"]

_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, tuple, frozenset)

T = TypeVar("T")


class StateObject(Generic[T]):
    """A variable of a feature; setting it is an event.

    Generic in its value type, which a type checker infers from the default
    (`StateObject(0.0)` holds a float; without a default, or with `None`,
    any value) or reads from a subscript (`StateObject[list[int]]([])`):
    `feature.x` then reads as that type, and a set of another type is
    reported. Reads cost nothing extra: the descriptor has no `__get__` at
    run time (its overloads exist for type checkers only).

    Args:
        default: initial value of every instance (mutable defaults are copied).
        doc: what the value means, shown by inspection tools.
        persist: include the value in `state_dict()`.
        hidden: bookkeeping a person need not read (a resume position):
            left out of `print(state)`, `state.tree()` and a feature's
            repr, still in `values()` and `state_dict()`.

    Example:
        >>> from statefire.frame import Feature, StateObject, State
        >>> class Thermometer(Feature):
        ...     category = "sensors"
        ...     celsius = StateObject(0.0, doc="last reading")
        >>> with State():
        ...     t = Thermometer()
        ...     seen = []
        ...     handle = t.celsius_ref.attach(seen.append)
        ...     t.celsius = 21.5
        >>> seen
        [21.5]
    """

    __slots__ = ("name", "default", "doc", "persist", "observed", "hidden")

    @overload
    def __init__(
        self: StateObject[Any], default: None = None, *, doc: str = "", persist: bool = True, hidden: bool = False
    ) -> None: ...

    @overload
    def __init__(self, default: T, *, doc: str = "", persist: bool = True, hidden: bool = False) -> None: ...

    def __init__(self, default: Any = None, *, doc: str = "", persist: bool = True, hidden: bool = False) -> None:
        self.name = ""
        # How many instances have a fire callable for this object: while none
        # has, a set skips the lookup (the common case, and the hot path).
        self.observed = 0
        self.default = default
        self.doc = doc
        self.persist = persist
        self.hidden = hidden

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def initial(self) -> T:
        """The value a new instance starts with."""
        default: T = self.default
        return default if isinstance(default, _IMMUTABLE) else copy.copy(default)

    def validate(self, value: Any, where: str = "") -> T:
        """The value a set stores (a `Counter` checks it is a non-negative int); used by silent sets."""
        return value  # type: ignore[no-any-return]

    if TYPE_CHECKING:
        # For type checkers only: at run time a read is a plain instance-dict
        # read, because the descriptor defines no __get__.
        @overload
        def __get__(self, obj: None, owner: type) -> Self: ...

        @overload
        def __get__(self, obj: object, owner: type) -> T: ...

        def __get__(self, obj: object, owner: type) -> Self | T: ...

    def __set__(self, obj: Any, value: T) -> None:
        obj.__dict__[self.name] = value
        if self.observed:
            fire = obj._sf.get(self.name)
            if fire is not None:
                fire(value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.default!r}) named {self.name!r}"


class Counter(StateObject[int]):
    """A non-negative int counting events (`n_samples`, `n_epoch_completed`, ...).

    Filters attached to a counter follow its value, not the number of sets:
    `every=N` fires when the value crosses a multiple of N, so it works for
    counters that step by more than one and survives a resume.

    Example:
        >>> from statefire.frame import Counter, Feature, State
        >>> class Loop(Feature):
        ...     category = "engines"
        ...     n_steps = Counter(doc="steps taken")
        >>> with State():
        ...     loop = Loop()
        ...     loop.n_steps += 2
        ...     print(loop.n_steps)
        2
    """

    __slots__ = ()

    def __init__(self, default: int = 0, *, doc: str = "", persist: bool = True, hidden: bool = False) -> None:
        super().__init__(_counter_value(default, "default"), doc=doc, persist=persist, hidden=hidden)

    def validate(self, value: Any, where: str = "") -> int:
        return _counter_value(value, where or self.name)

    def __set__(self, obj: Any, value: int) -> None:
        if type(value) is not int or value < 0:
            value = _counter_value(value, f"{type(obj).__name__}.{self.name}")
        obj.__dict__[self.name] = value
        if self.observed:
            fire = obj._sf.get(self.name)
            if fire is not None:
                fire(value)


class Param(StateObject[T]):
    """A hyperparameter: a state object exported and imported as configuration.

    Example:
        >>> from statefire.frame import Feature, Param, State
        >>> class Optim(Feature):
        ...     category = "components"
        ...     lr = Param(0.1, doc="learning rate")
        >>> with State() as s:
        ...     _ = Optim()
        ...     print(s.config())
        {'components.optim.lr': 0.1}
    """

    __slots__ = ()


def _counter_value(value: Any, where: str) -> int:
    """Validate a counter value: an int (or an `__index__` number), never negative."""
    if not isinstance(value, bool):
        try:
            number = operator.index(value)
        except TypeError:
            pass
        else:
            if number >= 0:
                return number
            raise CounterValueError(
                f"counter {where} must be a non-negative int, got {value!r}; "
                "counters only count events, use a StateObject for other numbers"
            )
    raise CounterTypeError(
        f"counter {where} must be a non-negative int, got {value!r} "
        f"of type {type(value).__name__}; use a StateObject for other values"
    )
