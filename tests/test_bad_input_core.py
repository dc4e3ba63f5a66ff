"""Frame mistakes from issue 11 get clear errors naming the thing and the fix (rows kept apart from
tests/test_bad_input.py so that catalogue can grow on other branches without conflicts)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from statefire.frame import Counter, Feature, NameConflictError, State, StateObject
from statefire.features import Engine


def _engine(name: str = "trainer") -> Engine:
    return Engine(name, lambda e, b: b, data=[1, 2, 3])


def state_object_named_name() -> Any:
    class Sensor(Feature):
        category = "sensors"
        name = StateObject("")


def state_object_named_state() -> Any:
    class Machine(Feature):
        category = "machines"
        state = Counter()


def filtered_ref_called_with_another_count() -> Any:
    return _engine().n_epoch_completed_ref(every=2)(every=3)


def run_on_a_removed_feature() -> Any:
    trainer = _engine()
    trainer.remove()
    Engine("evaluator", lambda e, b: b, data=[1], run_on=trainer.n_epoch_completed_ref)


CATALOGUE: list[tuple[Callable[[], Any], type[BaseException], str]] = [
    (state_object_named_name, NameConflictError, r"state object 'name' of Sensor would hide Sensor\.name.*feature's name.*rename it"),
    (state_object_named_state, NameConflictError, r"state object 'state' of Machine would hide Machine\.state.*the State"),
    (filtered_ref_called_with_another_count, ValueError, r"filtered ref \(every=2\) cannot take another every/once filter \(every=3\).*single filter"),
    (run_on_a_removed_feature, ValueError, r"run_on of engine 'evaluator' \(engines\.trainer\.n_epoch_completed\) belongs to no State: its Engine engines\.trainer was removed"),
]


@pytest.mark.parametrize(("mistake", "error", "message"), CATALOGUE, ids=[row[0].__name__ for row in CATALOGUE])
def test_mistake_gets_a_clear_error(mistake, error, message):
    with State():
        with pytest.raises(error) as caught:
            mistake()
    assert re.search(message, str(caught.value)), str(caught.value)
