"""Callback dispatch: filters, handles and the per-object dispatcher.

How a set flows:

1. `feature.x = value` calls the state object's `__set__` (`frame/objects.py`):
   it stores the value in the instance dict and, only if some instance of
   the class is observed, looks up the owner's active fire callable for `x`
   (`feature._sf[x]`; there is one only while callbacks are attached, or a
   hold, a silence or an observer is active).
2. That callable is the dispatcher's `fire`, compiled for the handles it
   has (`_Dispatcher._compile`): the one callback behind its filter, or the
   tightest loop over prepared callables. A State in a mode replaces it
   (`State._active_fire`): a hold stores the value to fire later, an
   observer wraps it in a traced dispatch, a silence installs nothing.
3. Each callback runs behind its handle's filter (`FilterProgress`, whose
   counters a debugger shows as `handle.filter_progress`), in priority
   order; a callback that sets another object starts step 1 again, inside
   this set.
4. Each dispatch counts how deep its own object re-enters itself: at
   `MAX_DEPTH` that is a `CycleError`. An error raised inside nested sets
   (`CycleError`, or `DepthError` when Python's recursion limit is reached)
   collects the path of every dispatch it propagates through, so it names
   the whole chain without looking at stack frames.

Attaching or removing a callback recompiles the one dispatcher it concerns
and bumps `wiring.version`, which hot loops check to reload their callables.
"""

from __future__ import annotations

import bisect
import inspect
import operator
import types
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import CallbackSignatureError, CycleError, DepthError, _ChainError, add_note

if TYPE_CHECKING:
    from .refs import Ref

