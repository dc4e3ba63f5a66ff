"""The validators of `statefire.frame.check`: one signature, one wording."""

from __future__ import annotations

import math

import pytest

from statefire.frame import Counter, Feature, State, check


class Loop(Feature):
    category = "engines"
    n_steps = Counter()


@pytest.mark.parametrize("value", [0, -1, 1.5, 2.0, True, "3", None])
def test_positive_int_refuses_what_is_not_a_whole_number_above_zero(value):
    with pytest.raises(ValueError) as raised:
        check.positive_int(value, "every", "ProgressBar")
    assert str(raised.value) == f"every of ProgressBar must be a positive int, got {value!r}"


def test_validators_return_what_they_accept():
    assert check.positive_int(3, "every", "x") == 3
    assert check.non_negative_int(0, "purge_step", "x") == 0
    assert check.positive_number(0.5, "lr", "x") == 0.5
    assert check.boolean(False, "strict", "x") is False
    assert check.one_of("min", "max")("max", "mode", "x") == "max"
    assert check.optional(check.positive_int)(None, "n_saved", "x") is None
    assert check.pipe(check.positive_int, check.one_of(1, 2))(2, "n", "x") == 2


@pytest.mark.parametrize(
    ("validator", "value", "error", "message"),
    [
        (check.non_negative_int, -1, ValueError, "n of w must be a non-negative int, got -1"),
        (check.positive_number, math.nan, ValueError, "n of w must be a positive number, got nan"),
        (check.positive_number, False, ValueError, "n of w must be a positive number, got False"),
        (check.boolean, 1, TypeError, "n of w must be True or False, got 1"),
        (check.one_of("min", "max"), "low", ValueError, "n of w must be one of 'min', 'max', got 'low'"),
        (check.one_of(1, 2), True, ValueError, "n of w must be one of 1, 2, got True"),
        (check.instance_of(int, "an int"), "3", TypeError, "n of w must be an int, got str: '3'"),
        (check.optional(check.positive_int), 0, ValueError, "n of w must be a positive int, got 0"),
    ],
)
def test_each_error_names_the_argument_its_owner_and_the_value(validator, value, error, message):
    with pytest.raises(error) as raised:
        validator(value, "n", "w")
    assert str(raised.value) == message


def test_same_state_accepts_refs_and_features_of_the_state_only():
    with State():
        here = Loop(name="here")
        judge = Loop(name="judge")
        same = check.same_state(judge)
        ref = here.n_steps_ref
        assert same(ref, "trigger", "judge") is ref
        assert same(here, "engine", "judge") is here
        assert same(here.n_steps_ref(every=2), "trigger", "judge") is not None
        with State():
            there = Loop(name="there")
        with pytest.raises(ValueError, match=r"^trigger of judge \(engines\.there\.n_steps\) belongs to another State"):
            same(there.n_steps_ref, "trigger", "judge")
        with pytest.raises(ValueError, match=r"^engine of judge \(engines\.there\) belongs to another State"):
            same(there, "engine", "judge")
        here.remove()
        with pytest.raises(ValueError, match=r"belongs to no State: its Loop engines\.here was removed"):
            same(here.n_steps_ref, "trigger", "judge")
