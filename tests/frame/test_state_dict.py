"""Serialization: `state_dict()` / `load_state_dict()` on states and features."""

from __future__ import annotations

import json

import pytest

from statefire.frame import Counter, Feature, FrameError, Params, State, StateDictError, StateObject


class Engine(Feature):
    category = "engines"
    n_samples = Counter()
    n_epochs = StateObject(1)
    batch = StateObject(persist=False)


class Thing(Feature):
    category = "things"
    t = StateObject("t0")


def build():
    Engine(name="trainer")
    Engine(name="evaluator")
    Thing()
    Params(name="hp", lr=0.1)


def test_state_dict_is_nested_plain_dicts(s):
    """`state.state_dict()` is `{category: {feature: {object: value}}}`, JSON-able for plain values."""
    build()
    s.trainer.n_samples = 64
    s.trainer.batch = object()
    sd = s.state_dict()
    assert sd == {
        "engines": {
            "trainer": {"n_samples": 64, "n_epochs": 1},
            "evaluator": {"n_samples": 0, "n_epochs": 1},
        },
        "things": {"thing": {"t": "t0"}},
        "params": {"hp": {"lr": 0.1}},
    }
    assert json.loads(json.dumps(sd)) == sd
    assert type(sd) is dict and all(type(v) is dict for v in sd.values())


def test_empty_state_has_empty_state_dict(s):
    """A state with no features (or only empty containers) gives `{}`."""
    s.metrics  # an empty container is left out
    assert s.state_dict() == {}


def test_load_state_dict_restores_silently(s):
    """`load_state_dict` restores every value without firing any callback."""
    build()
    sd = s.state_dict()
    sd["engines"]["trainer"]["n_samples"] = 512
    sd["things"]["thing"]["t"] = "restored"
    fired = []
    for ref in s.refs:
        ref.attach(fired.append)
    s.load_state_dict(sd)
    assert fired == []
    assert s.trainer.n_samples == 512 and s.thing.t == "restored"


def test_round_trip_into_a_fresh_state(s):
    """A state dict saved from one State restores into a freshly built one (a resume)."""
    build()
    s.trainer.n_samples = 96
    s.hp.lr = 0.01
    saved = json.loads(json.dumps(s.state_dict()))
    with State() as fresh:
        build()
        fresh.load_state_dict(saved)
        assert fresh.state_dict() == s.state_dict()


def test_strict_error_lists_every_missing_and_unexpected_key(s):
    """Strict loading raises one StateDictError listing every missing and unexpected key by path."""
    build()
    sd = s.state_dict()
    del sd["engines"]["trainer"]["n_samples"]
    del sd["engines"]["evaluator"]
    sd["things"]["thing"]["extra"] = 1
    sd["things"]["ghost"] = {"x": 1}
    sd["unknown_category"] = {"f": {"y": 2}}  # (a feature that saved nothing may be absent: see below)
    with pytest.raises(StateDictError) as info:
        s.load_state_dict(sd)
    error = info.value
    assert error.missing == [
        "engines.trainer.n_samples",
        "engines.evaluator.n_samples",
        "engines.evaluator.n_epochs",
    ]
    assert sorted(error.unexpected) == ["things.ghost", "things.thing.extra", "unknown_category.f"]
    message = str(error)
    for key in error.missing + error.unexpected:
        assert key in message
    assert message.startswith("state dict does not match the state; missing keys: engines.trainer.n_samples")
    assert "strict=False" in message


def test_strict_error_restores_nothing(s):
    """A failing strict load leaves every value as it was."""
    build()
    sd = s.state_dict()
    sd["engines"]["trainer"]["n_samples"] = 999
    sd["things"]["thing"]["extra"] = 1
    with pytest.raises(StateDictError):
        s.load_state_dict(sd)
    assert s.trainer.n_samples == 0


def test_non_strict_loads_the_matching_part(s):
    """`strict=False` restores what matches and ignores the rest."""
    build()
    s.load_state_dict({"engines": {"trainer": {"n_samples": 7, "bogus": 1}}, "nope": 3}, strict=False)
    assert s.trainer.n_samples == 7
    assert s.evaluator.n_samples == 0


