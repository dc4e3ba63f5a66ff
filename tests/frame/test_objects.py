"""State objects: StateObject, Counter, Param descriptors and where their values live."""

from __future__ import annotations

import pytest

from statefire.frame import (
    Counter,
    CounterTypeError,
    CounterValueError,
    Feature,
    FrameError,
    Param,
    Params,
    StateObject,
    UnknownNameError,
)


class Model(Feature):
    category = "things"
    weights = StateObject(default=[0, 0], doc="the weights")
    step = Counter(doc="steps taken")
    lr = Param(0.1)
    batch = StateObject(persist=False)


class NoEq:
    """A value like a tensor: comparing it is an error."""

    def __eq__(self, other):
        raise AssertionError("values must never be compared")

    __hash__ = object.__hash__


def test_value_lives_in_instance_dict(s):
    """The value is plain instance storage, visible in `vars(feature)`."""
    m = Model()
    m.lr = 0.5
    assert vars(m)["lr"] == 0.5
    assert m.lr == 0.5
    assert set(vars(m)) == {"_sf", "weights", "step", "lr", "batch", "name"}


def test_reads_are_plain_attribute_reads():
    """A state object is a data descriptor with only `__set__`: no `__get__` on reads."""
    assert not hasattr(StateObject, "__get__")
    assert hasattr(StateObject, "__set__")


def test_defaults_and_mutable_defaults_are_copied(s):
    """Each instance starts with the default; a mutable default is copied per instance."""
    a, b = Model(name="a"), Model(name="b")
    a.weights.append(1)
    assert b.weights == [0, 0]
    assert Model.__dict__["weights"].default == [0, 0]
    assert (a.step, a.lr, a.batch) == (0, 0.1, None)


def test_every_set_fires_even_when_unchanged(s):
    """Setting the same value twice fires twice: a set is an event."""
    m = Model()
    seen = []
    m.lr_ref.attach(seen.append)
    m.lr = 0.1
    m.lr = 0.1
    assert seen == [0.1, 0.1]


def test_values_are_never_compared(s):
    """Firing never uses `==` on values (tensors must not be compared or synced)."""
    m = Model()
    seen = []
    m.batch_ref.attach(seen.append)
    value = NoEq()
    m.batch = value
    m.batch = value
    assert len(seen) == 2 and seen[0] is value


def test_callback_exception_propagates_to_the_setter(s):
    """An exception raised by a callback reaches the code that did the set; the value is stored."""
    m = Model()

    def fail(value):
        raise KeyError(f"bad {value}")

    m.lr_ref.attach(fail)
    with pytest.raises(KeyError, match="bad 2"):
        m.lr = 2
    assert m.lr == 2


def test_callback_sees_the_new_value_on_the_instance(s):
    """Callbacks run after the value is stored, so reading the attribute gives the new value."""
    m = Model()
    seen = []
    m.step_ref.attach(lambda: seen.append(m.step))
    m.step += 1
    m.step += 1
    assert seen == [1, 2]


def test_callbacks_are_per_instance(s):
    """Callbacks attached to one instance's object do not fire for another instance."""
    a, b = Model(name="a"), Model(name="b")
    seen = []
    a.lr_ref.attach(seen.append)
    b.lr = 7
    a.lr = 3
    assert seen == [3]


def test_counter_accepts_non_negative_ints_and_index_numbers(s):
    """A counter holds a non-negative int; objects with `__index__` are converted to int."""

    class Index:
        def __index__(self):
            return 5

    m = Model()
    m.step = 3
    m.step = Index()
    assert m.step == 5 and type(m.step) is int


@pytest.mark.parametrize("bad", [1.0, "1", None, True])
def test_counter_rejects_non_ints(s, bad):
    """Setting a counter to a non-int raises CounterTypeError naming the object and value."""
    m = Model()
    with pytest.raises(CounterTypeError, match=r"counter Model\.step must be a non-negative int, got .*of type"):
        m.step = bad
    assert m.step == 0


def test_counter_rejects_negative_values(s):
    """Setting a counter below zero raises CounterValueError; the old value stays."""
    m = Model()
    m.step = 4
    with pytest.raises(CounterValueError, match=r"counter Model\.step must be a non-negative int, got -1"):
        m.step = -1
    assert m.step == 4


