"""Property-based: any sequence of attach/detach/set fires exactly what a simple model predicts.

The model is written from the documented semantics, independently of the
dispatch code: on ordinary objects filters count sets since attach; on a
Counter `every=N` fires when a multiple of N lies in (previous value, new
value], and `once` targets fire the first time they are reached or crossed;
callbacks run by descending priority, ties in attach order; silenced sets
fire nothing and re-base counter filters; a hold fires each object once with
its last value, in first-set order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from statefire.frame import Counter, Feature, State, StateObject

OBJECTS = ["a", "b", "n"]  # "n" is a Counter
COUNTERS = {"n"}


class Subject(Feature):
    category = "subjects"
    a = StateObject(0)
    b = StateObject(0)
    n = Counter()


def is_even(value):
    return value % 2 == 0


@dataclass
class ModelHandle:
    hid: int
    obj: str
    kind: str  # "none", "every", "once", "when"
    arg: object
    priority: int
    seq: int
    count: int = 0
    last: int = 0
    done: set = field(default_factory=set)

    def passes(self, value, counter):
        if counter:
            last, self.last = self.last, value
            if self.kind == "every":
                return any(m % self.arg == 0 for m in range(last + 1, value + 1))
            if self.kind == "once":
                crossed = {t for t in self.arg if last < t <= value} - self.done
                self.done |= crossed
                return bool(crossed)
        else:
            self.count += 1
            if self.kind == "every":
                return self.count % self.arg == 0
            if self.kind == "once":
                return self.count in self.arg
        if self.kind == "when":
            return is_even(value)
        return True


class Model:
    def __init__(self):
        self.values = {name: 0 for name in OBJECTS}
        self.handles: list[ModelHandle] = []
        self.seq = 0

    def attach(self, hid, obj, kind, arg, priority):
        self.seq += 1
        self.handles.append(ModelHandle(hid, obj, kind, arg, priority, self.seq, last=self.values[obj]))

    def detach(self, hid):
        self.handles = [h for h in self.handles if h.hid != hid]

    def fire(self, obj, value):
        ordered = sorted((h for h in self.handles if h.obj == obj), key=lambda h: (-h.priority, h.seq))
        return [(h.hid, value) for h in ordered if h.passes(value, obj in COUNTERS)]

    def set(self, obj, value):
        self.values[obj] = value
        return self.fire(obj, value)

    def silent_set(self, obj, value):
        self.values[obj] = value
        for h in self.handles:
            if h.obj == obj:
                h.last = value

    def hold(self, sets):
        pending = {}
        for obj, value in sets:
            self.values[obj] = value
            pending[obj] = value  # dict keeps the first-set position
        return [event for obj, value in pending.items() for event in self.fire(obj, value)]


class Listener:
    def __init__(self, hid, log):
        self.hid = hid
        self.log = log

    def on(self, value):
        self.log.append((self.hid, value))


filters = st.one_of(
    st.tuples(st.just("none"), st.none()),
    st.tuples(st.just("every"), st.integers(1, 7)),
    st.tuples(st.just("once"), st.lists(st.integers(1, 40), min_size=1, max_size=3)),
    st.tuples(st.just("when"), st.none()),
)
values = st.integers(0, 60)
operations = st.one_of(
    st.tuples(
        st.just("attach"),
        st.sampled_from(OBJECTS),
        filters,
        st.integers(-2, 2),
        st.sampled_from(["value", "no-value", "method"]),
    ),
    st.tuples(st.just("detach"), st.integers(0, 1000)),
    st.tuples(st.just("set"), st.sampled_from(OBJECTS), values),
    st.tuples(st.just("set"), st.sampled_from(OBJECTS), values),
    st.tuples(st.just("silent_set"), st.sampled_from(OBJECTS), values),
    st.tuples(st.just("hold"), st.lists(st.tuples(st.sampled_from(OBJECTS), values), max_size=5)),
)


def attach_real(subject, hid, obj, kind, arg, priority, style, log, keep):
    ref = getattr(subject, f"{obj}_ref")
    kwargs = {"priority": priority}
    if kind == "every":
        kwargs["every"] = arg
    elif kind == "once":
        kwargs["once"] = list(arg)
    elif kind == "when":
        kwargs["when"] = is_even
    if style == "value":
        fn = lambda value, hid=hid: log.append((hid, value))  # noqa: E731
    elif style == "no-value":
        fn = lambda hid=hid, obj=obj: log.append((hid, getattr(subject, obj)))  # noqa: E731
    else:
        listener = Listener(hid, log)
        keep.append(listener)  # alive: weakly held methods must still fire
        fn = listener.on
    return ref.attach(fn, **kwargs)


@settings(max_examples=400, deadline=None)
@given(st.lists(operations, max_size=40))
def test_random_operations_fire_what_the_model_predicts(ops):
    """Any attach (filters, priorities, callback styles) / detach / set / silent set / hold
    sequence fires exactly the callbacks the model predicts, in the predicted order."""
    with State() as state:
        subject = Subject()
        model = Model()
        log: list[tuple[int, int]] = []
        keep: list[Listener] = []
        live: dict[int, object] = {}
        next_id = 0
        for op in ops:
            log.clear()
            if op[0] == "attach":
                _, obj, (kind, arg), priority, style = op
                if kind == "once":
                    arg = tuple(sorted(set(arg)))
                live[next_id] = attach_real(subject, next_id, obj, kind, arg, priority, style, log, keep)
                model.attach(next_id, obj, kind, arg, priority)
                next_id += 1
                expected = []
            elif op[0] == "detach":
                if not live:
                    continue
                hid = sorted(live)[op[1] % len(live)]
                live.pop(hid).remove()
                model.detach(hid)
                expected = []
            elif op[0] == "set":
                _, obj, value = op
                setattr(subject, obj, value)
                expected = model.set(obj, value)
            elif op[0] == "silent_set":
                _, obj, value = op
                with state.silenced():
                    setattr(subject, obj, value)
                model.silent_set(obj, value)
                expected = []
            else:
                with state.hold():
                    for obj, value in op[1]:
                        setattr(subject, obj, value)
                expected = model.hold(op[1])
            assert log == expected, f"after {op!r}"
            assert subject.values() == model.values
        assert len(state.handles) == len(live)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 2000), st.lists(st.integers(1, 97), min_size=1, max_size=80), st.integers(0, 79))
def test_counter_every_fires_once_per_crossed_multiple_even_across_a_resume(every, steps, cut):
    """For any step sizes, `every=N` on a counter fires at the same values whether or not the run
    was checkpointed and resumed (silently restored) at an arbitrary step."""
    def run(resume_at):
        fired = []
        with State() as state:
            subject = Subject()
            subject.n_ref.attach(fired.append, every=every)
            for i, step in enumerate(steps):
                if i == resume_at:
                    saved = state.state_dict()
                    with State() as resumed:
                        fresh = Subject()
                        fresh.n_ref.attach(fired.append, every=every)
                        resumed.load_state_dict(saved)
                        for later in steps[i:]:
                            fresh.n += later
                    return fired
                subject.n += step
        return fired

    expected, value = [], 0
    for step in steps:
        before, value = value, value + step
        if value // every > before // every:
            expected.append(value)
    assert run(None) == expected
    assert run(cut) == expected
