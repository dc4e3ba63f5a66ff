"""State: scoping, the current state, containers, shortcuts, names, clear."""

from __future__ import annotations

import asyncio
import threading

import pytest

from statefire import frame
from statefire.frame import Container, Counter, Feature, Params, State, StateObject, UnknownNameError


class Sensor(Feature):
    category = "sensors"
    reading = StateObject(0.0)


class HTTPServerProbe(Feature):
    category = "sensors"
    hits = Counter()


def test_global_state_is_current_outside_any_scope():
    """Outside every `with State()`, `State.current()` is the global `frame.state`."""
    assert State.current() is frame.state


def test_with_state_makes_it_current_and_restores(s):
    """`with State() as s:` makes `s` current; leaving it restores the previous one."""
    assert State.current() is s
    with State() as inner:
        assert State.current() is inner
        with inner:  # re-entering the same state nests too
            assert State.current() is inner
        assert State.current() is inner
    assert State.current() is s


def test_features_register_in_the_current_state_only(s):
    """A feature registers in the state current when it is created, not in the global one."""
    sensor = Sensor()
    assert s.sensor is sensor
    assert sensor.state is s
    assert "sensor" not in {f.name for f in frame.state.features}
    with State() as other:
        Sensor()
        assert other.sensor is not sensor
    assert s.features == [sensor]


def test_threads_do_not_see_another_threads_scope(s):
    """The current state is a context variable: a new thread starts at the global state."""
    seen = []
    thread = threading.Thread(target=lambda: seen.append(State.current()))
    thread.start()
    thread.join()
    assert seen == [frame.state]


def test_asyncio_tasks_do_not_leak_scopes_into_each_other():
    """Two tasks each entering their own State see only their own, even interleaved."""

    async def worker(tag, results):
        with State() as mine:
            Params(name=f"p_{tag}", tag=tag)
            await asyncio.sleep(0)
            results[tag] = (State.current() is mine, [f.name for f in State.current().features])

    async def main():
        results = {}
        await asyncio.gather(worker("a", results), worker("b", results))
        return results

    results = asyncio.run(main())
    assert results == {"a": (True, ["p_a"]), "b": (True, ["p_b"])}


def test_containers_are_created_on_first_use(s):
    """A category's container exists once used; standard categories resolve even when empty."""
    assert s.containers == []
    metrics = s.metrics
    assert isinstance(metrics, Container)
    assert len(metrics) == 0 and list(metrics) == []
    assert s.containers == [metrics]
    assert s.metrics is metrics


def test_container_iterates_its_features_in_creation_order_and_has_len(s):
    """Iterating a container yields its features in creation order; `len` counts them."""
    a, b = Sensor(name="a"), Sensor(name="b")
    probe = HTTPServerProbe()
    assert list(s.sensors) == [a, b, probe]
    assert len(s.sensors) == 3
    assert "a" in s.sensors and a in s.sensors and "zzz" not in s.sensors
    assert s.sensors["b"] is b and s.sensors.b is b
    assert repr(s.sensors) == "<Container sensors: a, b, http_server_probe>"


def test_shortcut_reaches_any_feature(s):
    """`state.<name>` is the feature of that name, whatever its category."""
    hp = Params(name="hp", lr=0.1)
    sensor = Sensor()
    assert s.hp is hp is s.params.hp
    assert s.sensor is sensor is s.sensors.sensor


def test_default_name_is_class_name_in_snake_case(s):
    """Without `name=`, a feature is named after its class in snake_case."""
    assert Sensor().name == "sensor"
    assert HTTPServerProbe().name == "http_server_probe"
    assert s.http_server_probe.path == "sensors.http_server_probe"


def test_params_default_name_and_category(s):
    """`Params(**values)` lives in `state.params`; without a name it is `hparams`."""
    hp = Params(batch_size=32, seed=0)
    assert hp.name == "hparams"
    assert hp.category == "params"
    assert list(s.params) == [hp]
    assert (hp.batch_size, hp.seed) == (32, 0)


def test_container_added_fires_once_the_feature_is_fully_constructed(s):
    """`added` fires after the outermost `__init__` returns, so subclass fields are set."""

    class Late(Feature):
        category = "sensors"
        value = StateObject()

        def __init__(self, extra, *, name=None):
            super().__init__(name=name)
            self.extra = extra

    class Later(Late):
        def __init__(self):
            super().__init__("base")
            self.extra = "derived"

    seen = []
    s.container("sensors").added_ref.attach(lambda f: seen.append((f.name, f.extra)))
    Late(1)
    Later()
    assert seen == [("late", 1), ("later", "derived")]


def test_container_added_does_not_fire_for_a_feature_whose_init_fails(s):
    """A feature whose `__init__` raises is unregistered and never announced."""

    class Broken(Feature):
        category = "sensors"

        def __init__(self):
            super().__init__()
            raise RuntimeError("boom")

    seen = []
    s.container("sensors").added_ref.attach(seen.append)
    with pytest.raises(RuntimeError, match="boom"):
        Broken()
    assert seen == [] and "broken" not in s.sensors
    Sensor(name="broken")  # the name is free again


def test_container_removed_fires_with_the_feature(s):
    """Removing a feature fires its container's `removed` with it, and unregisters it."""
    sensor = Sensor()
    seen = []
    s.sensors.removed_ref.attach(seen.append)
    sensor.remove()
    assert seen == [sensor]
    assert len(s.sensors) == 0
    assert sensor.state is None
    with pytest.raises(UnknownNameError):
        s.sensor
    Sensor()  # the name can be reused


def test_remove_by_name(s):
    """`state.remove("name")` removes the feature of that name."""
    Sensor()
    s.remove("sensor")
    assert s.features == []


def test_remove_detaches_callbacks_the_feature_owns(s):
    """Removing a feature detaches its own objects' callbacks and the callbacks it owns elsewhere."""

    class Listener(Feature):
        category = "sensors"

        def on_reading(self, value):
            self.got = value

    sensor = Sensor()
    listener = Listener()
    sensor.reading_ref.attach(listener.on_reading)
    listener_as_owner = sensor.reading_ref.attach(print, owner=listener)
    assert len(sensor.reading_ref.handles) == 2
    listener.remove()
    assert sensor.reading_ref.handles == ()
    assert not listener_as_owner.active


def test_clear_removes_every_feature_and_container(s):
    """`state.clear()` removes every feature and container and every callback, silently."""
    sensor = Sensor()
    Params(name="hp", lr=1)
    fired = []
    sensor.reading_ref.attach(fired.append)
    s.sensors.removed_ref.attach(fired.append)
    s.clear()
    assert s.features == [] and s.containers == []
    assert fired == []
    sensor.reading = 3.0  # no longer wired
    assert fired == []
    Sensor()  # names are free again
    assert len(s.sensors) == 1


def test_state_features_and_refs_listing(s):
    """`state.features` lists features in creation order; `state.refs` every object's ref."""
    a = Sensor()
    hp = Params(name="hp", lr=0.1, wd=0.0)
    assert s.features == [a, hp]
    assert [r.path for r in s.refs] == ["sensors.sensor.reading", "params.hp.lr", "params.hp.wd"]


def test_dir_lists_features_and_containers(s):
    """`dir(state)` offers feature and category names for completion."""
    Sensor()
    names = dir(s)
    assert "sensor" in names and "sensors" in names and "clear" in names


def test_state_attributes_cannot_be_assigned(s):
    """`state.x = 1` is rejected with a hint to use Params."""
    with pytest.raises(AttributeError, match=r"cannot set state\.lr.*Params\(name=\.\.\., lr=\.\.\.\)"):
        s.lr = 0.1
