"""IgniteMetric: any `ignite.metrics` metric as a statefire peer."""

from __future__ import annotations

from typing import Any

from statefire.frame import FilteredRef, Ref
from statefire.frame._names import snake_case

from .metrics import Metric

__all__ = ["IgniteMetric"]


class IgniteMetric(Metric):
    """Brings an `ignite.metrics.Metric` in: ignite computes, statefire wires.

    The ignite metric's own `output_transform` is applied to each input, as
    ignite would. Default name: `<engine>_<ignite class in snake_case>`.
    Composite metrics (`Fbeta`, arithmetic on metrics) are ignite
    `MetricsLambda`s, which do not say what they compute: name them,
    `IgniteMetric(Fbeta(1.0), engine=evaluator, name="val_evaluator_f1")`.

    Example:
        >>> import torch
        >>> from ignite.metrics import Precision
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, IgniteMetric
        >>> with State() as s:
        ...     batches = [(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))]
        ...     evaluator = Engine("evaluator", lambda e, batch: batch, data=batches)
        ...     precision = IgniteMetric(Precision(average=True), engine=evaluator)
        ...     _ = evaluator.run()
        ...     print(precision.name, round(float(precision.value), 3))
        evaluator_precision 0.5
    """

    def __init__(
        self,
        metric: Any,
        *,
        engine: Any = None,
        input_ref: Ref | FilteredRef | None = None,
        name: str | None = None,
        mode: str = "epoch",
    ) -> None:
        if not all(hasattr(metric, m) for m in ("reset", "update", "compute")):
            raise TypeError(
                f"IgniteMetric wraps an ignite.metrics.Metric instance, got {metric!r}; "
                "for your own metric, subclass features.Metric"
            )
        self.metric = metric
        super().__init__(engine=engine, input_ref=input_ref, name=name, mode=mode)

    def _default_suffix(self) -> str:
        return snake_case(type(self.metric).__name__)

    def reset(self) -> None:
        self.metric.reset()

    def update(self, value: Any) -> None:
        transform = getattr(self.metric, "_output_transform", None)
        self.metric.update(value if transform is None else transform(value))

    def compute(self) -> Any:
        return self.metric.compute()

    def state_dict(self) -> dict[str, Any]:
        state_dict = super().state_dict()
        if hasattr(self.metric, "state_dict"):
            state_dict["accumulated"] = dict(self.metric.state_dict())
        return state_dict

    def _load(self, state_dict: dict[str, Any]) -> None:
        accumulated = state_dict.get("accumulated")
        super()._load({k: v for k, v in state_dict.items() if k != "accumulated"})
        if accumulated and hasattr(self.metric, "load_state_dict"):
            self.metric.load_state_dict(accumulated)
