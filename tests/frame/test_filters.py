"""Filters: every, once, when; Counter semantics that survive a resume; filtered refs."""

from __future__ import annotations

import pytest

from statefire.frame import Counter, Feature, Filter, FilteredRef, StateObject


class Engine(Feature):
    category = "engines"
    n_samples = Counter()
    n_epoch_completed = Counter()
    output = StateObject(persist=False)


def step_samples(engine, n_steps, batch):
    for _ in range(n_steps):
        engine.n_samples += batch


def fired(engine, name, values, **filters):
    """What a recorder attached to `engine.<name>_ref` with `filters` receives while `values` are set in turn."""
    seen = []
    getattr(engine, f"{name}_ref").attach(seen.append, **filters)
    for value in values:
        setattr(engine, name, value)
    return seen


# -- on ordinary state objects: sets since attach --------------------------------


def test_every_on_an_object_counts_sets_since_attach(s):
    """On a non-counter object `every=N` fires on every N-th set after attach."""
    e = Engine()
    e.output = "before attach"
    assert fired(e, "output", range(1, 10), every=3) == [3, 6, 9]


def test_once_on_an_object_fires_on_the_nth_sets(s):
    """On a non-counter object `once=N` fires on the N-th set only; a list gives several."""
    e = Engine()
    single, several = [], []
    e.output_ref.attach(single.append, once=2)
    e.output_ref.attach(several.append, once=[1, 4])
    for i in range(1, 7):
        e.output = i * 10
    assert single == [20]
    assert several == [10, 40]


def test_when_must_also_pass(s):
    """`when=pred(value)` must be true for the callback to fire."""
    assert fired(Engine(), "output", range(6), when=lambda v: v % 2 == 0) == [0, 2, 4]


def test_when_combines_with_every(s):
    """`every` and `when` both apply: the set count advances whether or not `when` passes."""
    assert fired(Engine(), "output", range(1, 9), every=2, when=lambda v: v > 3) == [4, 6, 8]


# -- on counters: the value decides --------------------------------------------


def test_counter_every_fires_once_per_crossed_multiple(s):
    """`n_samples_ref(every=1000)` with batches of 32 fires once each time a multiple of 1000 is crossed."""
    e = Engine()
    seen = []
    e.n_samples_ref.attach(seen.append, every=1000)
    step_samples(e, 100, 32)  # up to 3200
    assert seen == [1024, 2016, 3008]


def test_counter_every_crossing_several_multiples_in_one_set_fires_once(s):
    """A single set that crosses several multiples fires once (a set is one event)."""
    assert fired(Engine(), "n_samples", [35, 39, 40], every=10) == [35, 40]


def test_counter_every_follows_value_not_set_count(s):
    """Sets that do not move the counter across a multiple do not fire, however many."""
    assert fired(Engine(), "n_epoch_completed", [1, 1, 1, 2, 2, 3, 4], every=2) == [2, 4]


def test_counter_every_starts_from_the_value_at_attach(s):
    """A filter attached to a counter already at 1000 does not fire again for 1000."""
    e = Engine()
    e.n_samples = 1000
    assert fired(e, "n_samples", [1500, 2000], every=1000) == [2000]


def test_counter_once_fires_when_first_reaching_or_crossing(s):
    """`once=N` on a counter fires when the value first reaches or crosses N, then never again."""
    e = Engine()
    reach, cross, several = [], [], []
    e.n_samples_ref.attach(reach.append, once=64)
    e.n_samples_ref.attach(cross.append, once=50)
    e.n_samples_ref.attach(several.append, once=[40, 100, 10])
    step_samples(e, 5, 32)  # 32, 64, 96, 128, 160
    assert reach == [64]
    assert cross == [64]
    assert several == [32, 64, 128]


def test_counter_once_does_not_refire_when_the_counter_goes_back(s):
    """A counter `once` target fires once even if the counter is later lowered and raised again."""
    assert fired(Engine(), "n_samples", [10, 0, 20], once=10) == [10]


def test_counter_every_after_silent_load_state_dict_does_not_refire(s):
    """Resume: after a silent `load_state_dict` to 1024, the next set to 1056 does NOT fire every=1000."""
    e = Engine(name="trainer")
    seen = []
    e.n_samples_ref.attach(seen.append, every=1000)
    s.load_state_dict({"engines": {"trainer": {"n_samples": 1024, "n_epoch_completed": 0}}})
    assert seen == []  # the restore itself is silent
    e.n_samples = 1056
    assert seen == []
    step_samples(e, 30, 32)  # 1088 .. 2016
    assert seen == [2016]


