"""IgniteMetric: any `ignite.metrics` metric as a statefire peer."""

from __future__ import annotations

from typing import Any

from statefire.frame import FilteredRef, Ref, snake_case

from .metrics import Metric

__all__ = ["IgniteMetric"]


class IgniteMetric(Metric):
    """Brings an `ignite.metrics.Metric` in: ignite computes, statefire wires.

    The ignite metric's own `output_transform` is applied to each input, as
    ignite would. Default name: `<engine>_<ignite class in snake_case>`.
    Composite metrics are ignite `MetricsLambda`s, which do not say what
    they compute; those ignite builds (`Fbeta`, `IoU`, `mIoU`,
    `DiceCoefficient`, `JaccardIndex` and the confusion-matrix accuracy,
    precision and recall) are recognised by their structure and named
    after it (`<engine>_fbeta`, `<engine>_iou`, ...); a lambda of a named
    function takes the function's name. Name any other composite yourself:
    `IgniteMetric(precision * recall, engine=evaluator, name="val_evaluator_pr")`.

    Which way is better (`higher_is_better`, read by `EarlyStopping` and a
    best-model `Checkpoint`) comes from a table of ignite's metrics
    (`Accuracy`, `Precision`, `Fbeta`, `ROC_AUC`, ... higher; `Loss`, `MeanSquaredError`,
    `MeanAbsoluteError`, ... lower), or from `higher_is_better=` when given.

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

    #: ignite's own state dict of the metric, saved where `Metric` saves its accumulators.
    extra_state = {"accumulated": "metric"}

    def __init__(
        self,
        metric: Any,
        *,
        engine: Any = None,
        input_ref: Ref | FilteredRef | None = None,
        name: str | None = None,
        mode: str = "epoch",
        higher_is_better: bool | None = None,
    ) -> None:
        if not all(hasattr(metric, m) for m in ("reset", "update", "compute")):
            raise TypeError(
                f"IgniteMetric wraps an ignite.metrics.Metric instance, got {metric!r}; "
                "for your own metric, subclass features.Metric"
            )
        if higher_is_better is not None and not isinstance(higher_is_better, bool):
            raise TypeError(f"higher_is_better of IgniteMetric must be True, False or None, got {higher_is_better!r}")
        self.metric = metric
        self._known = _known_composite(metric)
        self.higher_is_better = _ignite_direction(metric, self._known) if higher_is_better is None else higher_is_better
        super().__init__(engine=engine, input_ref=input_ref, name=name, mode=mode)

    def _default_suffix(self) -> str:
        if self._known is not None:
            return self._known[0]
        function = getattr(self.metric, "function", None)
        if _is_metrics_lambda(self.metric) and function is not None and _is_named(function):
            return snake_case(function.__name__.strip("_")) or "metrics_lambda"
        return snake_case(type(self.metric).__name__)

    def reset(self) -> None:
        self.metric.reset()

    def update(self, value: Any) -> None:
        transform = getattr(self.metric, "_output_transform", None)
        self.metric.update(value if transform is None else transform(value))

    def compute(self) -> Any:
        return self.metric.compute()



# -- which way is better -----------------------------------------------------------

#: ignite metric classes (by class name, found along the MRO of ignite's own
#: classes) and whether a higher value is better. Not listed: unknown (mode= needed).
IGNITE_DIRECTIONS: dict[str, bool] = {
    **dict.fromkeys(
        (
            "Accuracy", "Precision", "Recall", "TopKCategoricalAccuracy", "ROC_AUC", "AveragePrecision",
            "MeanAveragePrecision", "CohenKappa", "MatthewsCorrCoef", "R2Score", "PearsonCorrelation",
            "SpearmanRankCorrelation", "KendallRankCorrelation", "PSNR", "SSIM", "Bleu", "Rouge", "RougeN",
            "RougeL", "InceptionScore", "CosineSimilarity", "HitRate", "NDCG", "SilhouetteScore",
            "CalinskiHarabaszScore",
        ),
        True,
    ),
    **dict.fromkeys(
        (
            "Loss", "MeanSquaredError", "RootMeanSquaredError", "MeanAbsoluteError", "MeanPairwiseDistance",
            "MaximumAbsoluteError", "MedianAbsoluteError", "MedianAbsolutePercentageError",
            "MedianRelativeAbsoluteError", "MeanAbsoluteRelativeError", "FractionalAbsoluteError",
            "GeometricMeanAbsoluteError", "GeometricMeanRelativeAbsoluteError", "CanberraMetric",
            "ManhattanDistance", "WaveHedgesDistance", "FID", "CharacterErrorRate", "Perplexity",
            "DaviesBouldinScore", "KLDivergence", "JSDivergence", "MaximumMeanDiscrepancy",
        ),
        False,
    ),
}  # fmt: skip


def _ignite_direction(metric: Any, known: tuple[str, bool] | None) -> bool | None:
    if known is not None:
        return known[1]
    for cls in type(metric).__mro__:
        if cls.__module__.startswith("ignite.") and cls.__name__ in IGNITE_DIRECTIONS:
            return IGNITE_DIRECTIONS[cls.__name__]
        if cls.__name__ == "MetricsLambda":
            return None  # a composite: its parts' directions say nothing about the result
    return None


# -- what a MetricsLambda computes -----------------------------------------------------


def _is_metrics_lambda(metric: Any) -> bool:
    return any(cls.__name__ == "MetricsLambda" and cls.__module__.startswith("ignite.") for cls in type(metric).__mro__)


def _is_named(function: Any) -> bool:
    """A function with a name of its own (not a lambda, not ignite's attribute wrapper)."""
    name = getattr(function, "__name__", "<lambda>")
    return name != "<lambda>" and ".__getattr__.<locals>." not in getattr(function, "__qualname__", "")


def _signature(metric: Any) -> Any:
    """The structure of a MetricsLambda tree: its operations and the classes of its leaves, not its constants."""
    if _is_metrics_lambda(metric):
        function = metric.function
        key = getattr(function, "__qualname__", repr(function))
        code = getattr(function, "__code__", None)
        if code is not None and "attr" in code.co_freevars and function.__closure__:
            key += ":" + str(function.__closure__[code.co_freevars.index("attr")].cell_contents)
        args = tuple(_signature(a) for a in metric.args)
        kwargs = tuple(sorted((k, _signature(v)) for k, v in metric.kwargs.items()))
        return (key, args, kwargs)
    if hasattr(metric, "update") and hasattr(metric, "compute"):
        return type(metric).__name__
    return "constant"


_KNOWN: list[tuple[Any, str, bool]] | None = None


def _known_signatures() -> list[tuple[Any, str, bool]]:
    """(structure, name, higher is better) of the composites ignite builds, from the installed ignite."""
    global _KNOWN
    if _KNOWN is None:
        from ignite.metrics import ConfusionMatrix, DiceCoefficient, Fbeta, IoU, JaccardIndex, mIoU
        from ignite.metrics.confusion_matrix import cmAccuracy, cmPrecision, cmRecall

        cm = ConfusionMatrix(2)
        builders = [
            ("fbeta", [Fbeta(1.0), Fbeta(1.0, average=False)]),
            ("miou", [mIoU(cm), mIoU(cm, ignore_index=0)]),
            ("iou", [IoU(cm), IoU(cm, ignore_index=0)]),
            ("jaccard_index", [JaccardIndex(cm), JaccardIndex(cm, ignore_index=0)]),
            ("dice_coefficient", [DiceCoefficient(cm), DiceCoefficient(cm, ignore_index=0)]),
            ("accuracy", [cmAccuracy(cm)]),
            ("precision", [cmPrecision(cm, True), cmPrecision(cm, False)]),
            ("recall", [cmRecall(cm, True), cmRecall(cm, False)]),
        ]
        _KNOWN = [(_signature(m), name, True) for name, metrics in builders for m in metrics]
    return _KNOWN


def _known_composite(metric: Any) -> tuple[str, bool] | None:
    """(name, higher is better) of a MetricsLambda ignite builds (`Fbeta`, `IoU`, ...), or None."""
    if not _is_metrics_lambda(metric):
        return None
    signature = _signature(metric)
    for known, name, higher in _known_signatures():
        if known == signature:
            return name, higher  # the first match wins: JaccardIndex is built as IoU, and is one
    return None
