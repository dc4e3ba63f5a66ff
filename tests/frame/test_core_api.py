"""The public core API of issue 14: filter progress, tags, per-State categories, restore and
release hooks, decorators that keep the function, silent sets, collections, copying refused."""

from __future__ import annotations

import copy
import inspect
import pickle
from typing import ClassVar

import pytest

from statefire.frame import (
    CopyError,
    Counter,
    Feature,
    FilterProgress,
    NameConflictError,
    Params,
    State,
    StateDictError,
    StateObject,
    UnknownNameError,
)


class Trainer(Feature):
    category = "engines"
    n_samples = Counter()
    loss = StateObject(0.0)


# -- filter progress --------------------------------------------------------------


def test_handle_repr_shows_how_far_a_counter_filter_has_counted(s):
    """`<Handle save on engines.trainer.n_samples (every=1000, next at 2000)>` after 1500 samples."""
    trainer = Trainer(name="trainer")

    def save():
        pass

    handle = trainer.n_samples_ref.attach(save, every=1000)
    trainer.n_samples = 1500
    assert repr(handle).endswith("save on engines.trainer.n_samples (every=1000, next at 2000)>")
    progress = handle.filter_progress
    assert isinstance(progress, FilterProgress)
    assert (progress.floor, progress.ceiling) == (1000, 2000)  # plain attributes a debugger shows
    trainer.n_samples = 2100
    assert handle.progress == "next at 3000"


def test_progress_of_plain_and_once_filters(s):
    """On other objects progress counts sets; `once` says which threshold is next, then done."""
    trainer = Trainer(name="trainer")
    every = trainer.loss_ref.attach(lambda: None, every=3)
    once = trainer.n_samples_ref.attach(lambda: None, once=[10, 20])
    trainer.loss = 0.5
    assert every.progress == "next in 2 sets" and every.filter_progress.left == 2
    trainer.loss = 0.4
    trainer.loss = 0.3
    assert every.progress == "next in 3 sets"
    assert once.progress == "next at 10"
    trainer.n_samples = 15
    assert once.progress == "next at 20"
    trainer.n_samples = 25
    assert once.progress == "done"


def test_progress_follows_a_silent_restore(s):
    """After a state dict restore the counter filter's progress starts from the restored value."""
    trainer = Trainer(name="trainer")
    handle = trainer.n_samples_ref.attach(lambda: None, every=1000)
    s.load_state_dict({"engines": {"trainer": {"n_samples": 4321, "loss": 0.0}}})
    assert handle.progress == "next at 5000"


# -- tags -----------------------------------------------------------------------------


def test_a_handle_carries_its_kind(s):
    """`attach(..., kind=...)` tags the handle; tools read `handle.kind`; the repr shows it."""
    trainer = Trainer(name="trainer")
    handle = trainer.loss_ref.attach(lambda: None, kind="run_on")
    plain = trainer.loss_ref.attach(lambda: None)
    assert handle.kind == "run_on" and plain.kind is None
    assert repr(handle).endswith("[run_on]>")
    with pytest.raises(TypeError, match="kind must be a str tag like 'run_on', got 3"):
        trainer.loss_ref.attach(print, kind=3)


# -- categories belong to a State ----------------------------------------------------------


def test_a_class_category_does_not_reach_other_states():
    """Defining a class of a new category adds nothing to a State that has no such feature."""

    class Widget(Feature):
        category = "widgets"

    with State() as other:
        assert "widgets" not in dir(other) and not other.containers
        with pytest.raises(UnknownNameError, match="no feature or category 'widgets'"):
            other.widgets
        Params(name="widgets", level=1)  # the name is not reserved in this State
        assert other.widgets.level == 1
    with State() as mine:
        Widget(name="w")
        assert [f.name for f in mine.widgets] == ["w"]


def test_a_feature_named_like_its_own_category_can_be_made(s):
    """`class Sensor(Feature): category = "sensor"` is instantiable; state.sensor is the feature."""

    class Sensor(Feature):
        category = "sensor"
        reading = StateObject(0.0)

    sensor = Sensor()
    assert sensor.name == "sensor" and s.sensor is sensor
    assert list(s.container("sensor")) == [sensor]


def test_standard_categories_stay_reserved(s):
    """No feature may be named like a standard category, in any State."""
    with pytest.raises(NameConflictError, match="'metrics' of a Params would shadow state.metrics"):
        Params(name="metrics", x=1)
    assert len(s.metrics) == 0  # and every State has it


def test_categories_set_is_not_exported():
    from statefire import frame

    assert "CATEGORIES" not in frame.__all__ and not hasattr(frame, "CATEGORIES")


