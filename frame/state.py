"""The State: the root container of every feature of an experiment."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import _context
from ._names import did_you_mean
from ._render import html_rows, render_tree
from .dispatch import Handle, _Dispatcher, wiring
from .errors import NameConflictError, StateDictError, UnknownNameError, add_note
from .feature import (
    STANDARD_CATEGORIES,
    Feature,
    Listing,
    Observable,
    _copy_error,
    _state_dict_error,
    check_feature_name,
    default_name,
)
from .objects import Param, StateObject
from .refs import Ref

__all__ = ["State", "Container", "state"]


class Container(Observable):
    """The features of one category (`state.metrics`): iterable, sized, observable.

    Its `added` and `removed` objects fire with a feature once it is fully
    constructed, or once it is removed, so plugins react to features created
    after them: `state.metrics.added_ref.attach(fn)`.

    Example:
        >>> from statefire.frame import State, Params
        >>> with State() as s:
        ...     seen = []
        ...     handle = s.params.added_ref.attach(lambda f: seen.append(f.name))
        ...     _ = Params(name="hp", lr=0.1)
        ...     print(seen, len(s.params), "hp" in s.params)
        ['hp'] 1 True
    """

    added: StateObject[Feature | None] = StateObject(
        persist=False, doc="fires with each feature once it is constructed"
    )
    removed: StateObject[Feature | None] = StateObject(persist=False, doc="fires with each feature removed")
    added_ref: Ref[Feature | None]
    removed_ref: Ref[Feature | None]

    def __init__(self, state: State, category: str) -> None:
        self.__dict__["category"] = category
        self._sf.state = state

    @property
    def path(self) -> str:
        category: str = self.__dict__["category"]
        return category

    def _members(self) -> list[Feature]:
        objects = type(self)._sf_objects
        return [v for k, v in self.__dict__.items() if isinstance(v, Feature) and k not in objects]

    def _fire(self, name: str, feature: Feature) -> None:
        # An event, not a value to keep: holding the feature would keep a removed one alive.
        try:
            setattr(self, name, feature)
        finally:
            self.__dict__[name] = None

    def __iter__(self) -> Iterator[Feature]:
        return iter(self._members())

    def __len__(self) -> int:
        return len(self._members())

    def __contains__(self, item: object) -> bool:
        if isinstance(item, str):
            return isinstance(self.__dict__.get(item), Feature)
        return any(item is f for f in self._members())

    def __getitem__(self, name: str) -> Feature:
        feature = self.__dict__.get(name)
        if not isinstance(feature, Feature):
            raise UnknownNameError(
                f"no feature {name!r} in {self.category}; "
                + did_you_mean(name, [f.name for f in self._members()])
            )
        return feature

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name.endswith("_ref"):
            raise UnknownNameError(
                f"container {self.category} has no state object {name[:-4]!r}; "
                + did_you_mean(name, [f"{n}_ref" for n in type(self)._sf_objects])
            )
        return self[name]

    def __repr__(self) -> str:
        return f"<Container {self.category}: {', '.join(f.name for f in self._members()) or 'empty'}>"


class _Core:
    """A State's bookkeeping, kept under one private attribute.

    `containers` holds the categories of this State: the standard ones once
    used, and those of the features added to it (categories belong to a
    State, not to the process).
    """

    __slots__ = ("features", "containers", "silence", "hold", "pending", "observers", "tokens")

    def __init__(self) -> None:
        self.features: dict[str, Feature] = {}
        self.containers: dict[str, Container] = {}
        self.silence = 0
        self.hold = 0
        self.pending: dict[tuple[Observable, str], Any] = {}
        self.observers: list[Any] = []
        self.tokens: list[Any] = []

    def __repr__(self) -> str:
        return f"<{len(self.features)} features>"


class State:
    """The root container: every feature of an experiment, grouped by category.

    `frame.state` is the global default; `with State() as s:` makes `s` the
    current state inside the block (tests, libraries, two experiments in one
    process). Categories (`state.engines`, `state.metrics`, ...) are created
    on first use; `state.<feature name>` is a shortcut to any feature.

    Example:
        >>> from statefire.frame import State, Params
        >>> with State() as s:
        ...     hp = Params(name="hp", lr=0.1)
        ...     print(len(s.params), s.hp.lr, s.hp.lr_ref.path)
        1 0.1 params.hp.lr
    """

    _frame: _Core

    def __init__(self) -> None:
        self.__dict__["_frame"] = _Core()

    # -- scoping ----------------------------------------------------------
    @staticmethod
    def current() -> State:
        """The active State: the innermost `with State()`, else `frame.state`."""
        return _context.current()

    def __enter__(self) -> State:
        self._frame.tokens.append(_context._current.set(self))
        return self

    def __exit__(self, *exc_info: object) -> None:
        tokens = self._frame.tokens
        _context._current.reset(tokens.pop())
        if not tokens:  # the outermost block of this State ends: its features release what they hold
            _close_all(list(self._frame.features.values()))

    # A State is live wiring (callbacks, handles, weak references, its
    # context token): a copy would alias or lose it, so copying is refused.
    def __reduce_ex__(self, protocol: Any) -> Any:
        raise _copy_error("a State")

    def __copy__(self) -> Any:
        raise _copy_error("a State")

    def __deepcopy__(self, memo: Any) -> Any:
        raise _copy_error("a State")

    # -- lookup -------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        core = self._frame
        feature = core.features.get(name)
        if feature is not None:
            return feature
        container = core.containers.get(name)
        if container is not None:
            return container
        if name in STANDARD_CATEGORIES:
            return self._container(name)
        raise UnknownNameError(
            f"state has no feature or category {name!r}; "
            + did_you_mean(name, [*core.features, *core.containers, *STANDARD_CATEGORIES])
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"cannot set state.{name}: a State holds features, which register themselves "
            f"when created (for a value, use Params(name=..., {name}=...))"
        )

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._frame.features, *self._frame.containers})

    def container(self, category: str) -> Container:
        """The container of `category`, made empty if this State has none yet.

        `state.<name>` finds a feature first, then a category of this State;
        the standard categories (`engines`, `metrics`, ...) exist in every
        State and no feature may take their names. A category of your own
        becomes a State's when its first feature is added; to react to that
        first feature, ask for the container beforehand:
        `state.container("sensors").added_ref.attach(fn)`.
        """
        if not isinstance(category, str) or not category.isidentifier() or category.startswith("_"):
            raise NameConflictError(f"a category must be an identifier not starting with '_', got {category!r}")
        return self._container(category)

    def _container(self, category: str) -> Container:
        container = self._frame.containers.get(category)
        if container is None:
            container = Container(self, category)
            self._frame.containers[category] = container
            if category in STANDARD_CATEGORIES:  # reserved names: a plain attribute read
                self.__dict__[category] = container
            core = self._frame
            if core.silence or core.hold or core.observers:  # a trace must see its `added` too
                container._sf.rewire_all()
        return container

    # The collections a State is made of are read-only properties returning
    # fresh lists (a feature's are dicts by name): `state.features`,
    # `state.containers`, `state.refs`, `state.handles`, `feature.refs`.
    # Calling one (the older spelling `state.refs()`) still works, with a
    # DeprecationWarning. `values()` and `state_dict()` stay methods: they
    # read values now, and a feature may override them.
    @property
    def containers(self) -> Listing[Container]:
        """The containers created so far."""
        return Listing(self._frame.containers.values())

    @property
    def features(self) -> Listing[Feature]:
        """Every feature, in creation order."""
        return Listing(self._frame.features.values())

    @property
    def refs(self) -> Listing[Ref[Any]]:
        """A ref to every state object of every feature, in creation order."""
        return Listing(ref for f in self._frame.features.values() for ref in f.refs.values())

    def free_name(self, name: str) -> str:
        """`name`, or `name_2`, `name_3`, ... if a feature has it: for features made in numbers.

        Example:
            >>> from statefire.frame import Params, State
            >>> with State() as s:
            ...     _ = Params(name="knob", level=1)
            ...     print(s.free_name("knob"), s.free_name("dial"))
            knob_2 dial
        """
        taken = self._frame.features
        candidate, n = name, 1
        reserved = _reserved_names()
        while candidate in taken or candidate in reserved:
            n += 1
            candidate = f"{name}_{n}"
        return candidate

    # -- registration -------------------------------------------------------
    def _add(self, feature: Feature, name: str | None) -> None:
        cls = type(feature)
        name = default_name(cls) if name is None else check_feature_name(name, cls)
        core = self._frame
        existing = core.features.get(name)
        if existing is not None:
            raise NameConflictError(
                f"a feature named {name!r} already exists at {existing.path} "
                f"({type(existing).__name__}); give the new {cls.__name__} another name=..., "
                f"or, re-running a notebook cell, start over: state.remove({name!r}) drops the old one, "
                "state.clear() drops every feature, and building inside `with State():` gives each run "
                "a fresh state"
            )
        if name in _reserved_names():
            raise NameConflictError(
                f"name {name!r} of a {cls.__name__} would shadow state.{name} "
                f"(an attribute or category of State); choose another name=..."
            )
        feature.__dict__["name"] = name
        core.features[name] = feature
        self._container(cls.category).__dict__[name] = feature
        feature._sf.state = self

    def _announce(self, feature: Feature) -> None:
        if self._frame.silence or self._frame.hold or self._frame.observers:
            feature._sf.rewire_all()
        self._container(feature.category)._fire("added", feature)

    def remove(self, feature: Feature | str, *, announce: bool = True) -> None:
        """Remove a feature (or the feature of that name) and every callback it owns, then `close()` it."""
        if isinstance(feature, str):
            feature = self._feature(feature)
        core = self._frame
        if core.features.get(feature.__dict__.get("name")) is not feature:  # type: ignore[arg-type]
            where = "was removed" if feature._sf.state is None else "belongs to another State"
            raise UnknownNameError(f"{feature.path} is not in this state: it {where}")
        # Its own callbacks elsewhere (indexed by owner), then every callback on its objects.
        for handle in list(feature._sf.owned):
            handle.remove()
        for handle in [h for d in feature._sf.dispatchers.values() for h in d.handles]:
            handle.remove()
        del core.features[feature.name]
        container = core.containers[feature.category]
        del container.__dict__[feature.name]
        feature._sf.state = None
        feature._sf.drop_all()
        wiring.bump()
        if not announce:  # a feature whose __init__ failed: release what it got, keep the init's error
            with contextlib.suppress(Exception):
                feature.close()
            return
        try:
            container._fire("removed", feature)
        finally:
            feature.close()

    def clear(self) -> None:
        """Remove every feature and container, silently, then `close()` each feature."""
        core = self._frame
        for dispatcher in list(self._dispatchers()):
            for handle in dispatcher.handles:
                handle.remove()
        features = list(core.features.values())
        for feature in features:
            feature._sf.state = None
            feature._sf.drop_all()
        for category in core.containers:
            self.__dict__.pop(category, None)
        core.features.clear()
        core.containers.clear()
        core.pending.clear()
        wiring.bump()
        _close_all(features)

    def _feature(self, name: str) -> Feature:
        try:
            return self._frame.features[name]
        except KeyError:
            raise UnknownNameError(
                f"state has no feature {name!r}; " + did_you_mean(name, self._frame.features)
            ) from None

    def _observables(self) -> Iterator[Observable]:
        yield from self._frame.containers.values()
        yield from self._frame.features.values()

    def _dispatchers(self) -> Iterator[_Dispatcher]:
        for observable in self._observables():
            yield from observable._sf.dispatchers.values()

    @property
    def handles(self) -> Listing[Handle]:
        """Every attached callback in this state."""
        return Listing(h for d in self._dispatchers() for h in d.handles)

    # -- modes: hold, silence, observers --------------------------------------
    def _active_fire(
        self, owner: Observable, name: str, dispatcher: _Dispatcher | None
    ) -> Callable[[Any], None] | None:
        core = self._frame
        if core.silence:
            return None
        fire = None if dispatcher is None else dispatcher.fire
        if core.observers:
            fire = _observed(Ref(owner, name), dispatcher, _Observers(core.observers))
        if core.hold and fire is not None:
            pending = core.pending
            key = (owner, name)

            def fire(value: Any) -> None:
                pending[key] = value

        return fire


    def _rewire_all(self) -> None:
        for observable in self._observables():
            observable._sf.rewire_all()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Defer events; at the outermost exit fire each object once, with its last value.

        Objects fire in the order they were first set. If the block raises,
        the deferred events are dropped (the values stay set). If a callback
        raises while they fire, the remaining ones still fire; the first
        error is then raised, with a note naming the events whose callbacks
        failed.
        """
        core = self._frame
        core.hold += 1
        if core.hold == 1:
            self._rewire_all()
        ok = False
        try:
            yield
            ok = True
        finally:
            core.hold -= 1
            if core.hold == 0:
                pending = dict(core.pending)
                core.pending.clear()
                self._rewire_all()
                if ok:
                    _flush(pending)

    @contextlib.contextmanager
    def silenced(self) -> Iterator[None]:
        """Fire nothing inside the block (used to restore a state dict)."""
        core = self._frame
        core.silence += 1
        if core.silence == 1:
            self._rewire_all()
        try:
            yield
        finally:
            core.silence -= 1
            if core.silence == 0:
                self._rewire_all()
                for dispatcher in self._dispatchers():
                    dispatcher.resync()

    def observe(self, observer: Any) -> _ObserverHandle:
        """Tell `observer` about every set of every object (for tracing tools).

        The observer has `enter_event(ref, value) -> token`, `exit_event(token)`,
        `enter_callback(handle) -> token` and `exit_callback(token)`. Costs
        nothing once removed: dispatchers are swapped back.
        """
        self._frame.observers.append(observer)
        self._rewire_all()
        return _ObserverHandle(self, observer)

    # -- serialization -------------------------------------------------------
    def state_dict(self) -> dict[str, dict[str, Any]]:
        """`{category: {feature: feature.state_dict()}}` as plain nested dicts."""
        result: dict[str, dict[str, Any]] = {}
        for container in self._frame.containers.values():
            members = {f.name: f.state_dict() for f in container}
            if members:
                result[container.category] = members
        return result

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Restore every feature silently, through each feature's `load_state_dict` (its restore hook).

        Every feature's part is checked before any is restored: its keys, and
        its values where the feature defines `check_state_dict(part) -> list[str]`
        (the problems found, each naming its path; models check tensor shapes).

        Raises:
            StateDictError: when `strict` and any key is missing or
                unexpected, or a feature saves a key that nothing restores,
                or (strict or not) a value does not fit; one error lists them
                all by path, and nothing is restored.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        missing: list[str] = []
        unexpected: list[str] = []
        unrestored: list[str] = []
        matched: list[tuple[Feature, Mapping[str, Any]]] = []
        for feature in self._frame.features.values():
            section = state_dict.get(feature.category)
            given = section.get(feature.name) if isinstance(section, Mapping) else None
            if given is None:
                missing.extend(f"{feature.path}.{k}" for k in feature.state_dict())
                continue
            m, u, r = feature._check(given)
            missing.extend(m)
            unexpected.extend(u)
            unrestored.extend(r)
            matched.append((feature, given))
        for category, section in state_dict.items():
            if not isinstance(section, Mapping):
                unexpected.append(str(category))
                continue
            for name, saved in section.items():
                owner = self._frame.features.get(name)
                if (owner is None or owner.category != category) and saved != {}:
                    # a feature that saved nothing (a Run, a chart plugin) may be absent here: nothing is lost
                    unexpected.append(f"{category}.{name}")
        if strict and (missing or unexpected or unrestored):
            raise _state_dict_error(missing, unexpected, unrestored)
        # Values too, before anything is applied: a feature may say what in its part does
        # not fit (a tensor of another shape, a negative counter) with `check_state_dict`.
        problems: list[str] = []
        for feature, given in matched:
            check = getattr(type(feature), "check_state_dict", None)
            if check is not None:
                problems.extend(check(feature, given))
        if problems:
            shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
            raise StateDictError(f"the state dict does not fit this State, nothing was restored: {shown}", [], [])
        with self.silenced():
            for feature, given in matched:
                feature.load_state_dict(given, strict=strict)

    def config(self) -> dict[str, Any]:
        """Every `Param` of every feature, by path: the experiment's configuration."""
        config = {}
        for feature in self._frame.features.values():
            for name, obj in type(feature)._sf_objects.items():
                if isinstance(obj, Param):
                    config[f"{feature.path}.{name}"] = getattr(feature, name)  # live for attribute-backed objects
        return config

    # -- inspection ---------------------------------------------------------
    def tree(self, width: int = 100) -> str:
        """The whole state as a readable tree with current values."""
        return render_tree(self, width)

    def __repr__(self) -> str:
        return self.tree()

    def _repr_html_(self) -> str:
        rows = [html_rows(feature) for container in self._frame.containers.values() for feature in container]
        return "<table>" + "".join(rows) + "</table>"