def test_counter_filter_attached_before_resume_in_a_fresh_state(s):
    """A resumed run (new state, filters attached, then loaded) fires exactly like the uninterrupted one."""
    uninterrupted = Engine(name="trainer")
    expected = []
    uninterrupted.n_samples_ref.attach(expected.append, every=1000)
    step_samples(uninterrupted, 100, 32)
    checkpoint = s.state_dict()
    # the interrupted run stopped at 1600, checkpointed, and a new process resumed
    with type(s)() as first:
        run = Engine(name="trainer")
        run.n_samples_ref.attach([].append, every=1000)
        step_samples(run, 50, 32)
        saved = first.state_dict()
    assert saved["engines"]["trainer"]["n_samples"] == 1600
    with type(s)() as resumed_state:
        resumed = Engine(name="trainer")
        got = []
        resumed.n_samples_ref.attach(got.append, every=1000)
        resumed_state.load_state_dict(saved)
        step_samples(resumed, 50, 32)
        assert resumed.n_samples == checkpoint["engines"]["trainer"]["n_samples"]
    assert got == [m for m in expected if m > 1600]


def test_counter_filters_after_feature_load_state_dict(s):
    """`feature.load_state_dict` is silent and re-bases counter filters as well."""
    e = Engine()
    every, once = [], []
    e.n_samples_ref.attach(every.append, every=100)
    e.n_samples_ref.attach(once.append, once=150)
    e.load_state_dict({"n_samples": 160, "n_epoch_completed": 0})
    e.n_samples = 170
    e.n_samples = 200
    assert every == [200]
    assert once == []  # 150 was passed while restoring, not crossed by a set


def test_counter_filter_resume_backwards_fires_again(s):
    """Loading an earlier checkpoint re-bases the filter: the next crossings fire again."""
    e = Engine()
    seen = []
    e.n_samples_ref.attach(seen.append, every=100)
    e.n_samples = 150
    e.load_state_dict({"n_samples": 50, "n_epoch_completed": 0})
    e.n_samples = 100
    assert seen == [150, 100]


def test_counter_every_fires_again_after_the_counter_is_reset(s):
    """A counter set back to 0 (a per-epoch count) fires at the same multiples again."""
    assert fired(Engine(), "n_samples", (60, 120, 180, 240, 0, 60, 120, 0, 100), every=100) == [120, 240, 120, 100]


def test_a_filter_keeps_counting_when_callbacks_are_added_and_removed(s):
    """The filter's count belongs to its callback, not to how the object dispatches."""
    e = Engine()
    seen = []
    e.output_ref.attach(seen.append, every=3)
    e.output = 1
    other = e.output_ref.attach(lambda: None)  # from one callback to a loop over two
    e.output = 2
    e.output = 3
    other.remove()  # back to one
    for value in range(4, 10):
        e.output = value
    assert seen == [3, 6, 9]


def test_non_counter_filters_do_not_move_on_silent_sets(s):
    """On ordinary objects, silenced sets are not counted by `every`."""
    e = Engine()
    seen = []
    e.output_ref.attach(seen.append, every=2)
    e.output = 1
    with s.silenced():
        e.output = 2
        e.output = 3
    e.output = 4
    assert seen == [4]


# -- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every": 0}, r"every must be a positive int, got 0"),
        ({"every": -2}, r"every must be a positive int, got -2"),
        ({"every": 1.5}, r"every must be a positive int, got 1\.5"),
        ({"every": True}, r"every must be a positive int, got True"),
        ({"once": 0}, r"once must be a positive int or a list of them, got 0"),
        ({"once": -1}, r"once must be a positive int or a list of them, got -1"),
        ({"once": []}, r"once must be a positive int or a list of them, got \[\]"),
        ({"once": [1, "2"]}, r"once must be a positive int or a list of them, got \[1, '2'\]"),
        ({"once": 2.0}, r"once must be a positive int or a list of them, got 2\.0"),
        ({"every": 2, "once": 4}, r"give every or once, not both \(got every=2, once=4\)"),
        ({"when": 3}, r"when must be a callable taking the value, got 3"),
    ],
)
def test_invalid_filters_raise_value_error_naming_the_argument(s, kwargs, message):
    """Invalid filters raise ValueError naming the argument and value, on attach and on `ref(...)`."""
    e = Engine()
    with pytest.raises(ValueError, match=message):
        e.n_samples_ref.attach(print, **kwargs)
    with pytest.raises(ValueError, match=message):
        e.n_samples_ref(**kwargs)
    assert e.n_samples_ref.handles == ()