# -- restore hook -------------------------------------------------------------------------


class Buffered(Feature):
    """Extra state beyond its state objects, saved and restored the torch way."""

    category = "components"
    n = Counter()

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.buffer: list[int] = []

    def state_dict(self):
        return {**super().state_dict(), "buffer": list(self.buffer)}

    def load_state_dict(self, state_dict, strict=True):
        rest = dict(state_dict)
        self.buffer = list(rest.pop("buffer"))
        super().load_state_dict(rest, strict)


class Forgetful(Feature):
    """Saves extra state but never restores it: strict loading must say so."""

    category = "components"
    n = Counter()

    def state_dict(self):
        return {**super().state_dict(), "buffer": [1, 2]}


def test_state_load_calls_a_features_own_load_state_dict(s):
    """A feature overriding load_state_dict gets its extra state back through State.load_state_dict."""
    b = Buffered(name="b")
    b.buffer = [1, 2, 3]
    b.n = 3
    saved = s.state_dict()
    with State() as fresh:
        restored = Buffered(name="b")
        fresh.load_state_dict(saved)
        assert restored.buffer == [1, 2, 3] and restored.n == 3


def test_strict_loading_fails_when_saved_keys_are_not_restored(s):
    """A key a feature's state_dict adds without a matching load_state_dict is refused, by path."""
    Forgetful(name="f")
    saved = s.state_dict()
    with pytest.raises(
        StateDictError, match=r"saved but restored by nothing: components\.f\.buffer.*override load_state_dict"
    ):
        s.load_state_dict(saved)
    with pytest.raises(StateDictError, match=r"components\.f\.buffer"):
        s.f.load_state_dict(saved["components"]["f"])  # the feature's own hook says the same
    s.load_state_dict(saved, strict=False)  # non-strict restores what it can


def test_an_override_that_forgets_to_take_its_key_out_is_caught(s):
    """Passing an unconsumed key on to super().load_state_dict is an error under strict."""

    class Sloppy(Buffered):
        def load_state_dict(self, state_dict, strict=True):
            self.buffer = list(state_dict["buffer"])
            super(Buffered, self).load_state_dict(state_dict, strict)

    Sloppy(name="sloppy")
    with pytest.raises(StateDictError, match=r"unexpected keys: components\.sloppy\.buffer"):
        s.load_state_dict(s.state_dict())


# -- release hook -----------------------------------------------------------------------------


class Resource(Feature):
    category = "writers"
    closed: ClassVar[list[str]] = []

    def close(self) -> None:
        Resource.closed.append(self.name)


def test_close_is_called_on_remove_clear_and_state_exit():
    """Feature.close() runs when the feature is removed, on clear(), and when the outermost with-block ends."""
    Resource.closed = []
    with State() as st:
        Resource(name="a").remove()
        assert Resource.closed == ["a"]
        Resource(name="b")
        st.clear()
        assert Resource.closed == ["a", "b"]
        Resource(name="c")
        with st:  # an inner block of the same State: nothing is released yet
            pass
        assert Resource.closed == ["a", "b"]
    assert Resource.closed == ["a", "b", "c"]


def test_every_feature_is_closed_even_if_one_close_fails():
    """A failing close() does not keep the others open; its error is raised after all ran."""

    class Failing(Feature):
        category = "writers"

        def close(self) -> None:
            raise OSError("disk gone")

    Resource.closed = []
    with pytest.raises(OSError, match="disk gone"), State():
        Failing(name="x")
        Resource(name="y")
    assert Resource.closed == ["y"]


# -- decorators, silent sets, collections ---------------------------------------------------------


def test_bare_and_called_decorators_leave_a_usable_function(s):
    """`@ref.attach` leaves a callable that runs the function; `@ref.attach(...)` returns the function."""
    trainer = Trainer(name="trainer")
    seen = []

    @trainer.loss_ref.attach
    def bare(value):
        seen.append(("bare", value))
        return "called"

    @trainer.loss_ref.attach(every=1)
    def called(value):
        seen.append(("called", value))

    assert called.__name__ == "called" and callable(bare)
    assert bare.__name__ == "bare"
    assert str(inspect.signature(bare)) == "(value)"  # inspected as the function it stands for
    assert bare(7) == "called" and seen == [("bare", 7)]  # the decorated name still works as the function
    trainer.loss = 0.5
    assert seen[1:] == [("bare", 0.5), ("called", 0.5)]
    assert trainer.loss_ref.handle_of(called).callback is called
    trainer.loss_ref.detach(bare)  # a bare decorator's handle detaches like the function
    trainer.loss_ref.detach(called)
    assert trainer.loss_ref.handles == ()
    with pytest.raises(ValueError, match="is not attached to engines.trainer.loss"):
        trainer.loss_ref.handle_of(called)


