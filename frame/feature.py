"""Features: the containers of state objects that a State holds.

`Observable` gives a class its state objects, their refs and the per-instance
machinery (one private attribute, `_sf`, so a debugger shows the values and
little else). `Feature` adds a category, a name and registration in the
current State.
"""

from __future__ import annotations

import contextlib
import functools
import keyword
import types
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from . import _context
from ._names import did_you_mean, snake_case
from .dispatch import Handle, _Dispatcher, wiring
from .errors import CopyError, FrameError, NameConflictError, StateDictError, UnknownNameError
from .objects import Counter, Param, StateObject
from .refs import Ref

if TYPE_CHECKING:
    from .state import State

__all__ = ["Feature", "Params", "Observable"]

#: The design's standard categories: names no feature may take, present in every State.
STANDARD_CATEGORIES = frozenset({
    "engines", "metrics", "output_handlers", "charts", "writers",
    "handlers", "components", "params", "plugins",
})  # fmt: skip

K = TypeVar("K")
V = TypeVar("V")


class Listing(list[V]):
    """A list that a property returns; calling it (the older method spelling) returns it too."""

    def __call__(self) -> Listing[V]:
        warnings.warn(
            "this collection is a property now: drop the parentheses (state.refs, state.handles, feature.refs)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self


class Keyed(dict[K, V]):
    """A dict that a property returns; calling it (the older method spelling) returns it too."""

    def __call__(self) -> Keyed[K, V]:
        warnings.warn(
            "this collection is a property now: drop the parentheses (feature.refs)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self


class _Machinery(dict[str, Callable[[Any], None]]):
    """Per-instance machinery: maps an object's name to its active fire callable.

    The dict holds an entry only for objects that must fire (callbacks
    attached, or a hold or observer active), so a set checks one `dict.get`.
    `owned` indexes the handles whose callback belongs to this owner, so
    removing it touches only those; weakly, so that an owner does not keep
    alive the features it listens to.
    """

    __slots__ = ("owner", "state", "dispatchers", "init_depth", "announced", "owned")

    def __init__(self, owner: Observable) -> None:
        super().__init__()
        self.owner = owner
        self.state: State | None = None
        self.dispatchers: dict[str, _Dispatcher] = {}
        self.init_depth = 0
        self.announced = False
        self.owned: weakref.WeakSet[Handle] = weakref.WeakSet()

    def dispatcher(self, name: str, create: bool = False) -> _Dispatcher | None:
        dispatcher = self.dispatchers.get(name)
        if dispatcher is None and create:
            objects = type(self.owner)._sf_objects
            if name not in objects:
                raise UnknownNameError(
                    f"{type(self.owner).__name__} has no state object {name!r}; "
                    + did_you_mean(name, objects)
                )
            dispatcher = _Dispatcher(self.owner, name, isinstance(objects[name], Counter))
            self.dispatchers[name] = dispatcher
        return dispatcher

    def rewire(self, name: str) -> None:
        """Recompute the active fire callable of one object."""
        dispatcher = self.dispatchers.get(name)
        if dispatcher is not None and not dispatcher.handles:
            del self.dispatchers[name]
            dispatcher = None
        state = self.state
        if state is not None:
            fire = state._active_fire(self.owner, name, dispatcher)
        else:
            fire = None if dispatcher is None else dispatcher.fire
        self._put(name, fire)
        wiring.bump()

    def _put(self, name: str, fire: Callable[[Any], None] | None) -> None:
        """Install (or with None, remove) a fire callable, keeping the descriptor's count."""
        had = name in self
        if fire is not None:
            self[name] = fire
        elif had:
            del self[name]
        if had != (fire is not None):
            type(self.owner)._sf_objects[name].observed += 1 if fire is not None else -1

    def drop_all(self) -> None:
        """Remove every fire callable (the owner leaves its State)."""
        for name in list(self):
            self._put(name, None)
        wiring.bump()

    def rewire_all(self) -> None:
        for name in type(self.owner)._sf_objects:
            self.rewire(name)

    def __repr__(self) -> str:  # keep debugger views short
        return f"<machinery: {len(self.dispatchers)} observed objects>"


class Observable:
    """Anything holding state objects: a feature, or a State's container.

    For type checkers, `<name>_ref` reads as a `Ref` (made at class creation,
    so they cannot see it otherwise); declare `<name>_ref: Ref[int]` in the
    class body for a precise value type.
    """

    _sf_objects: ClassVar[dict[str, StateObject[Any]]] = {}
    _sf: _Machinery

    if TYPE_CHECKING:
        # For type checkers only (a run-time __getattr__ would slow every
        # attribute access): `x_ref` of a state object `x` is a Ref.
        def __getattr__(self, name: str) -> Ref[Any]: ...

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        objects: dict[str, StateObject[Any]] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, StateObject):
                    objects[name] = value
                elif name in objects:  # a subclass replaced the object with something else
                    del objects[name]
        declared = {n for n, o in vars(cls).items() if isinstance(o, StateObject)}
        taken = _api_names() & declared if declared else set()
        if taken:
            name = sorted(taken)[0]
            raise NameConflictError(
                f"state object {name!r} of {cls.__name__} would hide {cls.__name__}.{name}, which frame "
                f"uses ({_API_USE.get(name, 'part of the feature API')}); rename it, e.g. {name + '_value'!r}"
            )
        cls._sf_objects = objects
        for name in objects:
            # `<name>_ref` is a plain property, so a feature has no __getattr__
            # slowing every attribute access (a set reads two attributes).
            if f"{name}_ref" not in vars(cls):
                setattr(cls, f"{name}_ref", _ref_property(name))

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        self = object.__new__(cls)
        values = {"_sf": _Machinery(self)}
        for name, obj in cls._sf_objects.items():
            values[name] = obj.initial()
        # A dict of our own rather than the instance's key-sharing one: a
        # state object stores into `__dict__`, and once a key-sharing dict is
        # touched that way CPython stops specializing every attribute access
        # of the instance (a set then costs a third more).
        object.__setattr__(self, "__dict__", values)  # past any __setattr__ of a subclass
        return self

    @property
    def path(self) -> str:
        raise NotImplementedError

    @property
    def state(self) -> State | None:
        """The State this belongs to (None for a feature once removed)."""
        return self._sf.state

    @property
    def fire_functions(self) -> Mapping[str, Callable[[Any], None]]:
        """The fire function of each state object that must fire now, by name (live, read-only use).

        An object is here only while callbacks are attached to it (or a hold
        or observer is active). It is for code setting values itself: a
        descriptor overriding `__set__`, or a hot loop that writes
        `__dict__` and calls `fire_functions.get(name)`, reloading it when
        `wiring.version` changes.
        """
        return self._sf

    @classmethod
    def state_objects(cls) -> Mapping[str, StateObject[Any]]:
        """The state objects this class declares (its own and inherited), by name; read-only."""
        return types.MappingProxyType(cls._sf_objects)

    def values(self) -> dict[str, Any]:
        """Every state object's current value, by name (a method, like `state_dict()`: it reads
        the values now, and a feature may override it to refresh them first)."""
        values = self.__dict__
        return {name: values[name] for name in type(self)._sf_objects}

    def shown_values(self) -> dict[str, Any]:
        """What a person sees of this feature (`print(state)`, its repr, a notebook table): `values()`
        without the hidden objects (`StateObject(hidden=True)`, resume bookkeeping). A feature may
        override it to add a summary (a model shows its parameter count)."""
        objects = type(self)._sf_objects
        return {name: value for name, value in self.values().items() if not getattr(objects.get(name), "hidden", False)}

    @property
    def refs(self) -> Keyed[str, Ref[Any]]:
        """A ref to every state object, by name."""
        return Keyed({name: Ref(self, name) for name in type(self)._sf_objects})

    # A State, its features and refs are live wiring (callbacks, handles,
    # weak references): a copy would share or lose it, so copying is refused.
    def __reduce_ex__(self, protocol: Any) -> Any:
        raise _copy_error(f"{type(self).__name__} {self.path}")

    def __copy__(self) -> Any:
        raise _copy_error(f"{type(self).__name__} {self.path}")

    def __deepcopy__(self, memo: Any) -> Any:
        raise _copy_error(f"{type(self).__name__} {self.path}")


def _copy_error(what: str) -> CopyError:
    return CopyError(
        f"{what} cannot be copied or pickled: it is live wiring (callbacks, handles, its State); "
        "save its values with state_dict() and restore them with load_state_dict() into an "
        "object built the same way"
    )


#: Why a state object may not take the name of a Feature attribute.
_API_USE = {
    "name": "the feature's name in its State",
    "state": "the State the feature belongs to",
    "category": "the feature's container",
    "path": "the prefix of every ref path",
}


@functools.cache
def _api_names() -> frozenset[str]:
    """The public attribute names of Feature, which no state object may hide."""
    return frozenset({n for n in dir(Feature) if not n.startswith("_")} | {"name"})


def _ref_property(name: str) -> property:
    def ref(self: Observable) -> Ref[Any]:
        return Ref(self, name)

    ref.__name__ = f"{name}_ref"
    return property(ref, doc=f"The ref to state object {name!r}.")


class Feature(Observable):
    """A peer of the state: declares a category and its state objects.

    Instantiating a feature registers it in the current State under its name
    (by default its class name in snake_case); once the outermost `__init__`
    returns, its container's `added` object fires with it.

    Example:
        >>> from statefire.frame import Feature, Counter, StateObject, State
        >>> class Greeter(Feature):
        ...     category = "handlers"
        ...     n_greeted = Counter()
        ...     last = StateObject("")
        ...     def greet(self, who):
        ...         self.last = f"hello {who}"
        ...         self.n_greeted += 1
        >>> with State() as s:
        ...     Greeter().greet("world")
        ...     print(s.greeter.last, s.greeter.n_greeted)
        hello world 1
    """

    category: ClassVar[str] = "features"
    name: str
    #: Extra state saved besides the state objects, declared once: state-dict
    #: key -> the attribute holding an object with `state_dict()` and
    #: `load_state_dict(...)` (a torch module, optimizer, scheduler, scaler,
    #: an ignite metric). An attribute holding None saves nothing under its key.
    #: `state_dict` adds each key after the state objects; a restore sets the
    #: state objects first, then loads each key's object.
    extra_state: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        category = cls.__dict__.get("category")
        if category is not None and (
            not isinstance(category, str) or not category.isidentifier() or category.startswith("_")
        ):
            raise TypeError(
                f"{cls.__name__}.category must be an identifier, got {category!r} (not starting with '_')"
            )
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _announcing(init)  # type: ignore[method-assign]

    def __init__(self, *, name: str | None = None) -> None:
        if "name" not in self.__dict__:
            _context.current()._add(self, name)

    # -- identity -------------------------------------------------------
    @property
    def path(self) -> str:
        """`"<category>.<name>"`, the prefix of every ref path of this feature."""
        return f"{self.category}.{self.__dict__.get('name', '?')}"

    def require_state(self) -> State:
        """The State this feature is in, for code that needs one (`state` is None once removed).

        Raises:
            FrameError: when the feature was removed from its State.
        """
        state = self._sf.state
        if state is None:
            raise FrameError(
                f"{type(self).__name__} {self.path} was removed from its State; create it again in a State to use it"
            )
        return state

    def remove(self) -> None:
        """Remove this feature from its State, detaching every callback it owns, then `close()` it."""
        state = self._sf.state
        if state is not None:
            state.remove(self)

    def close(self) -> None:
        """Release what this feature holds outside the State (files, writers, threads): the release hook.

        The State calls it when the feature is removed (`state.remove`,
        `feature.remove()`), on `state.clear()`, and when the outermost
        `with State():` block of its State ends. It may be called more than
        once, and a feature may be used again after it (reopening what it
        needs). The default does nothing; override it, e.g. to close a
        writer.
        """

    # -- serialization --------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The persisted state objects' values, by name.

        Extra state (a module's weights, a scheduler's) is declared in
        `extra_state` and saved here under its key; anything else a feature
        adds by overriding this method it restores by overriding
        `load_state_dict`.
        """
        values = self.__dict__
        cls = type(self)
        state_dict = {n: values[n] for n, obj in cls._sf_objects.items() if obj.persist}
        for key, attribute in cls.extra_state.items():
            holder = getattr(self, attribute, None)
            if holder is not None:
                state_dict[key] = holder.state_dict()
        return state_dict

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Restore values silently (no callback fires): the restore hook.

        `State.load_state_dict` (and so `Checkpoint`) calls it for every
        feature. A feature that adds keys in `state_dict` restores them by
        overriding this method, torch style: take its keys out and pass the
        rest on, `super().load_state_dict(rest, strict)`.

        Raises:
            StateDictError: when `strict` and a persisted state object is
                missing, or a key is left that nothing restores (a key added
                by `state_dict` without a matching `load_state_dict`).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"the state dict of {self.path} must be a dict, got {type(state_dict).__name__}"
            )
        cls = type(self)
        objects = {n for n, obj in cls._sf_objects.items() if obj.persist}
        # A feature overriding `_load` (the older private hook) restores every key it saves.
        expected = set(self.state_dict()) if cls._load is not Feature._load else objects | self._extra_keys()
        given = set(state_dict)
        if strict:
            missing = [f"{self.path}.{k}" for k in sorted(expected - given, key=str)]
            unexpected = [f"{self.path}.{k}" for k in sorted(given - expected, key=str)]
            if missing or unexpected:
                raise _state_dict_error(missing, unexpected, self._unrestored(given - expected))
        state = self._sf.state
        with state.silenced() if state is not None else contextlib.nullcontext():
            self._load(state_dict)

    def _check(self, given: Any) -> tuple[list[str], list[str], list[str]]:
        """Paths missing from a saved state dict, paths it has that this feature does not save,
        and paths this feature saves but nothing restores (`state_dict` overridden without
        `load_state_dict`)."""
        if not isinstance(given, Mapping):
            raise TypeError(
                f"the state dict of {self.path} must be a dict, got {type(given).__name__}"
            )
        saved = set(self.state_dict())
        keys = set(given)
        unrestored = self._unrestored(keys & saved)
        prefix = self.path
        return (
            [f"{prefix}.{k}" for k in sorted(saved - keys, key=str)],
            [f"{prefix}.{k}" for k in sorted(keys - saved, key=str)],
            unrestored,
        )

    def _unrestored(self, keys: set[Any]) -> list[str]:
        """Those of `keys` this feature saves although no override of its restores them."""
        cls = type(self)
        if cls.load_state_dict is not Feature.load_state_dict or cls._load is not Feature._load:
            return []
        objects = {n for n, obj in cls._sf_objects.items() if obj.persist} | set(cls.extra_state)
        saved = set(self.state_dict())
        return [f"{self.path}.{k}" for k in sorted((keys & saved) - objects, key=str)]

    def _extra_keys(self) -> set[str]:
        """The keys of `extra_state` saved now (those whose attribute holds an object)."""
        return {k for k, attribute in type(self).extra_state.items() if getattr(self, attribute, None) is not None}

    def _load(self, state_dict: Mapping[str, Any]) -> None:
        """Set the values of `state_dict` (called inside a silenced block)."""
        objects = type(self)._sf_objects
        for name, value in state_dict.items():
            obj = objects.get(name)
            if obj is not None and obj.persist:
                setattr(self, name, value)
        for key, attribute in type(self).extra_state.items():
            holder = getattr(self, attribute, None)
            if holder is not None and key in state_dict:
                holder.load_state_dict(state_dict[key])

    def __repr__(self) -> str:
        from ._render import summarize

        values = ", ".join(f"{n}={summarize(v)}" for n, v in self.shown_values().items())
        return f"<{type(self).__name__} {self.path}: {values}>"

    def _repr_html_(self) -> str:
        """A notebook shows the feature as a table of its state objects."""
        from ._render import html_rows

        return f"<table>{html_rows(self)}</table>"


def _announcing(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap `__init__` so the outermost call registers and announces the feature."""

    @functools.wraps(init)
    def __init__(self: Feature, *args: Any, **kwargs: Any) -> None:
        machinery = self._sf
        if machinery.init_depth == 0:
            # What the State held before: a failed construction takes out what it registered
            # (its components too), so a notebook cell fixed and re-run starts clean.
            home = _context.current()
            n_before = len(home._frame.features)
        machinery.init_depth += 1
        try:
            init(self, *args, **kwargs)
        except BaseException:
            machinery.init_depth -= 1
            if machinery.init_depth == 0:
                _remove_half_built(self, home, n_before)
            raise
        machinery.init_depth -= 1
        if machinery.init_depth == 0 and not machinery.announced:
            if "name" not in self.__dict__:  # the subclass never called Feature.__init__
                _context.current()._add(self, None)
            machinery.announced = True
            state = machinery.state
            if state is not None:
                state._announce(self)

    return __init__


def _remove_half_built(feature: Feature, state: State, n_before: int) -> None:
    """Remove `feature`, whose `__init__` raised, and the features registered during it, newest first."""
    if feature._sf.state is not None:
        state = feature._sf.state
    for other in reversed(list(state._frame.features.values())[n_before:]):
        if other is feature or other._sf.init_depth == 0:
            announced = other._sf.announced
            with contextlib.suppress(Exception):  # the constructor's own error is the one to see
                state.remove(other, announce=announced)


Feature.__init__ = _announcing(Feature.__init__)  # type: ignore[method-assign]


def check_feature_name(name: Any, cls: type) -> str:
    """Validate a feature name; say what is wrong and what to do instead."""
    if not isinstance(name, str):
        raise TypeError(f"name of a {cls.__name__} must be a str, got {name!r}")
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise NameConflictError(
            f"name {name!r} of a {cls.__name__} must be a Python identifier not starting "
            "with '_', so that state.<name> reaches it; try "
            f"{snake_case(''.join(c if c.isalnum() else '_' for c in name)).strip('_') or 'feature'!r}"
        )
    return name


def default_name(cls: type) -> str:
    return snake_case(cls.__name__)


class Params(Feature):
    """Free-standing hyperparameters: each keyword becomes a `Param`.

    Example:
        >>> from statefire.frame import Params, State
        >>> with State() as s:
        ...     hp = Params(name="hp", batch_size=32, lr=0.1)
        ...     hp.lr = 0.05
        ...     print(s.hp.lr, s.config())
        0.05 {'params.hp.batch_size': 32, 'params.hp.lr': 0.05}
    """

    category = "params"

    if TYPE_CHECKING:
        # Params' objects are made from keywords: a type checker cannot know them.
        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...

    def __new__(cls, *, name: str | None = None, **values: Any) -> Any:
        if cls is Params:
            namespace: dict[str, Any] = {key: Param(value) for key, value in values.items()}
            namespace["__module__"] = __name__
            namespace["__qualname__"] = "Params"
            cls = type("Params", (Params,), namespace)
        return super().__new__(cls)

    def __init__(self, *, name: str | None = None, **values: Any) -> None:
        super().__init__(name=name or "hparams")


def _state_dict_error(missing: list[str], unexpected: list[str], unrestored: list[str] = ()) -> StateDictError:  # type: ignore[assignment]
    parts = []
    if missing:
        parts.append("missing keys: " + ", ".join(missing))
    if unexpected:
        parts.append("unexpected keys: " + ", ".join(unexpected))
    if unrestored:
        parts.append(
            "saved but restored by nothing: " + ", ".join(unrestored)
            + " (the feature's state_dict() adds them: override load_state_dict to restore them)"
        )
    return StateDictError(
        "state dict does not match the state; "
        + "; ".join(parts)
        + " (load with strict=False to restore only the matching part)",
        missing,
        [*unexpected, *unrestored],
    )
