"""Refs: identity, value access, attach/detach, handles, the callback convention, priority."""

from __future__ import annotations

import functools
import types

import pytest
from helpers import Listener

from statefire.frame import (
    CallbackSignatureError,
    Counter,
    Feature,
    FilteredRef,
    Handle,
    Ref,
    StateObject,
    as_ref,
)


class Trainer(Feature):
    category = "engines"
    n_samples = Counter()
    output = StateObject(persist=False)


def test_ref_fields(s):
    """A ref has owner, name, path, value, and `set` fires like an attribute set."""
    t = Trainer(name="trainer")
    ref = t.n_samples_ref
    assert isinstance(ref, Ref)
    assert ref.owner is t and ref.name == "n_samples"
    assert ref.path == "engines.trainer.n_samples"
    seen = []
    ref.attach(seen.append)
    ref.set(32)
    assert ref.value == 32 == t.n_samples
    assert seen == [32]
    assert s.trainer.n_samples_ref == ref


def test_refs_to_the_same_object_are_equal_and_hashable(s):
    """Refs to the same object of the same feature are equal and hash alike; others differ."""
    a, b = Trainer(name="a"), Trainer(name="b")
    assert a.n_samples_ref == a.n_samples_ref
    assert hash(a.n_samples_ref) == hash(a.n_samples_ref)
    assert a.n_samples_ref != b.n_samples_ref
    assert a.n_samples_ref != a.output_ref
    assert len({a.n_samples_ref, a.n_samples_ref, b.n_samples_ref}) == 2
    assert a.n_samples_ref != "engines.a.n_samples"


def test_ref_repr_shows_path_and_value(s):
    """`repr(ref)` shows its path and current value."""
    t = Trainer(name="trainer")
    t.n_samples = 64
    assert repr(t.n_samples_ref) == "<Ref engines.trainer.n_samples = 64>"
    t.output = "x" * 200
    assert len(repr(t.output_ref)) < 100


def test_attach_returns_a_handle_that_removes(s):
    """`attach` returns a Handle; `.remove()` detaches; removing twice is harmless."""
    t = Trainer()
    seen = []
    handle = t.output_ref.attach(seen.append)
    assert isinstance(handle, Handle) and handle.active
    assert handle.ref == t.output_ref
    t.output = 1
    handle.remove()
    handle.remove()
    t.output = 2
    assert seen == [1]
    assert not handle.active and handle.ref is None


def test_handle_is_a_context_manager(s):
    """Leaving `with ref.attach(fn):` detaches `fn`, also when the block raises."""
    t = Trainer()
    seen = []
    with t.output_ref.attach(seen.append):
        t.output = "in"
    t.output = "out"
    with pytest.raises(ZeroDivisionError), t.output_ref.attach(seen.append):
        1 / 0
    t.output = "after"
    assert seen == ["in"]
    assert t.output_ref.handles == ()


def test_attach_as_decorator(s):
    """`@ref.attach(...)` attaches the function, with filters, and returns it unchanged."""
    t = Trainer()
    seen = []

    @t.n_samples_ref.attach(every=2)
    def on_two():
        seen.append(t.n_samples)

    assert callable(on_two) and on_two.__name__ == "on_two"
    for _ in range(4):
        t.n_samples += 1
    assert seen == [2, 4]
    assert t.n_samples_ref.callbacks == [on_two]


def test_detach_removes_every_attachment_of_fn(s):
    """`ref.detach(fn)` removes every attachment of `fn` and leaves the others."""
    t = Trainer()
    seen = []

    def other(value):
        seen.append(("other", value))

    t.output_ref.attach(seen.append)
    t.output_ref.attach(seen.append, priority=5)
    t.output_ref.attach(other)
    t.output_ref.detach(seen.append)
    t.output = 1
    assert seen == [("other", 1)]
    assert t.output_ref.callbacks == [other]


def test_detach_of_unattached_callable_raises_naming_what_is_attached(s):
    """Detaching a callable that is not attached raises ValueError listing what is."""
    t = Trainer()

    def attached(value):
        pass

    with pytest.raises(ValueError, match=r"print is not attached to engines\.trainer\.output; attached: nothing"):
        t.output_ref.detach(print)
    t.output_ref.attach(attached)
    with pytest.raises(ValueError, match=r"attached: \[.*attached.*\]"):
        t.output_ref.detach(print)


