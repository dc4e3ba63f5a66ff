"""References to state objects: `feature.<name>_ref`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, overload

from ._render import summarize
from .dispatch import Filter, Handle, _callable_name
from .objects import StateObject

__all__ = ["Ref", "FilteredRef", "RefLike", "as_ref"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Ref(Generic[T]):
    """The reference to one state object of one feature.

    Refs are how peers wire to each other: an evaluator runs on a trainer's
    ref, a chart plots one ref against another. Refs to the same object are
    equal and hashable.

    Example:
        >>> from statefire.frame import Feature, Counter, State
        >>> class Clock(Feature):
        ...     category = "clocks"
        ...     ticks = Counter()
        >>> with State():
        ...     clock = Clock()
        ...     ref = clock.ticks_ref
        ...     handle = ref.attach(lambda: print("tick"), every=2)
        ...     for _ in range(4):
        ...         clock.ticks += 1
        ...     print(ref)
        tick
        tick
        <Ref clocks.clock.ticks = 4>
    """

    __slots__ = ("owner", "name")

    def __init__(self, owner: Any, name: str) -> None:
        self.owner = owner
        self.name = name

    # -- value ----------------------------------------------------------
    @property
    def value(self) -> T:
        """The current value (read as an attribute, so a descriptor with a getter is honoured)."""
        return getattr(self.owner, self.name)  # type: ignore[no-any-return]

    def set(self, value: T, *, fire: bool = True) -> None:
        """Set the value, firing the attached callbacks; with `fire=False`, silently.

        A silent set stores the (validated) value and fires nothing, as if
        made inside `state.silenced()`: a filter on a counter follows on from
        the new value. Use it for a value that mirrors another source (an
        optimizer's learning rate after a scheduler step) and must not look
        like an event.
        """
        if fire:
            setattr(self.owner, self.name, value)
            return
        descriptor: StateObject[T] = type(self.owner)._sf_objects[self.name]
        self.owner.__dict__[self.name] = descriptor.validate(value, f"{type(self.owner).__name__}.{self.name}")
        dispatcher = self.owner._sf.dispatcher(self.name)
        if dispatcher is not None:
            dispatcher.resync()

    @property
    def path(self) -> str:
        """Where the object lives: `"engines.trainer.n_samples"`."""
        return f"{self.owner.path}.{self.name}"

    @property
    def callback_owner(self) -> Any:
        """Whom a callback made of this ref's methods belongs to: the ref's owner."""
        return self.owner

    @property
    def descriptor(self) -> StateObject[T]:
        """The `StateObject` declaring this object."""
        return type(self.owner)._sf_objects[self.name]  # type: ignore[no-any-return]

    @property
    def ref(self) -> Ref[T]:
        """Itself (a filtered ref's `.ref` is the plain ref behind it)."""
        return self

    @property
    def filter(self) -> Filter | None:
        return None

    # -- callbacks ------------------------------------------------------
    @overload
    def attach(
        self,
        fn: None = None,
        *,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[T], object] | None = None,
        priority: int = 0,
        owner: Any = None,
        kind: str | None = None,
    ) -> Callable[[F], F]: ...

    @overload
    def attach(
        self,
        fn: Callable[..., Any],
        *,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[T], object] | None = None,
        priority: int = 0,
        owner: Any = None,
        kind: str | None = None,
    ) -> Handle: ...

    def attach(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[T], object] | None = None,
        priority: int = 0,
        owner: Any = None,
        kind: str | None = None,
    ) -> Handle | Callable[[F], F]:
        """Call `fn` on every set of this object (or, with filters, on some).

        Args:
            fn: called with the new value if it has a required positional
                parameter, else with nothing. Without `fn`, `attach` is a
                decorator that returns the function unchanged.
            every: fire every N-th time (on a counter: when the value crosses
                a multiple of N).
            once: fire once when the N-th set happens (on a counter: when the
                value first reaches or crosses N); an int or a list.
            when: also require `when(value)` to be true.
            priority: higher runs first; ties run in attach order.
            owner: the feature this callback belongs to, for inspection tools
                (a bound method's object is its owner by default).
            kind: a tag for tools reading the wiring (an engine's `run_on`
                handle has `kind="run_on"`); shown in the handle's repr.

        Returns:
            A `Handle`; `.remove()` it, or use it as a context manager. A
            handle calls its callback when called, so a bare `@ref.attach`
            leaves the decorated name usable as the function; the decorator
            `@ref.attach(...)` returns the function itself, and
            `ref.handle_of(fn)` finds its handle.
        """
        attached: Handle | Callable[[F], F] = self._attach(fn, Filter(every, once, when), priority, owner, kind)
        return attached

    def _attach(self, fn: Any, filter: Filter, priority: int, owner: Any, kind: str | None = None) -> Any:
        if fn is None:

            def decorator(func: F) -> F:
                self._attach(func, filter, priority, owner, kind)
                return func

            return decorator
        if isinstance(fn, Handle):  # stacked decorators: attach the function, not its handle
            fn = fn.callback
        if not callable(fn):
            raise TypeError(f"callback for {self.path} must be callable, got {fn!r}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int, got {priority!r}")
        if kind is not None and not isinstance(kind, str):
            raise TypeError(f"kind must be a str tag like 'run_on', got {kind!r}")
        dispatcher = self.owner._sf.dispatcher(self.name, create=True)
        handle: Handle = dispatcher.add(fn, filter, priority, owner, kind)
        return handle

    def handle_of(self, fn: Callable[..., Any]) -> Handle:
        """The handle of `fn` attached to this object (the first, if attached several times)."""
        if isinstance(fn, Handle):
            fn = fn.callback  # type: ignore[assignment]
        for handle in self.handles:
            if _same(handle, fn):
                return handle
        raise ValueError(
            f"{_callable_name(fn)} is not attached to {self.path}; "
            f"attached: {[h.name for h in self.handles] or 'nothing'}"
        )

    def detach(self, fn: Callable[..., Any]) -> None:
        """Detach every attachment of `fn` (a function, or the handle a bare `@ref.attach` gave) to this object."""
        if isinstance(fn, Handle):
            fn = fn.callback  # type: ignore[assignment]
        dispatcher = self.owner._sf.dispatcher(self.name)
        handles = [] if dispatcher is None else [h for h in dispatcher.handles if _same(h, fn)]
        if not handles:
            raise ValueError(
                f"{_callable_name(fn)} is not attached to {self.path}; "
                f"attached: {[h.name for h in self.handles] or 'nothing'}"
            )
        for handle in handles:
            handle.remove()

    @property
    def handles(self) -> tuple[Handle, ...]:
        """The handles of the attached callbacks, in call order."""
        dispatcher = self.owner._sf.dispatcher(self.name)
        return () if dispatcher is None else dispatcher.handles

    @property
    def callbacks(self) -> list[Callable[..., Any]]:
        """The attached callables, in call order."""
        return [cb for cb in (h.callback for h in self.handles) if cb is not None]

    def __call__(
        self,
        *,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[T], object] | None = None,
    ) -> FilteredRef[T]:
        """A filtered ref: `ref(every=2)`, to follow wherever a ref is expected."""
        return FilteredRef(self, Filter(every, once, when))

    # -- identity -------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if type(other) is not Ref:
            return NotImplemented
        return self.owner is other.owner and self.name == other.name

    def __hash__(self) -> int:
        return hash((id(self.owner), self.name))

    def __repr__(self) -> str:
        try:
            shown = summarize(self.value)
        except (KeyError, AttributeError):
            shown = "<unset>"
        return f"<Ref {self.path} = {shown}>"