def test_persist_false_objects_are_not_expected_or_restored(s):
    """`persist=False` objects are neither saved nor required nor restored."""
    build()
    s.trainer.batch = "keep"
    sd = s.state_dict()
    assert "batch" not in sd["engines"]["trainer"]
    s.load_state_dict(sd)
    assert s.trainer.batch == "keep"
    sd["engines"]["trainer"]["batch"] = "injected"
    with pytest.raises(StateDictError, match=r"unexpected keys: engines\.trainer\.batch"):
        s.load_state_dict(sd)


def test_feature_state_dict_round_trip(s):
    """`feature.state_dict()` / `load_state_dict()` work on one feature, silently."""
    e = Engine(name="trainer")
    e.n_samples = 10
    sd = e.state_dict()
    assert sd == {"n_samples": 10, "n_epochs": 1}
    seen = []
    e.n_samples_ref.attach(seen.append)
    e.load_state_dict({"n_samples": 3, "n_epochs": 2})
    assert (e.n_samples, e.n_epochs, seen) == (3, 2, [])


def test_feature_strict_error_lists_keys_by_path(s):
    """A feature's strict load names missing and unexpected keys with the feature's path."""
    e = Engine(name="trainer")
    with pytest.raises(
        StateDictError,
        match=r"missing keys: engines\.trainer\.n_epochs; unexpected keys: engines\.trainer\.zzz",
    ):
        e.load_state_dict({"n_samples": 1, "zzz": 2})
    e.load_state_dict({"n_samples": 1, "zzz": 2}, strict=False)
    assert e.n_samples == 1


def test_load_validates_counters(s):
    """Restoring a counter goes through its validation: a bad value is an error, not stored."""
    e = Engine(name="trainer")
    with pytest.raises(FrameError, match="non-negative int"):
        e.load_state_dict({"n_samples": -5, "n_epochs": 1})


def test_state_dict_error_is_a_key_error_with_a_readable_message(s):
    """StateDictError is a FrameError and KeyError whose str is the message, not a quoted repr."""
    assert issubclass(StateDictError, FrameError) and issubclass(StateDictError, KeyError)
    build()
    with pytest.raises(KeyError) as info:
        s.load_state_dict({})
    assert not str(info.value).startswith("'")


@pytest.mark.parametrize("bad", [None, [], "sd"])
def test_load_requires_a_dict(s, bad):
    """Loading something that is not a dict is a TypeError naming the type."""
    build()
    with pytest.raises(TypeError, match=f"state_dict must be a dict, got {type(bad).__name__}"):
        s.load_state_dict(bad)


def test_feature_section_must_be_a_dict(s):
    """A feature's section that is not a dict is a TypeError naming the feature."""
    build()
    sd = s.state_dict()
    sd["things"]["thing"] = [1]
    with pytest.raises(TypeError, match=r"the state dict of things\.thing must be a dict, got list"):
        s.load_state_dict(sd)


def test_a_feature_that_saved_nothing_may_be_absent_when_loading():
    """A checkpoint made with a feature that persists nothing (a Run, a plugin) loads strictly into a State
    without it: there is nothing it could have restored. A feature that saved values is still unexpected."""
    from statefire.frame import Feature, StateObject

    class Quiet(Feature):
        category = "plugins"
        note = StateObject(None, persist=False)

    class Loud(Feature):
        category = "plugins"
        level = StateObject(1)

    with State() as s:
        Params(name="hp", lr=0.1)
        Quiet()
        saved = s.state_dict()
        Loud()
        with_values = s.state_dict()
    assert saved["plugins"] == {"quiet": {}}
    with State() as fresh:
        Params(name="hp", lr=0.5)
        fresh.load_state_dict(saved)
        assert fresh.hp.lr == 0.1
        with pytest.raises(StateDictError, match=r"unexpected keys: plugins\.loud"):
            fresh.load_state_dict(with_values)
