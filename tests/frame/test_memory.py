"""Memory: handles and callbacks do not keep their owners alive."""

from __future__ import annotations

import gc
import weakref

from helpers import Listener

from statefire.frame import Feature, StateObject


class Source(Feature):
    category = "sources"
    x = StateObject(0)


class ListenerFeature(Feature):
    category = "handlers"

    def on(self, value):
        pass


def test_bound_method_does_not_keep_its_object_alive(s):
    """Attaching `obj.method` holds `obj` weakly: deleting the last reference collects it."""
    src = Source()
    listener = Listener()
    alive = weakref.ref(listener)
    src.x_ref.attach(listener.on)
    src.x = 1
    assert listener.seen == [1]
    del listener
    gc.collect()
    assert alive() is None


def test_handle_is_dropped_when_the_object_dies(s):
    """When the bound method's object dies, its handle is removed and the object is unobserved."""
    src = Source()
    listener = Listener()
    handle = src.x_ref.attach(listener.on)
    assert Source.x.observed >= 1
    before = Source.x.observed
    del listener
    gc.collect()
    assert src.x_ref.handles == ()
    assert not handle.active
    assert handle.callback is None
    assert Source.x.observed == before - 1
    src.x = 2  # no error, nothing to call


def test_dead_bound_method_among_others_leaves_the_others(s):
    """One dead listener does not disturb the other callbacks or their order."""
    src = Source()
    seen = []
    src.x_ref.attach(lambda v: seen.append(("first", v)))
    doomed = Listener()
    src.x_ref.attach(doomed.on)
    src.x_ref.attach(lambda v: seen.append(("last", v)))
    del doomed
    gc.collect()
    src.x = 3
    assert seen == [("first", 3), ("last", 3)]
    assert len(src.x_ref.handles) == 2


def test_handle_held_by_user_does_not_keep_owner_alive(s):
    """A handle the user keeps does not keep the bound method's object alive."""
    src = Source()
    listener = Listener()
    alive = weakref.ref(listener)
    handle = src.x_ref.attach(listener.on)
    del listener
    gc.collect()
    assert alive() is None
    handle.remove()  # harmless after the owner died


def test_other_callables_are_held_strongly(s):
    """Lambdas, functions and callable objects are held strongly: they keep firing."""
    src = Source()
    seen = []

    class Call:
        def __call__(self, value):
            seen.append(value)

    src.x_ref.attach(Call())
    src.x_ref.attach(lambda v: seen.append(-v))
    gc.collect()
    src.x = 4
    assert seen == [4, -4]


def test_bound_method_of_unweakrefable_object_is_held_strongly(s):
    """An object without weak-reference support (slots) is held strongly instead of failing."""
    src = Source()

    class Slotted:
        __slots__ = ("seen",)

        def __init__(self):
            self.seen = []

        def on(self, value):
            self.seen.append(value)

    src.x_ref.attach(Slotted().on)
    gc.collect()
    src.x = 1
    assert src.x_ref.callbacks[0].__self__.seen == [1]


def test_removed_feature_is_collected(s):
    """A feature removed from its state, with callbacks it owned elsewhere, can be collected."""
    src = Source()
    listener = ListenerFeature()
    src.x_ref.attach(listener.on)
    listener.x_seen = src.x_ref  # a feature holding a ref to another is fine
    alive = weakref.ref(listener)
    listener.remove()
    del listener
    gc.collect()
    assert alive() is None
    assert src.x_ref.handles == ()


def test_container_events_do_not_keep_features_alive(s):
    """`added`/`removed` are events, not values: a removed feature is not retained by them."""
    seen = []
    s.container("sources").added_ref.attach(lambda f: seen.append(f.name))
    s.sources.removed_ref.attach(lambda f: seen.append(f.name))
    src = Source()
    alive = weakref.ref(src)
    src.remove()
    del src
    gc.collect()
    assert seen == ["source", "source"]
    assert s.sources.added is None and s.sources.removed is None
    assert alive() is None


def test_state_out_of_scope_is_collected():
    """A scoped State with features and callbacks is collected once unreferenced."""
    from statefire.frame import State

    with State() as scoped:
        src = Source()
        listener = ListenerFeature()
        src.x_ref.attach(listener.on)
        src.x_ref.attach(lambda v: None)
    alive = weakref.ref(scoped)
    del scoped, src, listener
    gc.collect()
    assert alive() is None


def test_detaching_everything_restores_the_unobserved_fast_path(s):
    """Once every callback is removed, the object has no dispatcher and no fire callable."""
    src = Source()
    before = Source.x.observed
    handles = [src.x_ref.attach(lambda v: None) for _ in range(3)]
    assert Source.x.observed == before + 1
    for handle in handles:
        handle.remove()
    assert Source.x.observed == before
    assert "x" not in src._sf and "x" not in src._sf.dispatchers


def test_a_ref_setter_callback_belongs_to_the_refs_feature(s):
    """`a.x_ref.attach(b.y_ref.set)` is owned by b: removing b detaches it and frees b."""
    import gc
    import weakref

    from statefire.frame import Feature, StateObject

    class Cell(Feature):
        category = "cells"
        x = StateObject()

    a, b = Cell(name="a"), Cell(name="b")
    a.x_ref.attach(b.x_ref.set)
    a.x = 3
    assert b.x == 3
    alive = weakref.ref(b)
    b.remove()
    del b
    gc.collect()
    assert alive() is None and a.x_ref.handles == ()
