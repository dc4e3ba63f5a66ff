"""Argument validators of one signature, `validator(value, argument, who) -> value`.

Every feature and plugin checks its arguments with these, so a bad value
reads the same everywhere: ``"<argument> of <who> must be ..., got <value!r>"``.
A validator returns the value it accepts (so it can be assigned in one
line) and raises `TypeError` or `ValueError` otherwise. `one_of`,
`instance_of`, `optional` and `same_state` make validators; `pipe` chains them.

Example:
    >>> from statefire.frame import check
    >>> check.positive_int(3, "every", "ProgressBar")
    3
    >>> check.optional(check.positive_int)(None, "n_saved", "Checkpoint") is None
    True
    >>> check.one_of("min", "max")("low", "mode", "EarlyStopping")
    Traceback (most recent call last):
    ...
    ValueError: mode of EarlyStopping must be one of 'min', 'max', got 'low'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .refs import FilteredRef, Ref

if TYPE_CHECKING:
    from .feature import Feature

__all__ = [
    "Validator",
    "boolean",
    "instance_of",
    "non_negative_int",
    "one_of",
    "optional",
    "pipe",
    "positive_int",
    "positive_number",
    "same_state",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Validator(Protocol[T_co]):
    """A function `(value, argument, who) -> value` raising a clear error for a bad value."""

    def __call__(self, value: Any, argument: str, who: str, /) -> T_co: ...


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value: Any, argument: str, who: str) -> int:
    """`value` if it is an int above 0 (`True` is not an int here), else `ValueError`."""
    if not _whole(value) or value <= 0:
        raise ValueError(f"{argument} of {who} must be a positive int, got {value!r}")
    return int(value)


def non_negative_int(value: Any, argument: str, who: str) -> int:
    """`value` if it is an int of 0 or more, else `ValueError`."""
    if not _whole(value) or value < 0:
        raise ValueError(f"{argument} of {who} must be a non-negative int, got {value!r}")
    return int(value)


def positive_number(value: Any, argument: str, who: str) -> float:
    """`value` if it is a real number above 0 (not a bool, not NaN), else `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{argument} of {who} must be a positive number, got {value!r}")
    return value


def boolean(value: Any, argument: str, who: str) -> bool:
    """`value` if it is `True` or `False` (not a truthy stand-in such as 1 or "yes"), else `TypeError`."""
    if not isinstance(value, bool):
        raise TypeError(f"{argument} of {who} must be True or False, got {value!r}")
    return value


def one_of(*choices: Any) -> Validator[Any]:
    """A validator accepting exactly one of `choices`."""
    shown = ", ".join(repr(c) for c in choices)

    def validate(value: Any, argument: str, who: str) -> Any:
        if not any(value == c and type(value) is type(c) for c in choices):
            raise ValueError(f"{argument} of {who} must be one of {shown}, got {value!r}")
        return value

    return validate


def instance_of(kind: type[T] | tuple[type, ...], what: str) -> Validator[T]:
    """A validator accepting instances of `kind`; `what` names it for people (e.g. "an Engine")."""

    def validate(value: Any, argument: str, who: str) -> T:
        if not isinstance(value, kind):
            raise TypeError(f"{argument} of {who} must be {what}, got {type(value).__name__}: {value!r}")
        return value  # type: ignore[return-value]  # a tuple `kind` gives no single T

    return validate


def optional(validator: Validator[T]) -> Validator[T | None]:
    """`validator`, letting `None` through unchanged."""

    def validate(value: Any, argument: str, who: str) -> T | None:
        return None if value is None else validator(value, argument, who)

    return validate


def pipe(*validators: Validator[Any]) -> Validator[Any]:
    """The validators one after the other, each given what the previous returned."""

    def validate(value: Any, argument: str, who: str) -> Any:
        for validator in validators:
            value = validator(value, argument, who)
        return value

    return validate


def same_state(feature: Feature) -> Validator[Any]:
    """A validator accepting a ref or a feature of `feature`'s State: the one cross-State check.

    A ref (or feature) of another State, or of a feature removed from its
    State, would be wired to something that never runs with `feature`;
    refusing it at construction says so where the mistake was made.
    """

    def validate(value: Any, argument: str, who: str) -> Any:
        owner = value.owner if isinstance(value, (Ref, FilteredRef)) else value
        other = getattr(owner, "state", None)
        if other is feature.state:
            return value
        path = getattr(value, "path", repr(value))
        if other is None:
            raise ValueError(
                f"{argument} of {who} ({path}) belongs to no State: its {type(owner).__name__} "
                f"{getattr(owner, 'path', '')} was removed from its State; use a feature that is in "
                "the State (create it again if it was removed on purpose)"
            )
        raise ValueError(
            f"{argument} of {who} ({path}) belongs to another State; "
            "create both inside the same `with State():` block"
        )

    return validate