def test_callbacks_lists_attached_callables_in_call_order(s):
    """`ref.callbacks` lists the callables in the order they are called."""
    t = Trainer()

    def low(v):
        pass

    def high(v):
        pass

    t.output_ref.attach(low)
    t.output_ref.attach(high, priority=1)
    assert t.output_ref.callbacks == [high, low]


def test_priority_higher_first_ties_in_attach_order(s):
    """Higher priority runs first; equal priorities run in attach order."""
    t = Trainer()
    order = []
    for tag, priority in [("a", 0), ("b", 10), ("c", 0), ("d", -5), ("e", 10)]:
        t.output_ref.attach(lambda tag=tag: order.append(tag), priority=priority)
    t.output = None
    assert order == ["b", "e", "a", "c", "d"]


def test_priority_must_be_an_int(s):
    """A non-int priority is a TypeError naming the argument."""
    t = Trainer()
    with pytest.raises(TypeError, match=r"priority must be an int, got '1'"):
        t.output_ref.attach(print, priority="1")
    with pytest.raises(TypeError, match=r"priority must be an int, got True"):
        t.output_ref.attach(print, priority=True)


def test_non_callable_is_rejected(s):
    """Attaching something that is not callable is a TypeError naming the ref."""
    t = Trainer()
    with pytest.raises(TypeError, match=r"callback for engines\.trainer\.output must be callable, got 3"):
        t.output_ref.attach(3)


# -- the 0-or-1-argument convention ------------------------------------------


def test_one_required_positional_gets_the_value(s):
    """A callback with one required positional parameter is called with the value."""
    t = Trainer()
    seen = []

    def fn(value):
        seen.append(value)

    t.output_ref.attach(fn)
    t.output = "v"
    assert seen == ["v"]


def test_no_parameter_gets_nothing(s):
    """A callback with no parameter is called with nothing."""
    t = Trainer()
    calls = []
    t.output_ref.attach(lambda: calls.append("called"))
    t.output = "v"
    assert calls == ["called"]


def test_parameter_with_default_counts_as_none(s):
    """A parameter with a default does not receive the value: the default stays."""
    t = Trainer()
    seen = []
    t.output_ref.attach(lambda tag="default": seen.append(tag))
    t.output = "v"
    assert seen == ["default"]


def test_extra_optional_parameters_are_allowed(s):
    """One required positional plus optional ones: called with the value only."""
    t = Trainer()
    seen = []
    t.output_ref.attach(lambda value, scale=2, *, flag=True: seen.append((value, scale, flag)))
    t.output = 3
    assert seen == [(3, 2, True)]


def test_builtin_list_append_gets_the_value(s):
    """Builtins like `list.append` get the value."""
    t = Trainer()
    seen = []
    t.output_ref.attach(seen.append)
    t.output = 5
    assert seen == [5]


def test_print_gets_the_value(s, capsys):
    """`ref.attach(print)` prints the value (print exposes only `*args`)."""
    t = Trainer()
    t.output_ref.attach(print)
    t.output = "hello"
    assert capsys.readouterr().out == "hello\n"


def test_var_positional_callback_gets_the_value(s):
    """A callback taking `*args` receives the value."""
    t = Trainer()
    seen = []
    t.output_ref.attach(lambda *args: seen.append(args))
    t.output = 1
    assert seen == [(1,)]


def test_callable_objects_and_partials_follow_the_convention(s):
    """Callable instances and `functools.partial` are inspected like functions."""
    t = Trainer()
    seen = []

    class Collector:
        def __call__(self, value):
            seen.append(("obj", value))

    t.output_ref.attach(Collector())
    t.output_ref.attach(functools.partial(lambda tag, value: seen.append((tag, value)), "partial"))
    t.output = 9
    assert seen == [("obj", 9), ("partial", 9)]


