"""`state.hold()` batches events; `state.silenced()` fires nothing."""

from __future__ import annotations

import pytest

from statefire.frame import Counter, Feature, StateObject, wiring


class Meter(Feature):
    category = "meters"
    a = StateObject(0)
    b = StateObject(0)
    c = StateObject(0)
    n = Counter()


def recorder(meter, names=("a", "b", "c", "n")):
    log = []
    for name in names:
        getattr(meter, f"{name}_ref").attach(lambda v, name=name: log.append((name, v)))
    return log


def test_hold_defers_and_fires_each_object_once_with_its_last_value(s):
    """Inside `hold` nothing fires; at exit each set object fires once with its last value."""
    m = Meter()
    log = recorder(m)
    with s.hold():
        m.a = 1
        m.a = 2
        m.a = 3
        assert log == []
        assert m.a == 3  # values are set immediately
    assert log == [("a", 3)]


def test_hold_fires_in_first_set_order(s):
    """Objects fire in the order they were first set, not last set."""
    m = Meter()
    log = recorder(m)
    with s.hold():
        m.c = 1
        m.a = 1
        m.b = 1
        m.c = 2
        m.a = 2
    assert log == [("c", 2), ("a", 2), ("b", 1)]


def test_nested_holds_fire_at_the_outermost_exit(s):
    """Only the outermost `hold` fires; inner exits keep deferring."""
    m = Meter()
    log = recorder(m)
    with s.hold():
        m.a = 1
        with s.hold():
            m.b = 1
        assert log == []
        m.b = 2
    assert log == [("a", 1), ("b", 2)]


def test_hold_applies_filters_as_to_one_set(s):
    """At hold exit filters apply as to a normal set: a held burst counts as one set."""
    m = Meter()
    seen = []
    m.a_ref.attach(seen.append, every=2)
    with s.hold():
        for i in range(5):
            m.a = i
    assert seen == []  # one set so far
    m.a = 10
    assert seen == [10]


def test_hold_counter_filter_follows_the_value(s):
    """A counter's `every` filter sees the held value jump and fires once for the crossing."""
    m = Meter()
    seen = []
    m.n_ref.attach(seen.append, every=100)
    with s.hold():
        for _ in range(10):
            m.n += 32
    assert seen == [320]
    with s.hold():
        m.n += 10
    assert seen == [320]


def test_hold_raising_drops_the_events_but_keeps_the_values(s):
    """If the held block raises, the deferred events are dropped; the values stay set."""
    m = Meter()
    log = recorder(m)
    with pytest.raises(RuntimeError), s.hold():
        m.a = 5
        raise RuntimeError("stop")
    assert log == []
    assert m.a == 5
    m.a = 6  # firing works again afterwards
    assert log == [("a", 6)]


def test_callbacks_set_during_hold_exit_fire_normally(s):
    """Callbacks running at the hold exit may set other objects; those fire immediately."""
    m = Meter()
    log = []
    m.a_ref.attach(lambda v: setattr(m, "b", v * 10))
    m.b_ref.attach(lambda v: log.append(("b", v)))
    with s.hold():
        m.a = 1
        m.a = 2
    assert log == [("b", 20)]


def test_attach_inside_hold_is_deferred_too(s):
    """A callback attached inside a hold is deferred like the others."""
    m = Meter()
    seen = []
    with s.hold():
        m.a_ref.attach(seen.append)
        m.a = 1
        m.a = 2
        assert seen == []
    assert seen == [2]


def test_unobserved_objects_set_in_hold_fire_nothing(s):
    """Held objects without callbacks fire nothing at exit, and cost no bookkeeping."""
    m = Meter()
    log = recorder(m, names=("a",))
    with s.hold():
        m.b = 1
        m.a = 1
    assert log == [("a", 1)]


def test_container_events_are_held(s):
    """A container's `added` event is deferred by a hold like any other object."""
    seen = []
    s.container("meters").added_ref.attach(lambda f: seen.append(f.name))
    with s.hold():
        Meter(name="m1")
        assert seen == []
    assert seen == ["m1"]


def test_silenced_fires_nothing(s):
    """Inside `silenced` nothing fires, but values are set; afterwards firing resumes."""
    m = Meter()
    log = recorder(m)
    with s.silenced():
        m.a = 1
        m.n = 5
    assert log == []
    assert (m.a, m.n) == (1, 5)
    m.a = 2
    assert log == [("a", 2)]


def test_silenced_nests(s):
    """Nested `silenced` blocks stay silent until the outermost exits."""
    m = Meter()
    log = recorder(m)
    with s.silenced():
        with s.silenced():
            m.a = 1
        m.a = 2
    assert log == []
    m.a = 3
    assert log == [("a", 3)]


def test_silenced_inside_hold_drops_those_sets(s):
    """Sets made silently inside a hold are not fired at the hold exit."""
    m = Meter()
    log = recorder(m)
    with s.hold():
        with s.silenced():
            m.a = 1
        m.b = 1
    assert log == [("b", 1)]


def test_silenced_counter_filters_start_from_the_restored_value(s):
    """After a silenced jump of a counter, its `every` filter counts from the new value."""
    m = Meter()
    seen = []
    m.n_ref.attach(seen.append, every=10)
    with s.silenced():
        m.n = 15
    m.n = 19
    m.n = 20
    assert seen == [20]


def test_silence_and_hold_bump_the_wiring_version(s):
    """Entering and leaving hold/silence changes `wiring.version`, so hot loops reload."""
    Meter()
    versions = [wiring.version]
    with s.hold():
        versions.append(wiring.version)
    versions.append(wiring.version)
    with s.silenced():
        versions.append(wiring.version)
    versions.append(wiring.version)
    assert len(set(versions)) == len(versions)


def test_hold_is_per_state(s):
    """Holding one State does not defer events of another."""
    m = Meter()
    log = recorder(m)
    with type(s)() as other, other.hold():
        m.a = 1
    assert log == [("a", 1)]
