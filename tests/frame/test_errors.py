"""Errors are for people: cycles, names, unknown attributes, and the FrameError hierarchy."""

from __future__ import annotations

import contextlib

import pytest

from statefire import frame
from statefire.frame import (
    MAX_DEPTH,
    CallbackSignatureError,
    CounterTypeError,
    CounterValueError,
    CycleError,
    Feature,
    FrameError,
    NameConflictError,
    Params,
    StateDictError,
    StateObject,
    UnknownNameError,
)


class Engine(Feature):
    category = "engines"
    x = StateObject(0)


class Metric(Feature):
    category = "metrics"
    value = StateObject(0)


@pytest.mark.parametrize(
    "error, builtin",
    [
        (CycleError, RuntimeError),
        (StateDictError, KeyError),
        (NameConflictError, ValueError),
        (UnknownNameError, AttributeError),
        (CallbackSignatureError, TypeError),
        (CounterTypeError, TypeError),
        (CounterValueError, ValueError),
    ],
)
def test_every_error_derives_from_frame_error_and_a_builtin(error, builtin):
    """Each frame error is a FrameError and the matching builtin, so either can be caught."""
    assert issubclass(error, FrameError)
    assert issubclass(error, builtin)
    assert error.__name__ in frame.__all__


# -- cycles -------------------------------------------------------------------


def test_cycle_between_two_features_names_it_by_paths(s):
    """Two callbacks setting each other raise CycleError naming `a.x -> b.value -> a.x`."""
    a = Engine(name="a")
    b = Metric(name="b")
    a.x_ref.attach(lambda v: setattr(b, "value", v + 1))
    b.value_ref.attach(lambda v: setattr(a, "x", v + 1))
    with pytest.raises(CycleError, match=r"engines\.a\.x -> metrics\.b\.value -> engines\.a\.x") as info:
        a.x = 0
    assert info.value.cycle == ["engines.a.x", "metrics.b.value", "engines.a.x"]
    assert not isinstance(info.value, RecursionError)


def test_self_cycle_is_named(s):
    """A callback that sets its own object forever is a CycleError `a.x -> a.x`."""
    a = Engine(name="a")
    a.x_ref.attach(lambda v: setattr(a, "x", v + 1))
    with pytest.raises(CycleError, match=r"engines\.a\.x -> engines\.a\.x \(engines\.a\.x re-entered 32 times\)"):
        a.x = 0
    assert a.x == MAX_DEPTH


def test_cycle_with_several_callbacks_and_filters_is_detected(s):
    """Cycles through objects with several (filtered) callbacks are detected and named as well."""
    a = Engine(name="a")
    b = Metric(name="b")
    a.x_ref.attach(lambda: None)
    a.x_ref.attach(lambda v: setattr(b, "value", v), when=lambda v: True)
    b.value_ref.attach(lambda v: setattr(a, "x", v + 1), every=1)
    with pytest.raises(CycleError) as info:
        a.x = 0
    assert info.value.cycle == ["engines.a.x", "metrics.b.value", "engines.a.x"]


class _Quiet:
    """An observer that records nothing: `state.observe` then dispatches the traced way."""

    def enter_event(self, ref, value):
        return None

    def exit_event(self, token):
        pass

    def enter_callback(self, handle):
        return None

    def exit_callback(self, token):
        pass


@pytest.mark.parametrize("shape", ["one callback", "all take the value", "all take nothing", "mixed", "traced"])
def test_every_dispatch_shape_stops_a_cycle_and_recovers(s, shape):
    """However an object dispatches, a self-cycle stops at MAX_DEPTH and later sets work again."""
    a = Engine(name="a")
    looping = [True]
    seen = []

    def again(v):
        seen.append(v)
        if looping[0]:
            a.x = v + 1

    def again_bare():
        again(a.x)

    if shape in ("one callback", "traced"):
        a.x_ref.attach(again)
    elif shape == "all take the value":
        a.x_ref.attach(again)
        a.x_ref.attach(lambda v: None)
    elif shape == "all take nothing":
        a.x_ref.attach(again_bare)
        a.x_ref.attach(lambda: None)
    else:
        a.x_ref.attach(again)
        a.x_ref.attach(lambda: None)
    with s.observe(_Quiet()) if shape == "traced" else contextlib.nullcontext():
        with pytest.raises(CycleError, match=r"engines\.a\.x -> engines\.a\.x \(engines\.a\.x re-entered 32 times\)"):
            a.x = 0
        assert seen == list(range(MAX_DEPTH))
        looping[0] = False
        seen.clear()
        a.x = 100
        assert seen == [100]


def test_bounded_re_entry_is_allowed(s):
    """Re-entering an object fewer than MAX_DEPTH times is legitimate (a countdown)."""
    a = Engine(name="a")
    a.x_ref.attach(lambda v: setattr(a, "x", v - 1) if v > 0 else None)
    a.x = MAX_DEPTH - 1
    assert a.x == 0


