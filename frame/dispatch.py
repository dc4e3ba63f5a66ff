"""Callback dispatch: filters, handles and the per-object dispatcher.

A dispatcher exists for a state object only while callbacks are attached to
it. Its `fire(value)` is compiled for the handles it has: one callback
behind its filter, or a loop over prepared callables; a plain one-argument
callback is called directly, anything else (no argument, a filter, a
weakly held method) through its handle. The counters a set touches (a
filter's progress, the re-entry depth) live in closure cells, because a set
with one callback, filtered or not, is the hottest path of the library.
"""

from __future__ import annotations

import inspect
import sys
import types
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import CallbackSignatureError, CycleError

if TYPE_CHECKING:
    from .refs import Ref

__all__ = ["Handle", "Filter", "wiring", "MAX_DEPTH"]

#: How deep one object may re-enter its own dispatch before it is a cycle.
MAX_DEPTH = 32


class _Wiring:
    """A version that changes whenever any dispatch wiring changes.

    Hot loops read the fire callables of their objects once, keep them in
    locals, and reload them only when `wiring.version` has moved.
    """

    __slots__ = ("version",)

    def __init__(self) -> None:
        self.version = 0

    def bump(self) -> None:
        self.version += 1


#: The wiring version hot loops watch: it changes on every attach, detach, hold, silence or trace swap.
wiring = _Wiring()


class Filter:
    """When a callback fires: `every`, `once`, `when`, validated up front.

    On a `Counter` the filters follow its value (they fire when the value
    crosses a multiple of `every`, or reaches a value in `once`); on any other
    state object they count the sets since attach.
    """

    __slots__ = ("every", "once", "when")

    def __init__(
        self,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[Any], bool] | None = None,
    ) -> None:
        if every is not None:
            if isinstance(every, bool) or not isinstance(every, int) or every <= 0:
                raise ValueError(f"every must be a positive int, got {every!r}")
        if once is not None:
            if every is not None:
                raise ValueError(
                    f"give every or once, not both (got every={every!r}, once={once!r})"
                )
            once = _once_values(once)
        if when is not None and not callable(when):
            raise ValueError(f"when must be a callable taking the value, got {when!r}")
        self.every = every
        self.once = once
        self.when = when

    @property
    def empty(self) -> bool:
        return self.every is None and self.once is None and self.when is None

    def merged(self, other: Filter) -> Filter:
        """Both filters at once; two counting filters cannot be combined."""
        if (self.every or self.once) and (other.every or other.once):
            raise ValueError(
                f"a filtered ref ({self}) cannot take another every/once filter ({other})"
            )
        whens = [w for w in (self.when, other.when) if w is not None]
        when = whens[0] if len(whens) == 1 else None
        if len(whens) == 2:
            first, second = whens
            when = lambda value: first(value) and second(value)  # noqa: E731
        merged = Filter(when=when)
        merged.every = self.every or other.every
        merged.once = self.once or other.once
        return merged

    def __repr__(self) -> str:
        parts = []
        if self.every is not None:
            parts.append(f"every={self.every}")
        if self.once is not None:
            once = self.once
            parts.append(f"once={once[0] if len(once) == 1 else list(once)}")
        if self.when is not None:
            parts.append(f"when={_callable_name(self.when)}")
        return ", ".join(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Filter):
            return NotImplemented
        return (self.every, self.once, self.when) == (other.every, other.once, other.when)

    def __hash__(self) -> int:
        return hash((self.every, self.once, self.when))


def _once_values(once: Any) -> tuple[int, ...]:
    values = [once] if isinstance(once, int) else once
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"once must be a positive int or a list of them, got {once!r}") from None
    if not values or any(
        isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values
    ):
        raise ValueError(f"once must be a positive int or a list of them, got {once!r}")
    return tuple(sorted(set(values)))


def _weak_or_strong(obj: Any) -> Callable[[], Any]:
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: obj


