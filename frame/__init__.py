"""frame: the pure-Python core of statefire.

One `State` holds every feature of an experiment; each feature declares its
variables as state objects, and setting one fires the callbacks attached to
it. Nothing here imports torch or any ML library.

For plugins, the public ways into a State are: `feature.state` (its State),
`type(feature).state_objects()` (its state objects), `feature.refs`,
`state.handles`, `handle.kind` (a tag such as `"run_on"`), and `summarize`
(a one-line rendering of any value); `feature.require_state()` (its State,
or a clear error once removed) and `feature.fire_functions` (for code that
sets values itself). Features and plugins check their arguments with the
validators of `check` and name classes with `snake_case`.
"""

from . import check, errors
from ._lazy import lazy_exports
from ._names import did_you_mean, snake_case
from ._render import summarize
from .dispatch import MAX_DEPTH, Filter, FilterProgress, Handle, wiring
from .errors import *  # noqa: F403  (every error class; errors.__all__ lists them once)
from .feature import Feature, Observable, Params
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
    "FilterProgress",
    "wiring",
    "MAX_DEPTH",
    "summarize",
    "did_you_mean",
    "snake_case",
    "check",
    "lazy_exports",
]
__all__ += errors.__all__  # every error class, listed once where they are defined
