"""Every priority the built-in peers attach with, in one table, each with its reason.

Callbacks on one ref run by priority, higher first (ties in attach order).
Several peers often share a ref, a trainer's `n_epoch_completed` above all:
the evaluators following it, metrics, charts, a checkpoint. These numbers
put each one after what it reads. A user's callback attaches at 0: after
evaluations and metrics, before flushing and saving. `docs/engines.md` and
`docs/writing-features.md` show `PRIORITIES` (a test keeps them equal).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "CHECKPOINT_PRIORITY",
    "DEFAULT_PRIORITY",
    "FLUSH_PRIORITY",
    "LAYOUT_PRIORITY",
    "METRIC_PRIORITY",
    "PRIORITIES",
    "RUN_ON_PRIORITY",
    "TIMER_START_PRIORITY",
    "TIMER_STOP_PRIORITY",
    "Priority",
    "priority_table",
]

#: An engine following a ref (`run_on`) runs before anything else on it.
RUN_ON_PRIORITY = 100
#: Metrics publish their value after the engines following a ref, before ordinary callbacks.
METRIC_PRIORITY = 50
#: Where a callback attaches unless it says otherwise.
DEFAULT_PRIORITY = 0
#: A `Timer` stops its epoch clock before the evaluations following the epoch end run.
TIMER_STOP_PRIORITY = RUN_ON_PRIORITY + 1
#: A `Timer` starts its epoch clock after every other epoch-start callback.
TIMER_START_PRIORITY = -RUN_ON_PRIORITY - 1
#: Flushing runs after every other callback on an engine's `n_run_completed`.
FLUSH_PRIORITY = -1000
#: The comparison charts write their layout just before the flush.
LAYOUT_PRIORITY = FLUSH_PRIORITY + 1
#: Checkpoints save after every other callback on their trigger, so the file holds their effects.
CHECKPOINT_PRIORITY = -(2**62)


class Priority(NamedTuple):
    """One row of the table: the number, the constant naming it, who attaches, on which ref, and why."""

    value: int
    constant: str
    who: str
    ref: str
    why: str


#: The built-in priorities, highest (first to run) first.
PRIORITIES: tuple[Priority, ...] = (
    Priority(TIMER_STOP_PRIORITY, "TIMER_STOP_PRIORITY", "`Timer`, stopping an epoch", "`engine.n_epoch_completed`",
             "the epoch's time does not include the evaluations that follow it"),
    Priority(RUN_ON_PRIORITY, "RUN_ON_PRIORITY", "an engine's `run_on`", "the ref it follows",
             "evaluations finish before anything on the same ref reads their metrics"),
    Priority(METRIC_PRIORITY, "METRIC_PRIORITY", "a `Metric`'s reset, update and completion",
             "its engine's `n_epoch_started`, its input, `n_epoch_completed`",
             "a metric's `value` is current when ordinary callbacks run"),
    Priority(DEFAULT_PRIORITY, "DEFAULT_PRIORITY", "your callbacks, `ScalarChart`, `EarlyStopping`, handlers", "any",
             "after the values they read are set"),
    Priority(TIMER_START_PRIORITY, "TIMER_START_PRIORITY", "`Timer`, starting an epoch", "`engine.n_epoch_started`",
             "every other epoch-start callback is not timed"),
    Priority(LAYOUT_PRIORITY, "LAYOUT_PRIORITY", "the comparison charts' layout", "`engine.n_run_completed`",
             "the layout is written before the flush below"),
    Priority(FLUSH_PRIORITY, "FLUSH_PRIORITY", "`TensorBoard`'s flush", "`engine.n_run_completed`",
             "after every chart wrote its last point"),
    Priority(CHECKPOINT_PRIORITY, "CHECKPOINT_PRIORITY", "`Checkpoint`'s save", "its trigger",
             "saves after every other callback, so the file holds their effects"),
)


def priority_table() -> str:
    """`PRIORITIES` as the Markdown table the docs show.

    Example:
        >>> from statefire.features import priority_table
        >>> print(priority_table().splitlines()[0])
        | priority | who | on which ref | why |
    """
    lines = ["| priority | who | on which ref | why |", "| ---: | --- | --- | --- |"]
    for row in PRIORITIES:
        value = "-2<sup>62</sup>" if row.value == CHECKPOINT_PRIORITY else str(row.value)
        lines.append(f"| {value} | {row.who} (`{row.constant}`) | {row.ref} | {row.why} |")
    return "\n".join(lines)
