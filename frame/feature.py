"""Features: the containers of state objects that a State holds.

`Observable` gives a class its state objects, their refs and the per-instance
machinery (one private attribute, `_sf`, so a debugger shows the values and
little else). `Feature` adds a category, a name and registration in the
current State.
"""

from __future__ import annotations

import functools
import keyword
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from . import _context
from ._names import did_you_mean, snake_case
from .dispatch import _Dispatcher, wiring
from .errors import NameConflictError, StateDictError, UnknownNameError
from .objects import Counter, Param, StateObject
from .refs import Ref

if TYPE_CHECKING:
    from .state import State

__all__ = ["Feature", "Params", "Observable", "CATEGORIES"]

#: Every category a feature class declares, plus the design's standard ones.
CATEGORIES: set[str] = {
    "engines", "metrics", "output_handlers", "charts", "writers",
    "handlers", "components", "params", "plugins",
}  # fmt: skip


class _Machinery(dict):
    """Per-instance machinery: maps an object's name to its active fire callable.

    The dict holds an entry only for objects that must fire (callbacks
    attached, or a hold or observer active), so a set checks one `dict.get`.
    """

    __slots__ = ("owner", "state", "dispatchers", "init_depth", "announced")

    def __init__(self, owner: Observable) -> None:
        super().__init__()
        self.owner = owner
        self.state: State | None = None
        self.dispatchers: dict[str, _Dispatcher] = {}
        self.init_depth = 0
        self.announced = False

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
    """Anything holding state objects: a feature, or a State's container."""

    _sf_objects: ClassVar[dict[str, StateObject]] = {}
    _sf: _Machinery

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        objects: dict[str, StateObject] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, StateObject):
                    objects[name] = value
                elif name in objects:  # a subclass replaced the object with something else
                    del objects[name]
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

    def values(self) -> dict[str, Any]:
        """Every state object's current value, by name."""
        values = self.__dict__
        return {name: values[name] for name in type(self)._sf_objects}

    def refs(self) -> dict[str, Ref]:
        """A ref to every state object, by name."""
        return {name: Ref(self, name) for name in type(self)._sf_objects}

    def _display_name(self) -> str:
        return self.__dict__.get("name", "")


def _ref_property(name: str) -> property:
    def ref(self: Observable) -> Ref:
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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        category = cls.__dict__.get("category")
        if category is not None:
            if not isinstance(category, str) or not category.isidentifier():
                raise TypeError(f"{cls.__name__}.category must be an identifier, got {category!r}")
            CATEGORIES.add(category)
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _announcing(init)  # type: ignore[method-assign]

    def __init__(self, *, name: str | None = None) -> None:
        if "name" not in self.__dict__:
            _context.current()._add(self, name)

    # -- identity -------------------------------------------------------
    @property
    def state(self) -> State | None:
        """The State this feature is registered in (None once removed)."""
        return self._sf.state

    @property
    def path(self) -> str:
        """`"<category>.<name>"`, the prefix of every ref path of this feature."""
        return f"{self.category}.{self.__dict__.get('name', '?')}"

    def remove(self) -> None:
        """Remove this feature from its State, detaching every callback it owns."""
        state = self._sf.state
        if state is not None:
            state.remove(self)

    # -- serialization --------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The persisted state objects' values, by name."""
        values = self.__dict__
        return {n: values[n] for n, obj in type(self)._sf_objects.items() if obj.persist}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> None:
        """Restore values silently (no callback fires).

        Raises:
            StateDictError: when `strict` and keys are missing or unexpected.
        """
        missing, unexpected = self._mismatch(state_dict)
        if strict and (missing or unexpected):
            raise _state_dict_error(missing, unexpected)
        state = self._sf.state
        if state is None:
            self._load(state_dict)
        else:
            with state.silenced():
                self._load(state_dict)

    def _mismatch(self, state_dict: Any, prefix: str = "") -> tuple[list[str], list[str]]:
        """Paths missing from `state_dict` and paths it has that this feature does not."""
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"the state dict of {self.path} must be a dict, got {type(state_dict).__name__}"
            )
        expected = set(self.state_dict())
        given = set(state_dict)
        prefix = prefix or self.path
        return (
            [f"{prefix}.{k}" for k in sorted(expected - given, key=str)],
            [f"{prefix}.{k}" for k in sorted(given - expected, key=str)],
        )

    def _load(self, state_dict: dict[str, Any]) -> None:
        """Set the values of `state_dict` (called inside a silenced block)."""
        objects = type(self)._sf_objects
        for name, value in state_dict.items():
            obj = objects.get(name)
            if obj is not None and obj.persist:
                setattr(self, name, value)

    def __repr__(self) -> str:
        from ._render import summarize

        values = ", ".join(f"{n}={summarize(v)}" for n, v in self.values().items())
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
        machinery.init_depth += 1
        try:
            init(self, *args, **kwargs)
        except BaseException:
            machinery.init_depth -= 1
            if machinery.init_depth == 0 and machinery.state is not None:
                machinery.state.remove(self, announce=False)
            raise
        machinery.init_depth -= 1
        if machinery.init_depth == 0 and not machinery.announced:
            if "name" not in self.__dict__:  # the subclass never called Feature.__init__
                _context.current()._add(self, None)
            machinery.announced = True
            self._sf.state._announce(self)

    return __init__


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

    def __new__(cls, *, name: str | None = None, **values: Any) -> Any:
        if cls is Params:
            namespace = {key: Param(value) for key, value in values.items()}
            namespace["__module__"] = __name__
            namespace["__qualname__"] = "Params"
            cls = type("Params", (Params,), namespace)
        return super().__new__(cls)

    def __init__(self, *, name: str | None = None, **values: Any) -> None:
        super().__init__(name=name or "hparams")


def _state_dict_error(missing: list[str], unexpected: list[str]) -> StateDictError:
    parts = []
    if missing:
        parts.append("missing keys: " + ", ".join(missing))
    if unexpected:
        parts.append("unexpected keys: " + ", ".join(unexpected))
    return StateDictError(
        "state dict does not match the state; "
        + "; ".join(parts)
        + " (load with strict=False to restore only the matching part)",
        missing,
        unexpected,
    )