def test_stacked_bare_decorators_attach_the_function(s):
    """`@a.attach @b.attach def f` attaches f itself to both."""
    trainer = Trainer(name="trainer")
    seen = []

    @trainer.loss_ref.attach
    @trainer.n_samples_ref.attach
    def note(value):
        seen.append(value)

    trainer.n_samples = 2
    trainer.loss = 0.1
    assert seen == [2, 0.1]
    assert trainer.loss_ref.handles[0].callback is trainer.n_samples_ref.handles[0].callback


def test_a_silent_set_fires_nothing_and_still_validates(s):
    """`ref.set(value, fire=False)` stores the value, fires nothing, keeps counter checks and filters in step."""
    trainer = Trainer(name="trainer")
    fired = []
    trainer.n_samples_ref.attach(fired.append, every=100)
    trainer.n_samples_ref.set(250, fire=False)
    assert trainer.n_samples == 250 and fired == []
    trainer.n_samples = 290  # no multiple of 100 crossed since 250
    assert fired == []
    trainer.n_samples = 300
    assert fired == [300]
    with pytest.raises(ValueError, match="must be a non-negative int, got -1"):
        trainer.n_samples_ref.set(-1, fire=False)


def test_collections_are_properties_and_the_old_calls_still_work(s):
    """`state.features/containers/refs/handles` and `feature.refs` are properties; calling them warns."""
    trainer = Trainer(name="trainer")
    handle = trainer.loss_ref.attach(print)
    assert s.features == [trainer] and [c.category for c in s.containers] == ["engines"]
    assert [r.path for r in s.refs] == ["engines.trainer.n_samples", "engines.trainer.loss"]
    assert s.handles == [handle] and list(trainer.refs) == ["n_samples", "loss"]
    with pytest.warns(DeprecationWarning, match="property now"):
        assert s.refs() == s.refs
    with pytest.warns(DeprecationWarning):
        assert trainer.refs()["loss"] == trainer.loss_ref
    assert trainer.values() == {"n_samples": 0, "loss": 0.0}  # values() reads now: a method
    assert dict(Trainer.state_objects()) == {"n_samples": Trainer.n_samples, "loss": Trainer.loss}
    assert trainer.state is s and s.engines.state is s


# -- copying is refused --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, pickle.dumps])
def test_a_state_cannot_be_copied_or_pickled(how):
    """Copying or pickling a State (also inside its with-block) says to use state_dict/load_state_dict."""
    with State() as st:
        Trainer(name="trainer")
        with pytest.raises(
            CopyError, match=r"a State cannot be copied or pickled.*state_dict\(\).*load_state_dict\(\)"
        ):
            how(st)
    assert isinstance(CopyError("x"), TypeError)


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, pickle.dumps])
def test_a_feature_cannot_be_copied_or_pickled(s, how):
    """A copy would alias the original's callbacks (running its engine updated the original's metric)."""
    trainer = Trainer(name="trainer")
    with pytest.raises(CopyError, match=r"Trainer engines\.trainer cannot be copied or pickled.*state_dict"):
        how(trainer)


def test_reads_stay_plain_instance_dict_reads():
    """The value-type `__get__` exists for type checkers only: at run time a state object has none."""
    assert "__get__" not in vars(StateObject) and not hasattr(Counter, "__get__")


def test_a_listener_does_not_keep_the_features_it_listens_to_alive(s):
    """The index of handles a feature owns is weak: dropping the listened-to feature frees it."""
    import gc
    import weakref

    listener = Trainer(name="listener")
    with State():
        source = Trainer(name="source")
        source.loss_ref.attach(lambda: None, owner=listener)
        alive = weakref.ref(source)
    del source
    gc.collect()
    assert alive() is None


def test_a_feature_whose_init_fails_keeps_its_error_even_if_close_cannot_run(s):
    """A half-built feature is closed on the way out, but its close() failing does not hide the init error."""

    class HalfBuilt(Feature):
        category = "writers"

        def __init__(self) -> None:
            super().__init__()
            raise ValueError("bad argument")

        def close(self) -> None:
            self.never_set.close()  # attributes the failed __init__ never made

    with pytest.raises(ValueError, match="bad argument"):
        HalfBuilt()
    assert "half_built" not in dir(s)