__all__ = ["Handle", "Filter", "FilterProgress", "wiring", "MAX_DEPTH"]

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

    Example:
        >>> from statefire.frame import Filter
        >>> Filter(every=2)
        every=2
    """

    __slots__ = ("every", "once", "when")

    def __init__(
        self,
        every: int | None = None,
        once: int | Iterable[int] | None = None,
        when: Callable[[Any], object] | None = None,
    ) -> None:
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every <= 0):
            raise ValueError(f"every must be a positive int, got {every!r}")
        once_values: tuple[int, ...] | None = None
        if once is not None:
            if every is not None:
                raise ValueError(
                    f"give every or once, not both (got every={every!r}, once={once!r})"
                )
            once_values = _once_values(once)
        if when is not None and not callable(when):
            raise ValueError(f"when must be a callable taking the value, got {when!r}")
        self.every = every
        self.once = once_values
        self.when = when

    @property
    def empty(self) -> bool:
        return self.every is None and self.once is None and self.when is None

    def merged(self, other: Filter) -> Filter:
        """Both filters at once; two counting filters cannot be combined."""
        if (self.every or self.once) and (other.every or other.once):
            raise ValueError(
                f"a filtered ref ({self}) cannot take another every/once filter ({other}): "
                "a callback follows one count; give a single filter (e.g. every=6 for "
                "every 3rd of every 2nd), or add a condition with when=..."
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


class FilterProgress:
    """How far one handle's filter has counted: plain attributes a debugger shows.

    On a counter, `every=N` fires when the value leaves `[floor, ceiling)`
    upwards, and `once` remembers the thresholds already `done`; on any other
    object, `left` counts the sets until `every` fires and `count` the sets
    since attach. `passes(value)` advances the filter with a set and tells
    whether the callback fires.

    Example:
        >>> from statefire.frame import Filter, FilterProgress
        >>> progress = FilterProgress(Filter(every=1000), counter=True, value=1500)
        >>> progress.passes(1800), progress.passes(2000), progress
        (False, True, <FilterProgress every=1000: next at 3000>)
    """

    __slots__ = ("filter", "counter", "left", "count", "last", "done", "floor", "ceiling")

    def __init__(self, filter: Filter, counter: bool, value: Any) -> None:
        self.filter = filter
        self.counter = counter
        self.left = filter.every or 0  # plain object, `every`: sets until it fires
        self.count = 0  # plain object, `once`: sets since attach
        self.last = value  # counter, `once`: its value at the previous set
        self.done: set[int] = set()  # counter, `once`: thresholds already fired
        self.floor = self.ceiling = 0  # counter, `every`: fires when the value leaves [floor, ceiling) upwards
        self.start_at(value)

    def start_at(self, value: Any) -> None:
        """Follow on from `value` (at attach, and after a silent restore of a counter)."""
        self.last = value
        every = self.filter.every
        if every is not None and self.counter:
            self.floor = value - value % every
            self.ceiling = self.floor + every

    def passes(self, value: Any) -> bool:
        flt = self.filter
        every = flt.every
        if every is not None:
            if self.counter:
                if self.floor <= value < self.ceiling:
                    return False
                crossed = value >= self.ceiling
                self.start_at(value)
                if not crossed:
                    return False
            else:
                self.left -= 1
                if self.left:
                    return False
                self.left = every
        elif flt.once is not None:
            if self.counter:
                previous, self.last = self.last, value
                crossed = [t for t in flt.once if previous < t <= value and t not in self.done]
                if not crossed:
                    return False
                self.done.update(crossed)
            else:
                self.count += 1
                if self.count not in flt.once:
                    return False
        return flt.when is None or bool(flt.when(value))

    def guard(self, then: Callable[[Any], None]) -> Callable[[Any], None]:
        """`then` behind the filter, with the common non-firing `every` set inline (the hot path)."""
        flt = self.filter
        if flt.empty:
            return then
        progress = self
        passes = self.passes
        if flt.every is not None and self.counter:

            def call(value: Any) -> None:
                if not progress.floor <= value < progress.ceiling and passes(value):
                    then(value)

        elif flt.every is not None:

            def call(value: Any) -> None:
                if progress.left > 1:
                    progress.left -= 1
                elif passes(value):
                    then(value)

        else:

            def call(value: Any) -> None:
                if passes(value):
                    then(value)

        return call

    @property
    def next(self) -> str:
        """When the callback fires next, in words: `"next at 2000"`, `"next in 3 sets"`, `"done"`."""
        flt = self.filter
        if flt.every is not None:
            if self.counter:
                return f"next at {self.ceiling}"
            return f"next in {self.left} set{'s' * (self.left != 1)}"
        if flt.once is not None:
            if self.counter:
                left = [t for t in flt.once if t not in self.done and t > self.last]
                return f"next at {left[0]}" if left else "done"
            ahead = [t for t in flt.once if t > self.count]
            return f"next at set {ahead[0]}" if ahead else "done"
        return "every set"

    def __repr__(self) -> str:
        return f"<FilterProgress {self.filter}: {self.next}>"


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
    known = _takes_value_from_code(fn)
    if known is not None:
        return known
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


def _takes_value_from_code(fn: Callable[..., Any]) -> bool | None:
    """`_takes_value` of a plain function or bound method, read from its code object; None
    for anything else and for signatures it refuses (then `inspect.signature` decides).

    The same answer at a fraction of the cost: every feature attaches a few callbacks, and
    `inspect.signature` was a third of setting up an engine with its metrics.
    """
    bound = type(fn) is types.MethodType
    func = fn.__func__ if bound else fn  # type: ignore[attr-defined]
    if type(func) is not types.FunctionType or "__wrapped__" in func.__dict__ or "__signature__" in func.__dict__:
        return None
    code = func.__code__
    n_positional = code.co_argcount
    varargs = bool(code.co_flags & inspect.CO_VARARGS)
    keyword_only = code.co_varnames[n_positional : n_positional + code.co_kwonlyargcount]
    keyword_defaults = func.__kwdefaults__ or {}
    if any(name not in keyword_defaults for name in keyword_only):
        return None
    required = n_positional - len(func.__defaults__ or ())
    if bound:
        if n_positional == 0:
            return True if varargs else None  # `*args` takes the object and the value
        required = max(required - 1, 0)
    if required > 1:
        return None
    return required == 1 or varargs


def _callable_name(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        return repr(fn)
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        feature_name = getattr(owner, "name", None)
        if isinstance(feature_name, str):
            return f"{name}[{feature_name}]"
    return str(name)


class Handle:
    """One attached callback; `.remove()` detaches it, and so does leaving a `with`.

    A handle also calls its callback when called, so a function decorated
    with a bare `@ref.attach` still works as that function. `kind` is a tag
    tools read (an engine's `run_on` handle has `kind="run_on"`);
    `filter_progress` shows how far the filter has counted.

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
        "filter", "owner", "counter", "filter_progress", "passes", "start_at", "raw", "call",
        "entry", "kind", "__weakref__",
    )  # fmt: skip

    def __init__(
        self,
        dispatcher: _Dispatcher,
        fn: Callable[..., Any],
        filter: Filter,
        priority: int,
        seq: int,
        owner: Any,
        kind: str | None = None,
    ) -> None:
        self.dispatcher: _Dispatcher | None = dispatcher
        self.takes_value = _takes_value(fn)
        self.priority = priority
        self.seq = seq
        self.filter = filter
        self.kind = kind
        self.counter = dispatcher.counter
        initial = dispatcher.current_value() if dispatcher.counter else 0
        self.filter_progress = FilterProgress(filter, self.counter, initial)
        self.passes = self.filter_progress.passes
        self.start_at = self.filter_progress.start_at
        self.fn: Callable[..., Any] | None
        self.func: Callable[..., Any] | None
        self.obj_ref: Callable[[], Any] | None
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
        self.call = self.filter_progress.guard(self.raw)
        self.entry = _loop_entry(self)
        # The owning feature indexes the handles it owns, so removing it is
        # linear in what it owns rather than in every handle of its State.
        owned = _owned_index(owner)
        if owned is not None:
            owned.add(self)

    # -- public ---------------------------------------------------------
    @property
    def callback(self) -> Callable[..., Any] | None:
        """The attached callable (a fresh bound method for a weakly held one)."""
        if self.obj_ref is None:
            return self.fn
        obj = self.obj_ref()
        return None if obj is None or self.func is None else types.MethodType(self.func, obj)

    @property
    def __wrapped__(self) -> Callable[..., Any] | None:
        return self.callback

    # A bare `@ref.attach` binds the decorated name to its handle, which
    # stands in for the function: called, named and inspected like it.
    @property
    def __name__(self) -> str:
        return getattr(self.callback, "__name__", self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the callback itself (no filter, no dispatch): a decorated name stays usable."""
        callback = self.callback
        if callback is None:
            raise ReferenceError(f"the object of callback {self.name} no longer exists")
        return callback(*args, **kwargs)

    @property
    def ref(self) -> Ref[Any] | None:
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
        if self.obj_ref is not None and self.func is not None:
            obj = self.obj_ref()
            owner = getattr(obj, "name", type(obj).__name__)
            return f"{self.func.__qualname__}[{owner}]"
        return _callable_name(self.fn)

    @property
    def progress(self) -> str:
        """The filter's progress in words (`"next at 2000"`), or `""` without a filter."""
        return "" if self.filter.empty else self.filter_progress.next

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
        flt = ""
        if not self.filter.empty:
            flt = f" ({self.filter}" + (f", {self.progress}" if self.dispatcher is not None else "") + ")"
        kind = f" [{self.kind}]" if self.kind else ""
        return f"<Handle {self.name} on {where}{flt}{kind}>"

    # -- dispatch -------------------------------------------------------
    def _owner_died(self, _ref: weakref.ref[Any]) -> None:
        self.remove()


def _owned_index(owner: Any) -> weakref.WeakSet[Handle] | None:
    """The index of handles an observable owner keeps, or None for any other owner."""
    if owner is None:
        return None
    machinery = getattr(owner, "__dict__", {}).get("_sf")
    return getattr(machinery, "owned", None)


def _make_raw(handle: Handle) -> Callable[[Any], None]:
    """The callback itself as a one-argument callable: no filter, no bookkeeping."""
    fn, func, obj_ref = handle.fn, handle.func, handle.obj_ref
    if obj_ref is None:
        assert fn is not None
        if handle.takes_value:
            return fn
        plain = fn
        return lambda value: plain()
    assert func is not None
    method, takes_value = func, handle.takes_value

    def raw(value: Any) -> None:
        obj = obj_ref()
        if obj is None:
            handle.remove()
        elif takes_value:
            method(obj, value)
        else:
            method(obj)

    return raw


def _nothing(value: Any) -> None:
    pass


def _loop_entry(handle: Handle) -> tuple[Callable[..., Any], bool]:
    """A handle's entry in a dispatch loop: (callable, whether it takes the value)."""
    if handle.call is handle.raw and handle.obj_ref is None and not handle.takes_value:
        assert handle.fn is not None
        return handle.fn, False
    return handle.call, True


_ENTRY = operator.attrgetter("entry")
_FIRST = operator.itemgetter(0)
_SECOND = operator.itemgetter(1)


def _negative_priority(handle: Handle) -> int:
    return -handle.priority


def _passing(error: _ChainError, dispatcher: _Dispatcher) -> _ChainError | None:
    """Add `dispatcher` to the chain of an error propagating through it.

    A `DepthError` whose chain now repeats an object was a cycle all along:
    the `CycleError` to raise instead is returned.
    """
    path = dispatcher.path
    if type(error) is DepthError and path in error._inner_first:
        cycle = CycleError(f"found when the chain reached Python's recursion limit of {error.limit}")
        cycle._inner_first = [*error._inner_first, path]
        return cycle
    error.passed(path)
    return None


def _too_deep(dispatcher: _Dispatcher, cause: RecursionError) -> DepthError:
    error = DepthError()
    error.passed(dispatcher.path)
    return error


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
    An error raised inside nested sets passes each dispatch's `except`
    clause, which adds its path (free while nothing is raised).
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
                except _ChainError as error:
                    replaced = _passing(error, dispatcher)
                    if replaced is None:
                        raise
                    raise replaced from error.__cause__
                except RecursionError as error:
                    raise _too_deep(dispatcher, error) from error
                except AttributeError as error:
                    _hint_engine_parameter(error, dispatcher, value)
                    raise
                finally:
                    depth = entered

            return handles[0].filter_progress.guard(_solo)

        # Three loops, because this is where an engine spends its callback
        # time: one for callbacks that all take the value, one for callbacks
        # that all take nothing (called as they are, without a wrapper), and
        # a mix that branches per callback. Each counts its re-entries.
        entries = tuple(map(_ENTRY, handles))
        n_taking = sum(map(_SECOND, entries))
        if n_taking == len(entries):
            calls = tuple(map(_FIRST, entries))

            def run(value: Any) -> None:
                nonlocal depth
                entered = depth
                if entered >= MAX_DEPTH:
                    raise _cycle_error(dispatcher)
                depth = entered + 1
                try:
                    for call in calls:
                        call(value)
                except _ChainError as error:
                    replaced = _passing(error, dispatcher)
                    if replaced is None:
                        raise
                    raise replaced from error.__cause__
                except RecursionError as error:
                    raise _too_deep(dispatcher, error) from error
                except AttributeError as error:
                    _hint_engine_parameter(error, dispatcher, value)
                    raise
                finally:
                    depth = entered

            return run
        if n_taking == 0:
            bare = tuple(map(_FIRST, entries))

            def run_bare(value: Any) -> None:
                nonlocal depth
                entered = depth
                if entered >= MAX_DEPTH:
                    raise _cycle_error(dispatcher)
                depth = entered + 1
                try:
                    for call in bare:
                        call()
                except _ChainError as error:
                    replaced = _passing(error, dispatcher)
                    if replaced is None:
                        raise
                    raise replaced from error.__cause__
                except RecursionError as error:
                    raise _too_deep(dispatcher, error) from error
                except AttributeError as error:
                    _hint_engine_parameter(error, dispatcher, value)
                    raise
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
            except _ChainError as error:
                replaced = _passing(error, dispatcher)
                if replaced is None:
                    raise
                raise replaced from error.__cause__
            except RecursionError as error:
                raise _too_deep(dispatcher, error) from error
            except AttributeError as error:
                _hint_engine_parameter(error, dispatcher, value)
                raise
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
        except _ChainError as error:
            replaced = _passing(error, dispatcher)
            if replaced is None:
                raise
            raise replaced from error.__cause__
        except RecursionError as error:
            raise _too_deep(dispatcher, error) from error
        except AttributeError as error:
            _hint_engine_parameter(error, dispatcher, value)
            raise
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

    def add(self, fn: Callable[..., Any], filter: Filter, priority: int, owner: Any, kind: str | None = None) -> Handle:
        self._seq += 1
        handle = Handle(self, fn, filter, priority, self._seq, owner, kind)
        handles = self.handles
        # Call order is (-priority, attach order): the new handle goes after every
        # handle of its priority or higher, found by bisection (attach stays linear).
        at = bisect.bisect_right(handles, -priority, key=_negative_priority)
        self._set_handles((*handles[:at], handle, *handles[at:]))
        return handle

    def remove(self, handle: Handle) -> None:
        if handle.dispatcher is not self:
            return
        handle.dispatcher = None
        owned = _owned_index(handle.callback_owner)
        if owned is not None:
            owned.discard(handle)
        handles = self.handles
        at = handles.index(handle)
        self._set_handles(handles[:at] + handles[at + 1 :])

    def _set_handles(self, handles: tuple[Handle, ...]) -> None:
        self.handles = handles
        # Compiled at the first set, not here: attaching n callbacks one by one
        # then costs O(n) in all, not a compile of the whole list per attach.
        self.fire = self._compile(handles) if len(handles) < 2 else self._compile_and_fire
        self.owner._sf.rewire(self.name)

    def _compile_and_fire(self, value: Any) -> None:
        """The fire callable until the first set after a change of handles: compile, install, fire."""
        fire = self.fire
        if fire == self._compile_and_fire:
            fire = self.fire = self._compile(self.handles)
            self.owner._sf.rewire(self.name)  # install it (and let hot loops reload it)
        fire(value)

    def resync(self) -> None:
        """After a silent change, let value-following filters start from the current value."""
        if self.counter:
            value = self.current_value()
            for handle in self.handles:
                handle.start_at(value)


#: First parameter names of callbacks written ignite-style, `def f(engine): engine.state.epoch`.
_ENGINE_PARAMETERS = frozenset({"engine", "trainer", "evaluator"})


def _hint_engine_parameter(error: AttributeError, dispatcher: _Dispatcher, value: Any) -> None:
    """Note, on an error of a callback written for ignite (its parameter named `engine`), what it receives.

    Runs only on the exception path, so a set costs nothing more: an
    `except` clause is free in Python 3.11 until something raises.
    """
    if getattr(error, "obj", None) is not value or getattr(error, "_sf_hinted", False):
        return
    names = []
    for handle in dispatcher.handles:
        fn = handle.callback
        if fn is None or not handle.takes_value:
            continue
        try:
            parameters = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
        if parameters and parameters[0] in _ENGINE_PARAMETERS:
            names.append(f"{_callable_name(fn)}({parameters[0]})")
    if not names:
        return
    error._sf_hinted = True  # type: ignore[attr-defined]
    note = (
        f"{', '.join(names)} is attached to {dispatcher.path}, so it is called with that object's new value "
        f"({type(value).__name__} {value!r:.40}), not with the engine as in ignite; reach the engine by name "
        f"(state.<engine name>) or from the closure, or attach a callback taking no argument, "
        f"e.g. `def log(): print(trainer.n_epoch_completed)`"
    )
    add_note(error, note)


def _cycle_error(dispatcher: _Dispatcher) -> CycleError:
    """The error of an object re-entered `MAX_DEPTH` times; the dispatches above add the rest of the chain."""
    error = CycleError(f"{dispatcher.path} re-entered {MAX_DEPTH} times")
    error.passed(dispatcher.path)
    return error