class _Observers:
    """Several observers seen as one."""

    __slots__ = ("observers",)

    def __init__(self, observers: list[Any]) -> None:
        self.observers = tuple(observers)

    def enter_event(self, ref: Ref[Any], value: Any) -> list[Any]:
        return [o.enter_event(ref, value) for o in self.observers]

    def exit_event(self, tokens: list[Any]) -> None:
        for observer, token in zip(self.observers, tokens, strict=False):
            observer.exit_event(token)

    def enter_callback(self, handle: Handle) -> list[Any]:
        return [o.enter_callback(handle) for o in self.observers]

    def exit_callback(self, tokens: list[Any]) -> None:
        for observer, token in zip(self.observers, tokens, strict=False):
            observer.exit_callback(token)


def _observed(ref: Ref[Any], dispatcher: _Dispatcher | None, observers: _Observers) -> Callable[[Any], None]:
    def fire(value: Any) -> None:
        token = observers.enter_event(ref, value)
        try:
            if dispatcher is not None:
                dispatcher.fire_observed(value, observers)
        finally:
            observers.exit_event(token)

    return fire


class _ObserverHandle:
    def __init__(self, state: State, observer: Any) -> None:
        self.state = state
        self.observer = observer

    def remove(self) -> None:
        observers = self.state._frame.observers
        if self.observer in observers:
            observers.remove(self.observer)
            self.state._rewire_all()

    def __enter__(self) -> _ObserverHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