def test_state_usable_after_a_cycle_error(s):
    """After a CycleError the depth counters are reset: later sets fire normally."""
    a = Engine(name="a")
    handle = a.x_ref.attach(lambda v: setattr(a, "x", v + 1))
    with pytest.raises(CycleError):
        a.x = 0
    handle.remove()
    seen = []
    a.x_ref.attach(seen.append)
    a.x = 5
    assert seen == [5]


# -- names --------------------------------------------------------------------


def test_duplicate_name_names_existing_path_and_new_class(s):
    """A duplicate feature name raises NameConflictError naming the existing path and the new class."""
    Engine(name="trainer")
    with pytest.raises(
        NameConflictError,
        match=r"a feature named 'trainer' already exists at engines\.trainer \(Engine\); "
        r"give the new Metric another name=\.\.\.",
    ):
        Metric(name="trainer")
    assert s.trainer.category == "engines"
    assert len(s.metrics) == 0


def test_duplicate_default_name(s):
    """Two features of one class without names collide on the default name."""
    Engine()
    with pytest.raises(NameConflictError, match=r"'engine' already exists at engines\.engine"):
        Engine()


@pytest.mark.parametrize("name", ["clear", "hold", "metrics", "engines", "state_dict", "features", "state"])
def test_reserved_names_are_rejected(s, name):
    """A name shadowing a State attribute or category is rejected, naming it."""
    with pytest.raises(NameConflictError, match=rf"name '{name}' of a Engine would shadow state\.{name}"):
        Engine(name=name)
    assert s.features == []


@pytest.mark.parametrize("name", ["my-engine", "1st", "_private", "class", ""])
def test_names_must_be_identifiers(s, name):
    """A name that `state.<name>` could not reach is rejected with a suggestion."""
    with pytest.raises(NameConflictError, match=rf"name '{name}' of a Engine must be a Python identifier.*try '"):
        Engine(name=name)


def test_name_must_be_a_string(s):
    """A non-string name is a TypeError."""
    with pytest.raises(TypeError, match=r"name of a Engine must be a str, got 3"):
        Engine(name=3)


def test_unknown_state_attribute_suggests_close_names(s):
    """`state.traner` raises AttributeError suggesting `trainer`."""
    Engine(name="trainer")
    with pytest.raises(UnknownNameError, match=r"state has no feature or category 'traner'; did you mean 'trainer'\?"):
        s.traner
    with pytest.raises(AttributeError, match=r"did you mean 'metrics'"):
        s.metrix


def test_unknown_state_attribute_lists_known_names_when_none_is_close(s):
    """With no close match, the error lists the known names."""
    with pytest.raises(UnknownNameError, match=r"state has no feature or category 'zzzzzzzz'; known names: .*engines"):
        s.zzzzzzzz


def test_unknown_container_member_suggests_close_names(s):
    """`state.engines.evaluater` suggests `evaluator`; so does `state.engines["evaluater"]`."""
    Engine(name="evaluator")
    with pytest.raises(UnknownNameError, match=r"no feature 'evaluater' in engines; did you mean 'evaluator'\?"):
        s.engines.evaluater
    with pytest.raises(UnknownNameError, match=r"did you mean 'evaluator'"):
        s.engines["evaluater"]


def test_unknown_container_ref_is_a_clear_error(s):
    """`state.metrics.add_ref` suggests `added_ref` instead of leaking an internal error."""
    with pytest.raises(
        UnknownNameError, match=r"container metrics has no state object 'add'; did you mean 'added_ref'"
    ):
        s.metrics.add_ref


def test_private_lookups_are_plain_attribute_errors(s):
    """Private names (copy/pickle protocol probes) raise a plain AttributeError without suggestions."""
    with pytest.raises(AttributeError):
        s._missing
    with pytest.raises(AttributeError):
        s.engines._missing


def test_removing_a_feature_twice_is_an_unknown_name(s):
    """`state.remove` of a feature that is not in the state says so; by name it suggests."""
    e = Engine(name="trainer")
    s.remove(e)
    with pytest.raises(UnknownNameError, match=r"engines\.trainer is not in this state"):
        s.remove(e)
    with pytest.raises(UnknownNameError, match=r"state has no feature 'trainer'"):
        s.remove("trainer")
    e.remove()  # a feature's own remove is harmless once removed


def test_invalid_category_is_rejected():
    """A feature class whose category is not an identifier is a TypeError at class creation."""
    with pytest.raises(TypeError, match=r"Bad\.category must be an identifier, got 'not valid'"):

        class Bad(Feature):
            category = "not valid"


def test_params_name_conflicts_like_any_feature(s):
    """Params names are checked like any other feature name."""
    Params(name="hp", lr=1)
    with pytest.raises(NameConflictError, match=r"already exists at params\.hp \(Params\)"):
        Params(name="hp", lr=2)