def test_counter_default_is_validated():
    """A counter's default must be a non-negative int too."""
    with pytest.raises(CounterValueError, match="counter default"):
        Counter(-3)
    with pytest.raises(CounterTypeError, match="counter default"):
        Counter(0.5)


def test_counter_errors_are_frame_errors_and_builtins():
    """Counter errors are FrameErrors and the matching builtin TypeError/ValueError."""
    assert issubclass(CounterTypeError, FrameError) and issubclass(CounterTypeError, TypeError)
    assert issubclass(CounterValueError, FrameError) and issubclass(CounterValueError, ValueError)


def test_persist_false_is_left_out_of_state_dict(s):
    """`persist=False` objects (batch, output) are not in `state_dict()`."""
    m = Model()
    m.batch = [1, 2, 3]
    assert m.state_dict() == {"weights": [0, 0], "step": 0, "lr": 0.1}


def test_params_each_keyword_is_a_param(s):
    """`Params(name=..., **values)`: each keyword is a Param with a ref, firing on set."""
    hp = Params(name="hp", batch_size=32, seed=0)
    assert isinstance(type(hp).__dict__["batch_size"], Param)
    assert hp.batch_size_ref.path == "params.hp.batch_size"
    seen = []
    hp.seed_ref.attach(seen.append)
    hp.seed = 1
    assert seen == [1]
    assert hp.state_dict() == {"batch_size": 32, "seed": 1}


def test_params_instances_do_not_share_objects(s):
    """Two Params features have independent sets of objects."""
    a = Params(name="a", lr=0.1)
    b = Params(name="b", momentum=0.9)
    assert a.values() == {"lr": 0.1}
    assert b.values() == {"momentum": 0.9}


def test_config_lists_every_param_by_path(s):
    """`state.config()` is every Param of every feature, by path; other objects are not in it."""
    m = Model()
    Params(name="hp", batch_size=32, seed=0)
    m.lr = 0.01
    assert s.config() == {
        "things.model.lr": 0.01,
        "params.hp.batch_size": 32,
        "params.hp.seed": 0,
    }


def test_subclass_inherits_and_can_replace_objects(s):
    """Subclasses inherit state objects; replacing one with a plain attribute removes it."""

    class Derived(Model):
        lr = 0.3  # no longer a state object
        extra = StateObject("x")

    d = Derived()
    assert set(d.values()) == {"weights", "step", "batch", "extra"}
    assert d.lr == 0.3
    with pytest.raises(UnknownNameError, match="Derived has no state object 'lr'"):
        d.lr_ref.attach(print)
    assert d.extra_ref.path == "things.derived.extra"


def test_values_and_refs_listing(s):
    """`feature.values()` and `feature.refs` cover every state object, by name."""
    m = Model()
    assert m.values() == {"weights": [0, 0], "step": 0, "lr": 0.1, "batch": None}
    assert list(m.refs) == ["weights", "step", "lr", "batch"]
    assert m.refs["step"] == m.step_ref


def test_descriptor_metadata(s):
    """The descriptor keeps its name, default and doc, reachable from a ref."""
    m = Model()
    descriptor = m.step_ref.descriptor
    assert isinstance(descriptor, Counter)
    assert (descriptor.name, descriptor.default, descriptor.doc) == ("step", 0, "steps taken")
    assert m.weights_ref.descriptor.doc == "the weights"


def test_feature_outside_any_feature_init_registration_is_named(s):
    """A subclass whose `__init__` never calls `Feature.__init__` is still registered."""

    class Lazy(Feature):
        category = "things"
        v = StateObject(1)

        def __init__(self, v):
            self.v = v

    lazy = Lazy(4)
    assert s.lazy is lazy and lazy.v == 4


def test_a_feature_with_its_own_setattr_still_holds_and_fires_its_objects(s):
    """A subclass's `__setattr__` (here: only state objects may be set) sees only the user's sets."""

    class Frozen(Feature):
        category = "things"
        value = StateObject(0)

        def __setattr__(self, name, value):
            if name not in type(self)._sf_objects:
                raise AttributeError(f"{name} cannot be set on a Frozen")
            super().__setattr__(name, value)

    frozen = Frozen()
    seen = []
    frozen.value_ref.attach(seen.append)
    frozen.value = 3
    assert seen == [3] and frozen.value == 3
    with pytest.raises(AttributeError, match="other cannot be set"):
        frozen.other = 1