@functools.cache
def _reserved_names() -> frozenset[str]:
    """Names no feature may take: State and Container attributes, the standard categories, `state`."""
    names = {n for n in dir(State) if not n.startswith("_")}
    names.update(n for n in dir(Container) if not n.startswith("_"))
    names.update(STANDARD_CATEGORIES)
    names.add("state")
    return frozenset(names)


def _flush(pending: dict[tuple[Observable, str], Any]) -> None:
    """Fire each deferred event; one failing does not drop the rest, and the error names the failures."""
    first: BaseException | None = None
    failed: list[str] = []
    for (owner, name), value in pending.items():
        fire = owner._sf.get(name)
        if fire is None:
            continue
        try:
            fire(value)
        except Exception as error:  # the other deferred events still fire; a KeyboardInterrupt stops them
            failed.append(f"{owner.path}.{name}")
            if first is None:
                first = error
    if first is not None:
        note = (
            f"raised while state.hold() fired its deferred events; callbacks failed on: {', '.join(failed)} "
            f"(every other deferred event of the {len(pending)} fired)"
        )
        add_note(first, note)
        raise first


def _close_all(features: list[Feature]) -> None:
    """`close()` every feature; the first error is raised once all have been closed."""
    errors: list[BaseException] = []
    for feature in features:
        try:
            feature.close()
        except Exception as error:  # one failing release must not keep the others open
            errors.append(error)
    if errors:
        raise errors[0]


#: The global default State that scripts use (`from statefire.frame import state`);
#: `with State():` makes another one current inside a block.
state = State()
_context._default.append(state)
