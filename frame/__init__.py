"""frame: the pure-Python core of statefire.

One `State` holds every feature of an experiment; each feature declares its
variables as state objects, and setting one fires the callbacks attached to
it. Nothing here imports torch or any ML library.
"""

from .dispatch import MAX_DEPTH, Filter, Handle, wiring
from .errors import (
    CallbackSignatureError,
    CounterTypeError,
    CounterValueError,
    CycleError,
    FrameError,
    NameConflictError,
    StateDictError,
    UnknownNameError,
)
from .feature import CATEGORIES, Feature, Observable, Params
from .objects import Counter, Param, StateObject
from .refs import FilteredRef, Ref, RefLike, as_ref
from .state import Container, State, state

__all__ = [
    "State",
    "state",
    "Container",
    "Feature",
    "Observable",
    "Params",
    "StateObject",
    "Counter",
    "Param",
    "Ref",
    "FilteredRef",
    "RefLike",
    "as_ref",
    "Handle",
    "Filter",
    "wiring",
    "MAX_DEPTH",
    "CATEGORIES",
    "FrameError",
    "CycleError",
    "StateDictError",
    "NameConflictError",
    "UnknownNameError",
    "CallbackSignatureError",
    "CounterTypeError",
    "CounterValueError",
]