class FilteredRef(Generic[T]):
    """A ref with filters: fires its followers only when the filter passes.

    `trainer.n_epoch_completed_ref(every=2)` is ignite's
    `Events.EPOCH_COMPLETED(every=2)`, for any state object. Calling it adds
    a `when` condition (`ref(every=2)(when=...)`); a second counting filter
    is refused.

    Example:
        >>> from statefire.frame import Feature, Counter, State
        >>> class Clock(Feature):
        ...     category = "clocks"
        ...     ticks = Counter()
        >>> with State():
        ...     even = Clock().ticks_ref(every=2)
        ...     print(even)
        <FilteredRef clocks.clock.ticks (every=2) = 0>
    """

    __slots__ = ("ref", "filter")

    def __init__(self, ref: Ref[T], filter: Filter) -> None:
        self.ref = ref
        self.filter = filter

    @property
    def value(self) -> T:
        return self.ref.value

    @property
    def path(self) -> str:
        return self.ref.path

    @property
    def callback_owner(self) -> Any:
        return self.ref.owner

    @property
    def owner(self) -> Any:
        return self.ref.owner

    @property
    def name(self) -> str:
        return self.ref.name

    @overload
    def attach(
        self,
        fn: None = None,
        *,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[T], object] | None = None,
        priority: int = 0,
        owner: Any = None,
        kind: str | None = None,
    ) -> Callable[[F], F]: ...

    @overload
    def attach(
        self,
        fn: Callable[..., Any],
        *,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[T], object] | None = None,
        priority: int = 0,
        owner: Any = None,
        kind: str | None = None,
    ) -> Handle: ...

    def attach(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[T], object] | None = None,
        priority: int = 0,
        owner: Any = None,
        kind: str | None = None,
    ) -> Handle | Callable[[F], F]:
        """`Ref.attach` with this ref's filter combined with the given one."""
        combined = self.filter.merged(Filter(every, once, when))
        attached: Handle | Callable[[F], F] = self.ref._attach(fn, combined, priority, owner, kind)
        return attached

    def __call__(
        self,
        *,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[T], object] | None = None,
    ) -> FilteredRef[T]:
        """This filtered ref with another condition (`when=`); two counting filters are refused."""
        return FilteredRef(self.ref, self.filter.merged(Filter(every, once, when)))

    def __eq__(self, other: object) -> bool:
        if type(other) is not FilteredRef:
            return NotImplemented
        return self.ref == other.ref and self.filter == other.filter

    def __hash__(self) -> int:
        return hash((self.ref, self.filter))

    def __repr__(self) -> str:
        return f"<FilteredRef {self.path} ({self.filter}) = {summarize(self.value)}>"


#: What a ref to follow may be (`run_on=`, `trigger=`): a `Ref` or a `FilteredRef`.
RefLike = Ref[T] | FilteredRef[T]


def as_ref(obj: Any, argument: str) -> RefLike[Any]:
    """Check that `obj` is a ref or a filtered ref; say what to pass otherwise."""
    if isinstance(obj, (Ref, FilteredRef)):
        return obj
    hint = ""
    if hasattr(obj, "_sf"):
        hint = " (a feature was given: pass one of its refs, e.g. feature.<name>_ref)"
    raise TypeError(f"{argument} must be a ref like state.trainer.n_epoch_completed_ref, got {obj!r}{hint}")


def _same(handle: Handle, fn: Any) -> bool:
    if handle.obj_ref is None:
        return handle.fn is fn or handle.fn == fn
    return getattr(fn, "__func__", None) is handle.func and getattr(fn, "__self__", None) is handle.obj_ref()
