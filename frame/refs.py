"""References to state objects: `feature.<name>_ref`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Union

from .dispatch import Filter, Handle, _callable_name
from ._render import summarize

__all__ = ["Ref", "FilteredRef", "RefLike", "as_ref"]


class Ref:
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
    def value(self) -> Any:
        """The current value (read as an attribute, so a descriptor with a getter is honoured)."""
        return getattr(self.owner, self.name)

    def set(self, value: Any) -> None:
        """Set the value, firing the attached callbacks."""
        setattr(self.owner, self.name, value)

    @property
    def path(self) -> str:
        """Where the object lives: `"engines.trainer.n_samples"`."""
        return f"{self.owner.path}.{self.name}"

    @property
    def callback_owner(self) -> Any:
        """Whom a callback made of this ref's methods belongs to: the ref's owner."""
        return self.owner

    @property
    def descriptor(self) -> Any:
        """The `StateObject` declaring this object."""
        return type(self.owner)._sf_objects[self.name]

    @property
    def ref(self) -> Ref:
        """Itself (a filtered ref's `.ref` is the plain ref behind it)."""
        return self

    @property
    def filter(self) -> Filter | None:
        return None

    # -- callbacks ------------------------------------------------------
    def attach(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[Any], bool] | None = None,
        priority: int = 0,
        owner: Any = None,
    ) -> Any:
        """Call `fn` on every set of this object (or, with filters, on some).

        Args:
            fn: called with the new value if it has a required positional
                parameter, else with nothing. Without `fn`, `attach` is a
                decorator.
            every: fire every N-th time (on a counter: when the value crosses
                a multiple of N).
            once: fire once when the N-th set happens (on a counter: when the
                value first reaches or crosses N); an int or a list.
            when: also require `when(value)` to be true.
            priority: higher runs first; ties run in attach order.
            owner: the feature this callback belongs to, for inspection tools
                (a bound method's object is its owner by default).

        Returns:
            A `Handle`; `.remove()` it, or use it as a context manager.
        """
        return self._attach(fn, Filter(every, once, when), priority, owner)

    def _attach(self, fn: Any, filter: Filter, priority: int, owner: Any) -> Any:
        if fn is None:

            def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
                self._attach(func, filter, priority, owner)
                return func

            return decorator
        if not callable(fn):
            raise TypeError(f"callback for {self.path} must be callable, got {fn!r}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int, got {priority!r}")
        return self.owner._sf.dispatcher(self.name, create=True).add(fn, filter, priority, owner)

    def detach(self, fn: Callable[..., Any]) -> None:
        """Detach every attachment of `fn` to this object."""
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
        when: Callable[[Any], bool] | None = None,
    ) -> FilteredRef:
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


class FilteredRef:
    """A ref with filters: fires its followers only when the filter passes.

    `trainer.n_epoch_completed_ref(every=2)` is ignite's
    `Events.EPOCH_COMPLETED(every=2)`, for any state object.
    """

    __slots__ = ("ref", "filter")

    def __init__(self, ref: Ref, filter: Filter) -> None:
        self.ref = ref
        self.filter = filter

    @property
    def value(self) -> Any:
        return self.ref.value

    @property
    def path(self) -> str:
        return self.ref.path

    @property
    def owner(self) -> Any:
        return self.ref.owner

    @property
    def name(self) -> str:
        return self.ref.name

    def attach(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[Any], bool] | None = None,
        priority: int = 0,
        owner: Any = None,
    ) -> Any:
        """`Ref.attach` with this ref's filter combined with the given one."""
        combined = self.filter.merged(Filter(every, once, when))
        return self.ref._attach(fn, combined, priority, owner)

    def __eq__(self, other: object) -> bool:
        if type(other) is not FilteredRef:
            return NotImplemented
        return self.ref == other.ref and self.filter == other.filter

    def __hash__(self) -> int:
        return hash((self.ref, self.filter))

    def __repr__(self) -> str:
        return f"<FilteredRef {self.path} ({self.filter}) = {summarize(self.value)}>"


#: What a ref to follow may be (`run_on=`, `trigger=`): a `Ref` or a `FilteredRef`.
RefLike = Union[Ref, FilteredRef]


def as_ref(obj: Any, argument: str) -> RefLike:
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