def _takes_value(fn: Callable[..., Any]) -> bool:
    """True if `fn` is called with the value, False if with nothing.

    A callback with one required positional parameter gets the value; one
    with none gets nothing. Callables without a readable signature (many
    builtins) get the value.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    required = [
        p
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    positional = [p for p in required if p.kind is not p.KEYWORD_ONLY]
    if len(required) > len(positional) or len(positional) > 1:
        raise CallbackSignatureError(
            f"callback {_callable_name(fn)}{signature} must take one required argument "
            "(the new value) or none; give the others defaults or wrap it in a lambda"
        )
    if positional:
        return True
    # `*args` accepts the value: builtins such as print expose `(*args, ...)`.
    return any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())


def _callable_name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        return repr(fn)
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        feature_name = getattr(owner, "name", None)
        if isinstance(feature_name, str):
            return f"{name}[{feature_name}]"
    return name


class Handle:
    """One attached callback; `.remove()` detaches it, and so does leaving a `with`.

    Example:
        >>> from statefire.frame import Feature, StateObject, State
        >>> class Box(Feature):
        ...     category = "boxes"
        ...     content = StateObject()
        >>> with State():
        ...     box = Box()
        ...     with box.content_ref.attach(print):
        ...         box.content = "inside"
        ...     box.content = "outside"
        inside
    """

    __slots__ = (
        "dispatcher", "fn", "func", "obj_ref", "takes_value", "priority", "seq",
        "filter", "owner", "counter", "passes", "start_at", "guard", "raw", "call",
        "__weakref__",
    )  # fmt: skip

    def __init__(
        self,
        dispatcher: _Dispatcher,
        fn: Callable[..., Any],
        filter: Filter,
        priority: int,
        seq: int,
        owner: Any,
    ) -> None:
        self.dispatcher: _Dispatcher | None = dispatcher
        self.takes_value = _takes_value(fn)
        self.priority = priority
        self.seq = seq
        self.filter = filter
        self.counter = dispatcher.counter
        initial = dispatcher.current_value() if dispatcher.counter else 0
        self.passes, self.start_at, self.guard = _filter_state(filter, self.counter, initial)
        if isinstance(fn, types.MethodType):
            # Bound methods are held weakly: a callback must not keep its object alive.
            self.fn = None
            self.func = fn.__func__
            try:
                self.obj_ref = weakref.ref(fn.__self__, self._owner_died)
            except TypeError:  # no weak references to it (__slots__): hold it strongly
                self.obj_ref = lambda obj=fn.__self__: obj
            if owner is None:
                # A ref's method (`b.y_ref.set`) belongs to the ref's feature.
                owner = getattr(fn.__self__, "callback_owner", fn.__self__)
        else:
            self.fn = fn
            self.func = None
            self.obj_ref = None
        self.owner = None if owner is None else _weak_or_strong(owner)
        self.raw = _make_raw(self)
        self.call = self.guard(self.raw)

    # -- public ---------------------------------------------------------
    @property
    def callback(self) -> Callable[..., Any] | None:
        """The attached callable (a fresh bound method for a weakly held one)."""
        if self.obj_ref is None:
            return self.fn
        obj = self.obj_ref()
        return None if obj is None else types.MethodType(self.func, obj)

    @property
    def ref(self) -> Ref | None:
        """The ref this callback is attached to, or None once removed."""
        from .refs import Ref

        d = self.dispatcher
        return None if d is None else Ref(d.owner, d.name)

    @property
    def callback_owner(self) -> Any:
        """The object the callback belongs to (a bound method's self, or `owner=`)."""
        return None if self.owner is None else self.owner()

    @property
    def name(self) -> str:
        """A readable name of the callback."""
        if self.obj_ref is not None:
            obj = self.obj_ref()
            owner = getattr(obj, "name", type(obj).__name__)
            return f"{self.func.__qualname__}[{owner}]"
        return _callable_name(self.fn)

    @property
    def active(self) -> bool:
        return self.dispatcher is not None

    def remove(self) -> None:
        """Detach the callback; removing twice is harmless."""
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher.remove(self)

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        where = "removed" if self.dispatcher is None else self.dispatcher.path
        flt = f" ({self.filter})" if not self.filter.empty else ""
        return f"<Handle {self.name} on {where}{flt}>"

    # -- dispatch -------------------------------------------------------
    def _owner_died(self, _ref: weakref.ref) -> None:
        self.remove()


def _make_raw(handle: Handle) -> Callable[[Any], None]:
    """The callback itself as a one-argument callable: no filter, no bookkeeping."""
    fn, func, obj_ref = handle.fn, handle.func, handle.obj_ref
    if obj_ref is None:
        if handle.takes_value:
            return fn
        return lambda value: fn()
    takes_value = handle.takes_value

    def raw(value: Any) -> None:
        obj = obj_ref()
        if obj is None:
            handle.remove()
        elif takes_value:
            func(obj, value)
        else:
            func(obj)

    return raw


def _filter_state(
    flt: Filter, counter: bool, value: Any
) -> tuple[Callable[[Any], bool], Callable[[Any], None], Callable[[Callable[[Any], None]], Callable[[Any], None]]]:
    """A handle's filter with its running state, in one closure scope.

    Returns `passes(value)`, which advances the filter with a set and tells
    whether the callback fires; `start_at(value)`, which lets a counter's
    filter follow on from `value` (at attach, after a silent restore); and
    `guard(then)`, which puts `then` behind the filter with the common
    non-firing `every` set inline. The state lives in cells, the cheapest
    variables a closure has: a filtered set that does not fire is a hot path.
    """
    every, once, when = flt.every, flt.once, flt.when
    left = every or 0  # plain object, `every`: sets until it fires
    count = 0  # plain object, `once`: sets since attach
    last = value  # counter, `once`: its value at the previous set
    done: set[int] = set()  # counter, `once`: thresholds already fired
    floor = ceiling = 0  # counter, `every`: fires when the value leaves [floor, ceiling) upwards

    def start_at(value: Any) -> None:
        nonlocal last, floor, ceiling
        last = value
        if every is not None and counter:
            floor = value - value % every
            ceiling = floor + every

    def passes(value: Any) -> bool:
        nonlocal left, count, last
        if every is not None:
            if counter:
                if floor <= value < ceiling:
                    return False
                crossed = value >= ceiling
                start_at(value)
                if not crossed:
                    return False
            else:
                left -= 1
                if left:
                    return False
                left = every
        elif once is not None:
            if counter:
                previous, last = last, value
                crossed = [t for t in once if previous < t <= value and t not in done]
                if not crossed:
                    return False
                done.update(crossed)
            else:
                count += 1
                if count not in once:
                    return False
        return when is None or bool(when(value))

    def guard(then: Callable[[Any], None]) -> Callable[[Any], None]:
        if flt.empty:
            return then
        if every is not None and counter:

            def call(value: Any) -> None:
                if not floor <= value < ceiling and passes(value):
                    then(value)

        elif every is not None:

            def call(value: Any) -> None:
                nonlocal left
                if left > 1:
                    left -= 1
                elif passes(value):
                    then(value)

        else:

            def call(value: Any) -> None:
                if passes(value):
                    then(value)

        return call

    start_at(value)
    return passes, start_at, guard


def _nothing(value: Any) -> None:
    pass


def _loop_entry(handle: Handle) -> tuple[Callable[..., Any], bool]:
    """A handle's entry in a dispatch loop: (callable, whether it takes the value)."""
    if handle.call is handle.raw and handle.obj_ref is None and not handle.takes_value:
        return handle.fn, False
    return handle.call, True


def _dispatch_scope(
    dispatcher: _Dispatcher,
) -> tuple[Callable[[tuple[Handle, ...]], Callable[[Any], None]], Callable[[Any, Any], None]]:
    """The fire callables of one dispatcher, sharing one count of its dispatches in progress.

    Returns `compile(handles)`, which gives what a set calls for those
    handles (the one callback behind its filter, or the tightest loop that
    fits), and `fire_observed(value, observer)`, the traced dispatch. The
    count lives in a closure cell rather than on the dispatcher: a set with
    one callback is the hot path, and a cell is the cheapest counter Python
    has. A set that re-enters the same object `MAX_DEPTH` deep is a cycle.
    """
    depth = 0

    def compile(handles: tuple[Handle, ...]) -> Callable[[Any], None]:
        if not handles:
            return _nothing
        if len(handles) == 1:
            # The filter runs first, so a filtered callback that does not fire
            # costs one call; re-entries are counted only when it runs.
            raw = handles[0].raw

            def _solo(value: Any) -> None:
                nonlocal depth
                entered = depth
                if entered >= MAX_DEPTH:
                    raise _cycle_error(dispatcher)
                depth = entered + 1
                try:
                    raw(value)
                finally:
                    depth = entered

            return handles[0].guard(_solo)

        # Three loops, because this is where an engine spends its callback
        # time: one for callbacks that all take the value, one for callbacks
        # that all take nothing (called as they are, without a wrapper), and
        # a mix that branches per callback. Each counts its re-entries.
        entries = tuple(_loop_entry(h) for h in handles)
        if all(takes_value for _, takes_value in entries):
            calls = tuple(call for call, _ in entries)

            def run(value: Any) -> None:
                nonlocal depth
                entered = depth
                if entered >= MAX_DEPTH:
                    raise _cycle_error(dispatcher)
                depth = entered + 1
                try:
                    for call in calls:
                        call(value)
                finally:
                    depth = entered

            return run
        if not any(takes_value for _, takes_value in entries):
            bare = tuple(call for call, _ in entries)

            def run_bare(value: Any) -> None:
                nonlocal depth
                entered = depth
                if entered >= MAX_DEPTH:
                    raise _cycle_error(dispatcher)
                depth = entered + 1
                try:
                    for call in bare:
                        call()
                finally:
                    depth = entered

            return run_bare

        def run_mixed(value: Any) -> None:
            nonlocal depth
            entered = depth
            if entered >= MAX_DEPTH:
                raise _cycle_error(dispatcher)
            depth = entered + 1
            try:
                for call, takes_value in entries:
                    if takes_value:
                        call(value)
                    else:
                        call()
            finally:
                depth = entered

        return run_mixed

    def fire_observed(value: Any, observer: Any) -> None:
        """Fire, telling `observer` about each callback that passes its filter."""
        nonlocal depth
        entered = depth
        if entered >= MAX_DEPTH:
            raise _cycle_error(dispatcher)
        depth = entered + 1
        try:
            for handle in dispatcher.handles:
                if handle.passes(value):
                    token = observer.enter_callback(handle)
                    try:
                        handle.raw(value)
                    finally:
                        observer.exit_callback(token)
        finally:
            depth = entered

    return compile, fire_observed


class _Dispatcher:
    """The callbacks of one state object of one owner, in call order."""

    __slots__ = ("owner", "name", "counter", "handles", "fire", "fire_observed", "_compile", "_seq")

    def __init__(self, owner: Any, name: str, counter: bool) -> None:
        self.owner = owner
        self.name = name
        self.counter = counter
        self.handles: tuple[Handle, ...] = ()
        self.fire: Callable[[Any], None] = _nothing
        self._compile, self.fire_observed = _dispatch_scope(self)
        self._seq = 0

    @property
    def path(self) -> str:
        return f"{self.owner.path}.{self.name}"

    def current_value(self) -> Any:
        return self.owner.__dict__.get(self.name)

    def add(self, fn: Callable[..., Any], filter: Filter, priority: int, owner: Any) -> Handle:
        self._seq += 1
        handle = Handle(self, fn, filter, priority, self._seq, owner)
        self._set_handles(self.handles + (handle,))
        return handle

    def remove(self, handle: Handle) -> None:
        if handle.dispatcher is not self:
            return
        handle.dispatcher = None
        self._set_handles(tuple(h for h in self.handles if h is not handle))

    def _set_handles(self, handles: tuple[Handle, ...]) -> None:
        self.handles = tuple(sorted(handles, key=lambda h: (-h.priority, h.seq)))
        self.fire = self._compile(self.handles)
        self.owner._sf.rewire(self.name)

    def resync(self) -> None:
        """After a silent change, let value-following filters start from the current value."""
        if self.counter:
            value = self.current_value()
            for handle in self.handles:
                handle.start_at(value)


_DISPATCH_FRAMES = {"_solo", "run", "run_bare", "run_mixed", "fire_observed"}


def _cycle_error(dispatcher: _Dispatcher) -> CycleError:
    """Name the cycle by walking the frames of the dispatches in progress."""
    chain: list[str] = []
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name in _DISPATCH_FRAMES and code.co_filename == __file__:
            running = frame.f_locals.get("dispatcher")
            if isinstance(running, _Dispatcher):
                chain.append(running.path)
        frame = frame.f_back
    chain.reverse()  # outermost first; the innermost is `dispatcher` itself
    cycle = _shortest_cycle(chain)
    return CycleError(
        f"callbacks set each other in a cycle: {' -> '.join(cycle)} "
        f"({dispatcher.path} re-entered {MAX_DEPTH} times); "
        "break the loop, or guard the set with a condition",
        cycle,
    )


def _shortest_cycle(chain: list[str]) -> list[str]:
    """The repeating tail of a dispatch chain, closed on its first element."""
    if not chain:
        return chain
    last = chain[-1]
    for i in range(len(chain) - 2, -1, -1):
        if chain[i] == last:
            return chain[i:]
    return chain
