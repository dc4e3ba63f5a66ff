"""What the handlers that judge training progress share (early stopping, best-model checkpoints).

Two rules, each in one place:

- **Which way is better.** A metric declares `higher_is_better` (True,
  False, or None for not known); a handler watching its `value` takes its
  default `mode` from it, and a score of unknown direction needs `mode=`.
- **Which evaluations count.** Only those the training triggered: an
  evaluator run by its `run_on` while the engine at the root of the
  `run_on` chain (the trainer) runs. Running the validation evaluator by
  hand, as Lightning's `trainer.validate()` does, measures without
  judging: no patience spent, no best file written.

Torch-free, like the engine.
"""

from __future__ import annotations

from typing import Any

from statefire.frame import FilteredRef, Ref

from .engine import Engine, engine_behind

__all__ = ["score_direction", "resolve_mode", "training_engine", "in_training"]

_MODES = ("max", "min")


def score_direction(ref: Ref | FilteredRef) -> bool | None:
    """True when a higher value of `ref` is better, False when a lower one is, None when not known.

    Known for the `value` of a feature declaring `higher_is_better` (every
    metric does: `Accuracy` True, `Loss` False, ignite metrics by a table).
    """
    if ref.name != "value":
        return None
    direction = getattr(ref.owner, "higher_is_better", None)
    return direction if isinstance(direction, bool) else None


def resolve_mode(mode: str | None, ref: Ref | FilteredRef, who: str) -> str:
    """`mode` if given, else `"max"` or `"min"` from the direction of `ref`'s metric.

    Raises:
        ValueError: `mode` is neither None, "max" nor "min", or it is None
            and the direction of `ref` is not known.
    """
    if mode is not None:
        if mode not in _MODES:
            raise ValueError(
                f"mode of {who} must be 'max' or 'min', got {mode!r} (or leave it out: the metric's direction)"
            )
        return mode
    direction = score_direction(ref)
    if direction is None:
        owner = ref.owner
        what = (
            f"{type(owner).__name__} {getattr(owner, 'name', '')!r} does not say whether higher is better "
            "(its higher_is_better is None)"
            if ref.name == "value"
            else f"{ref.path} is not a metric's value"
        )
        raise ValueError(
            f"{who} needs mode=...: {what}, so which scores of {ref.path} are best is not known; "
            "pass mode='max' (higher is better) or mode='min' (lower is better)"
        )
    return "max" if direction else "min"


def training_engine(ref: Ref | FilteredRef) -> Engine | None:
    """The engine at the root of the `run_on` chain behind `ref` (e.g. the trainer), or None.

    For a validation metric: its evaluator follows the trainer, which
    follows nothing, so the trainer. For a ref no engine is behind: None.
    """
    engine = engine_behind(ref.owner)
    seen: set[int] = set()
    while engine is not None and engine.run_on is not None and id(engine) not in seen:
        seen.add(id(engine))  # engines following each other in a loop: stop at the first repeat
        upstream = engine_behind(engine.run_on.owner)
        if upstream is None:
            break
        engine = upstream
    return engine


def in_training(ref: Ref | FilteredRef, trainer: Any = None) -> bool:
    """Whether `ref` fires inside a training: `trainer` (default: `training_engine(ref)`) is running.

    True when no engine is behind `ref`: there is no run to tell by-hand from.
    """
    root = trainer if trainer is not None else training_engine(ref)
    return root is None or bool(root.running)