def test_bound_method_follows_the_convention(s):
    """Bound methods: `self` does not count; zero or one remaining argument."""
    t = Trainer()
    listener = Listener()
    t.output_ref.attach(listener.on)
    t.output_ref.attach(listener.on_without_value)
    t.output = 1
    assert listener.seen == [1, "no value"]


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: None,
        lambda a, *, key: None,
        lambda *, key: None,
    ],
    ids=["two-positional", "positional-and-keyword-only", "keyword-only"],
)
def test_other_signatures_are_a_clear_type_error_at_attach(s, fn):
    """More than one required argument is rejected at attach time, not at the first set."""
    t = Trainer()
    with pytest.raises(
        CallbackSignatureError,
        match=r"callback .*lambda.* must take one required argument \(the new value\) or none; "
        r"give the others defaults or wrap it in a lambda",
    ):
        t.output_ref.attach(fn)
    assert t.output_ref.handles == ()
    assert issubclass(CallbackSignatureError, TypeError)


def test_handle_name_and_repr(s):
    """A handle's repr names the callback, the ref, and its filter."""
    t = Trainer(name="trainer")

    def log_it():
        pass

    handle = t.n_samples_ref.attach(log_it, every=100)
    assert handle.name.endswith("log_it")
    assert repr(handle) == f"<Handle {handle.name} on engines.trainer.n_samples (every=100, next at 100)>"
    handle.remove()
    assert "removed" in repr(handle)


def test_handle_owner_is_bound_self_or_given_owner(s):
    """`handle.callback_owner` is a bound method's object, or `owner=`."""
    a, b = Trainer(name="a"), Trainer(name="b")

    class ListenerFeature(Feature):
        category = "handlers"

        def on(self):
            pass

    listener = ListenerFeature()
    assert a.output_ref.attach(listener.on).callback_owner is listener
    assert a.output_ref.attach(print, owner=b).callback_owner is b
    assert a.output_ref.attach(print).callback_owner is None
    assert {h.callback_owner for h in s.handles} == {listener, b, None}


def test_as_ref_accepts_refs_and_names_what_to_pass(s):
    """`as_ref` accepts refs and filtered refs; a feature gets a hint to pass one of its refs."""
    t = Trainer()
    assert as_ref(t.output_ref, "run_on") == t.output_ref
    filtered = t.n_samples_ref(every=2)
    assert isinstance(filtered, FilteredRef)
    assert as_ref(filtered, "run_on") is filtered
    with pytest.raises(TypeError, match=r"run_on must be a ref like .*got 3"):
        as_ref(3, "run_on")
    with pytest.raises(TypeError, match=r"a feature was given: pass one of its refs"):
        as_ref(t, "trigger")


def _forms_of_callbacks() -> list:
    """Plain functions and bound methods in every parameter layout, and what they wrap."""

    class Listener:
        def none(self): ...
        def one(self, value): ...
        def two(self, value, other): ...
        def defaulted(self, value=1): ...
        def star(self, *args): ...
        def keyword(self, *, key): ...
        def keyword_defaulted(self, value, *, key=1): ...

        @classmethod
        def klass(cls, value): ...

    def star_first(*args, value=1): ...
    def positional_only(value, /): ...
    def two_positional_only(value, other, /): ...

    @functools.wraps(positional_only)
    def wrapper(*args, **kwargs): ...

    listener = Listener()
    names = ("none", "one", "two", "defaulted", "star", "keyword", "keyword_defaulted")
    methods = [getattr(listener, name) for name in names]
    return [
        lambda: None, lambda v: None, lambda v, w: None, lambda v, w=1: None, lambda v=1: None, lambda **kw: None,
        lambda *a: None, lambda *a, **kw: None, lambda *, k: None, star_first, positional_only, two_positional_only,
        wrapper, *methods, Listener.klass, functools.partial(lambda a, b: None, 1), print,
        types.MethodType(lambda: None, listener), types.MethodType(lambda *a: None, listener),
    ]


def test_callback_convention_read_from_code_agrees_with_inspect(monkeypatch):
    """Plain functions and methods are read from their code object (inspect.signature is slow):
    for every layout the answer, or the refusal, is the one inspect.signature gives."""
    from statefire.frame import dispatch

    def convention(fn) -> object:
        try:
            return dispatch._takes_value(fn)
        except CallbackSignatureError:
            return "refused"

    forms = _forms_of_callbacks()
    from_code = [convention(fn) for fn in forms]
    monkeypatch.setattr(dispatch, "_takes_value_from_code", lambda fn: None)
    from_inspect = [convention(fn) for fn in forms]
    assert from_code == from_inspect
    assert from_code.count("refused") == 5 and True in from_code and False in from_code