# -- filtered refs ------------------------------------------------------------


def test_filtered_ref_attach_applies_its_filter(s):
    """`ref(every=2)` is a filtered ref; attaching to it fires with that filter."""
    e = Engine()
    seen = []
    every_two = e.n_epoch_completed_ref(every=2)
    assert isinstance(every_two, FilteredRef)
    every_two.attach(seen.append)
    for _ in range(5):
        e.n_epoch_completed += 1
    assert seen == [2, 4]


def test_filtered_ref_fields_and_repr(s):
    """A filtered ref exposes the ref behind it, its path, owner, name, value and filter."""
    e = Engine(name="trainer")
    e.n_epoch_completed = 3
    filtered = e.n_epoch_completed_ref(every=2)
    assert filtered.ref == e.n_epoch_completed_ref
    assert filtered.path == "engines.trainer.n_epoch_completed"
    assert filtered.owner is e and filtered.name == "n_epoch_completed"
    assert filtered.value == 3
    assert filtered.filter == Filter(every=2)
    assert repr(filtered) == "<FilteredRef engines.trainer.n_epoch_completed (every=2) = 3>"
    assert e.n_epoch_completed_ref.filter is None and e.n_epoch_completed_ref.ref == e.n_epoch_completed_ref


def test_filtered_refs_compare_by_ref_and_filter(s):
    """Filtered refs with the same ref and filter are equal and hash alike."""
    e = Engine()
    assert e.n_samples_ref(every=2) == e.n_samples_ref(every=2)
    assert hash(e.n_samples_ref(every=2)) == hash(e.n_samples_ref(every=2))
    assert e.n_samples_ref(every=2) != e.n_samples_ref(every=3)
    assert e.n_samples_ref(every=2) != e.n_samples_ref
    assert e.n_samples_ref(once=[3, 1]) == e.n_samples_ref(once=[1, 3])


def test_filtered_ref_combines_with_when_and_priority(s):
    """Attaching to a filtered ref adds `when` and `priority` to its filter."""
    e = Engine()
    order = []
    filtered = e.n_epoch_completed_ref(every=2)
    filtered.attach(lambda v: order.append(("low", v)), when=lambda v: v != 4)
    filtered.attach(lambda v: order.append(("high", v)), priority=1)
    for _ in range(6):
        e.n_epoch_completed += 1
    assert order == [("high", 2), ("low", 2), ("high", 4), ("high", 6), ("low", 6)]


def test_filtered_ref_with_when_and_attach_when_both_apply(s):
    """A filtered ref's `when` and the attach's `when` must both pass."""
    e = Engine()
    seen = []
    e.output_ref(when=lambda v: v > 2).attach(seen.append, when=lambda v: v % 2 == 0)
    for i in range(7):
        e.output = i
    assert seen == [4, 6]


def test_filtered_ref_rejects_a_second_counting_filter(s):
    """`ref(every=2).attach(fn, every=3)` is a ValueError: two counting filters cannot combine."""
    e = Engine()
    with pytest.raises(
        ValueError, match=r"a filtered ref \(every=2\) cannot take another every/once filter \(every=3\)"
    ):
        e.n_samples_ref(every=2).attach(print, every=3)


def test_filtered_ref_decorator_form(s):
    """`@ref(every=N).attach()` works as a decorator."""
    e = Engine()
    seen = []

    @e.output_ref(every=2).attach()
    def on_output(value):
        seen.append(value)

    for i in range(4):
        e.output = i
    assert seen == [1, 3]


def test_filter_repr_describes_it():
    """A filter's repr reads like the arguments that made it."""
    assert repr(Filter(every=3)) == "every=3"
    assert repr(Filter(once=5)) == "once=5"
    assert repr(Filter(once=[5, 2])) == "once=[2, 5]"

    def big(v):
        return v > 1

    assert repr(Filter(when=big)).startswith("when=") and repr(Filter(when=big)).endswith(".big")
    assert Filter().empty and not Filter(every=1).empty
