"""Chart generators: TensorBoard charts for every metric of every engine, with no per-chart code.

`EnginesMetricsComparisonCharts` draws one chart per metric *type* comparing
every engine that has it; `EnginesMetricsCharts` one section per engine
holding all of its metrics; `HParams` sends the state's configuration and
the final metric values to TensorBoard's HParams dashboard. They are
features (category `plugins`) that follow `state.metrics.added_ref`, so
metrics created after them are charted too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from statefire.frame import Counter, Feature, FilteredRef, Ref, as_ref, check
from statefire.features.charts import ScalarChart
from statefire.features import LAYOUT_PRIORITY
from statefire.features.tensorboard import TensorBoard, find_writer, run_of, scalar_value

__all__ = ["EnginesMetricsComparisonCharts", "EnginesMetricsCharts", "HParams", "metric_type"]


def metric_type(metric_name: str, n_identical_metric_name_suffixes: int = 1, engine: str | None = None) -> str:
    """What a metric measures: its name without its engine's name, else its last `n` name parts.

    A metric named after its engine (`<engine>_<what>`, the default name of
    every built-in and ignite metric) measures `<what>`, however many parts
    that has: `top_k_categorical_accuracy`, `confusion_matrix`. A metric
    named otherwise measures the last `n_identical_metric_name_suffixes`
    underscore-separated parts of its name.

    Example:
        >>> metric_type("val_evaluator_top_k_categorical_accuracy", engine="val_evaluator")
        'top_k_categorical_accuracy'
        >>> metric_type("val_evaluator_accuracy")
        'accuracy'
        >>> metric_type("val_top_5_accuracy", 3)
        'top_5_accuracy'
    """
    if engine and metric_name.startswith(f"{engine}_") and len(metric_name) > len(engine) + 1:
        return metric_name[len(engine) + 1 :]
    return "_".join(metric_name.split("_")[-n_identical_metric_name_suffixes:])


def _anchored(tag: str) -> str:
    """A regex matching exactly `tag` and its per-element curves `tag/0`, `tag/1`, ...

    Anchored at both ends: TensorBoard matches tag regexes from the start only.
    """
    return f"^{re.escape(tag)}(/\\d+)?$"


def _axis_label(ref: Ref) -> str:
    """`trainer.n_samples` for `engines.trainer.n_samples`."""
    return f"{getattr(ref.owner, 'name', ref.owner.category)}.{ref.name}"


class _MetricsChartsPlugin(Feature):
    """What both generators share: follow every metric, chart it, keep the layout current."""

    category = "plugins"

    n_charts = Counter(doc="charts created for metrics")

    def __init__(self, *, writer: TensorBoard | str | None, name: str | None) -> None:
        super().__init__(name=name)
        self.writer_choice = writer
        self.charts: list[ScalarChart] = []
        state = self.require_state()
        for metric in list(state.metrics):
            self._add_metric(metric)
        state.metrics.added_ref.attach(self._add_metric, owner=self)
        state.writers.added_ref.attach(self._write_layout, owner=self)

    def _add_metric(self, metric: Any) -> None:
        raise NotImplementedError

    def _categories(self) -> list[Any]:
        raise NotImplementedError

    def _chart(self, metric: Any, x: Ref, tag: str, name: str) -> None:
        for chart in self.charts:
            if chart.run == run_of(metric) and chart.tag == tag:
                raise ValueError(
                    f"{type(self).__name__} {self.name!r} would write metrics {chart.y_ref.owner.name!r} and "
                    f"{metric.name!r} of engine {chart.run!r} to the same tag {tag!r}; name each metric "
                    f"after its engine ({chart.run}_<what it measures>, the default names do), or raise "
                    "n_identical_metric_name_suffixes for names that do not start with their engine's"
                )
        chart = ScalarChart(
            metric.value_ref, x, tag=tag, writer=self.writer_choice, run=run_of(metric), strict=False, name=name
        )
        self.charts.append(chart)
        self.n_charts += 1

    def _write_layout(self) -> None:
        """Write the layout if a writer can be found (else when one is created, or at the first point)."""
        try:
            writer = find_writer(self.state, self.writer_choice, f"plugin {self.name!r}")
        except (RuntimeError, ValueError):
            return  # no writer yet, or an ambiguous choice that the charts will report
        writer.set_layout(self.name, self._categories())

    @property
    def layout(self) -> list[Any]:
        """This plugin's custom-scalars categories (`layout_pb2.Category`)."""
        return self._categories()


class EnginesMetricsComparisonCharts(_MetricsChartsPlugin):
    """One TensorBoard chart per metric type, comparing every engine that has it.

    Metrics that measure the same thing share a chart: the type of a metric
    is its name without its engine's name (`train_evaluator_accuracy` and
    `val_evaluator_accuracy` -> `accuracy`; `val_evaluator_top_k_categorical_accuracy`
    -> `top_k_categorical_accuracy`), and for a name that does not start with
    its engine's, its last `n_identical_metric_name_suffixes` parts
    (`train_acc`, `val_acc` -> `acc`). Each engine's curve goes to its
    own run directory under the metric type as tag, so the curves overlay in
    the Scalars dashboard; a custom-scalars layout adds one Multiline chart
    per type, rewritten as metrics are added. Metrics created after the
    plugin are charted too.

    Args:
        x_axis_ref: the ref giving each point's step, typically
            `state.trainer.n_samples_ref` or `state.trainer.n_epoch_completed_ref`.
        n_identical_metric_name_suffixes: how many trailing name parts make
            the type of a metric whose name does not start with its engine's.
        writer: a `TensorBoard` feature or its name; by default the only one.
        name: the feature's name (default `engines_metrics_comparison_charts`).

    Example:
        >>> import tempfile
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, AverageOutput, TensorBoard
        >>> from statefire.plugins import EnginesMetricsComparisonCharts
        >>> with State() as s, tempfile.TemporaryDirectory() as log_dir:
        ...     trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0, 2.0], n_epochs=3)
        ...     evaluator = Engine("evaluator", lambda engine, batch: 2 * batch, data=[1.0],
        ...                        run_on=trainer.n_epoch_completed_ref)
        ...     charts = EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_samples_ref)
        ...     for engine in (trainer, evaluator):
        ...         _ = AverageOutput(engine=engine, name=f"{engine.name}_output")
        ...     writer = TensorBoard(log_dir)
        ...     _ = trainer.run()
        ...     writer.close()
        ...     print(charts.metric_types, [c.n_written for c in charts.charts])
        {'output': ['trainer', 'evaluator']} [3, 3]
    """

    def __init__(
        self,
        x_axis_ref: Ref | FilteredRef,
        n_identical_metric_name_suffixes: int = 1,
        *,
        writer: TensorBoard | str | None = None,
        name: str | None = None,
    ) -> None:
        who = "EnginesMetricsComparisonCharts"
        self.x_axis_ref = as_ref(x_axis_ref, f"x_axis_ref of {who}").ref
        self.n_identical_metric_name_suffixes = check.positive_int(
            n_identical_metric_name_suffixes, "n_identical_metric_name_suffixes", who
        )
        #: metric type -> the runs (engines) that have it, in order of appearance
        self.metric_types: dict[str, list[str]] = {}
        super().__init__(writer=writer, name=name)

    def _add_metric(self, metric: Any) -> None:
        if not hasattr(metric, "value_ref"):
            return
        kind = metric_type(metric.name, self.n_identical_metric_name_suffixes, run_of(metric))
        self._chart(metric, self.x_axis_ref, kind, f"{self.name}_{metric.name}")
        runs = self.metric_types.setdefault(kind, [])
        runs.append(run_of(metric))
        if len(runs) == 1:  # a new type: a new chart in the layout
            self._write_layout()

    def _categories(self) -> list[Any]:
        from tensorboard.plugins.custom_scalar import layout_pb2

        charts = [
            layout_pb2.Chart(title=kind, multiline=layout_pb2.MultilineChartContent(tag=[_anchored(kind)]))
            for kind in self.metric_types
        ]
        title = f"engines compared (x: {_axis_label(self.x_axis_ref)})"
        return [layout_pb2.Category(title=title, chart=charts)]


class EnginesMetricsCharts(_MetricsChartsPlugin):
    """Per engine, one TensorBoard section holding all of its metrics, against one or more x axes.

    Each metric is written to its engine's run directory under the tag
    `<engine>/<metric>` (the metric's name without the engine prefix, or
    its last `n_identical_metric_name_suffixes` parts when it has no such
    prefix); with several x axes, `/<x feature>.<x object>` is appended.
    The Scalars dashboard groups the tags by engine, and a custom-scalars
    layout adds one category per engine.

    Args:
        x_axes_refs: one ref or a sequence of refs; each gives a chart set.
        n_identical_metric_name_suffixes: how many trailing name parts name
            a metric whose name does not start with its engine's name.
        writer: a `TensorBoard` feature or its name; by default the only one.
        name: the feature's name (default `engines_metrics_charts`).

    Example:
        >>> import tempfile
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, AverageOutput, TensorBoard
        >>> from statefire.plugins import EnginesMetricsCharts
        >>> with State() as s, tempfile.TemporaryDirectory() as log_dir:
        ...     trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0, 2.0], n_epochs=2)
        ...     writer = TensorBoard(log_dir)
        ...     charts = EnginesMetricsCharts(x_axes_refs=[trainer.n_samples_ref, trainer.n_epoch_completed_ref])
        ...     _ = AverageOutput(engine=trainer)
        ...     _ = trainer.run()
        ...     writer.close()
        ...     print([c.tag for c in charts.charts])
        ['trainer/average_output/trainer.n_samples', 'trainer/average_output/trainer.n_epoch_completed']
    """

    def __init__(
        self,
        x_axes_refs: Ref | FilteredRef | Sequence[Ref | FilteredRef],
        n_identical_metric_name_suffixes: int = 1,
        *,
        writer: TensorBoard | str | None = None,
        name: str | None = None,
    ) -> None:
        who = "EnginesMetricsCharts"
        refs = [x_axes_refs] if isinstance(x_axes_refs, (Ref, FilteredRef)) else x_axes_refs
        if isinstance(refs, (str, bytes)) or not isinstance(refs, Iterable):
            raise TypeError(f"x_axes_refs of {who} must be a ref or a list of refs, got {x_axes_refs!r}")
        self.x_axes_refs = [as_ref(r, f"x_axes_refs of {who}").ref for r in refs]
        if not self.x_axes_refs:
            raise ValueError(f"x_axes_refs of {who} must hold at least one ref, got {x_axes_refs!r}")
        if len(set(self.x_axes_refs)) != len(self.x_axes_refs):
            raise ValueError(f"x_axes_refs of {who} holds the same ref twice: {[r.path for r in self.x_axes_refs]}")
        self.n_identical_metric_name_suffixes = check.positive_int(
            n_identical_metric_name_suffixes, "n_identical_metric_name_suffixes", who
        )
        #: engine (run) -> the chart tags of its section, in order of appearance
        self.sections: dict[str, list[str]] = {}
        super().__init__(writer=writer, name=name)

    def metric_label(self, metric: Any) -> str:
        """What the metric is called inside its engine's section."""
        return metric_type(metric.name, self.n_identical_metric_name_suffixes, run_of(metric))

    def _add_metric(self, metric: Any) -> None:
        if not hasattr(metric, "value_ref"):
            return
        run = run_of(metric)
        label = self.metric_label(metric)
        section = self.sections.setdefault(run, [])
        for x in self.x_axes_refs:
            tag = f"{run}/{label}"
            if len(self.x_axes_refs) > 1:
                tag += f"/{_axis_label(x)}"
            self._chart(metric, x, tag, f"{self.name}_{metric.name}_{x.owner.name}_{x.name}")
            section.append(tag)
        self._write_layout()

    def _categories(self) -> list[Any]:
        from tensorboard.plugins.custom_scalar import layout_pb2

        categories = []
        for run, tags in self.sections.items():
            charts = [
                layout_pb2.Chart(title=tag, multiline=layout_pb2.MultilineChartContent(tag=[_anchored(tag)]))
                for tag in tags
            ]
            categories.append(layout_pb2.Category(title=f"{run} metrics", chart=charts))
        return categories


class HParams(Feature):
    """Sends every `Param` of the state and the final metric values to TensorBoard's HParams dashboard.

    When an engine completes a run that no other engine is running inside
    (the trainer's run, not the evaluations within it), the configuration
    (`state.config()`, one hyperparameter per path) and the current value
    of each metric are written to the run directory `<log_dir>/<run>`, the
    metrics as scalars tagged `hparams/<metric name>`. Your own `Params`
    come first, so they are the dashboard's first columns; the engines'
    bookkeeping (`n_epochs`, `epoch_length`) is left out unless asked for. Point `tensorboard
    --logdir` at a directory holding several experiments' log dirs to
    compare them.

    Args:
        metrics: the metrics to report (features or names); by default every
            metric of the state with a numeric value at that time.
        writer: a `TensorBoard` feature or its name; by default the only one.
        run: the run directory of the session, under the writer's `log_dir`.
        engine_params: also report the engines' Params (`engines.<engine>.n_epochs`, ...).
        name: the feature's name (default `hparams_dashboard`).

    Example:
        >>> import tempfile
        >>> from statefire.frame import State, Params
        >>> from statefire.features import Engine, AverageOutput, TensorBoard
        >>> from statefire.plugins import HParams
        >>> with State() as s, tempfile.TemporaryDirectory() as log_dir:
        ...     hp = Params(name="hp", scale=3)
        ...     trainer = Engine("trainer", lambda engine, batch: batch * hp.scale, data=[1.0, 2.0])
        ...     _ = AverageOutput(engine=trainer)
        ...     writer, hparams = TensorBoard(log_dir), HParams()
        ...     _ = trainer.run()
        ...     writer.close()
        ...     print(hparams.n_written, hparams.last_hparams["params.hp.scale"], hparams.last_metrics)
        1 3 {'hparams/trainer_average_output': 4.5}
    """

    category = "plugins"

    n_written = Counter(doc="times the hyperparameters and metrics were written")

    def __init__(
        self,
        metrics: Iterable[Any] | None = None,
        *,
        writer: TensorBoard | str | None = None,
        run: str = "hparams",
        engine_params: bool = False,
        name: str | None = None,
    ) -> None:
        if not isinstance(run, str) or not run or run == ".":
            raise ValueError(f"run of HParams must name a subdirectory, got {run!r}")
        self.metrics = None if metrics is None else list(metrics)
        for metric in self.metrics or ():
            if not isinstance(metric, str) and not hasattr(metric, "value_ref"):
                raise TypeError(f"metrics of HParams must be metric features or their names, got {metric!r}")
        super().__init__(name=name or "hparams_dashboard")
        self.writer_choice = writer
        self.run = run
        self.engine_params = engine_params
        self.last_hparams: dict[str, Any] = {}
        self.last_metrics: dict[str, float] = {}
        state = self.require_state()
        for engine in list(state.engines):
            self._follow_engine(engine)
        state.engines.added_ref.attach(self._follow_engine, owner=self)

    def _follow_engine(self, engine: Any) -> None:
        if not hasattr(engine, "n_run_completed_ref"):
            return
        # Just before the writer's flush on the same event, so the session reaches the disk.
        engine.n_run_completed_ref.attach(self._run_completed, priority=LAYOUT_PRIORITY, owner=self)

    def _run_completed(self) -> None:
        running = [engine for engine in self.require_state().engines if getattr(engine, "running", False)]
        if len(running) <= 1:  # only the engine completing its run: an outermost run
            self.write()

    def _metric_features(self) -> list[Any]:
        if self.metrics is None:
            return list(self.require_state().metrics)
        features = []
        for metric in self.metrics:
            if isinstance(metric, str):
                found = [m for m in self.require_state().metrics if m.name == metric]
                if not found:
                    raise ValueError(
                        f"HParams {self.name!r} reports metric {metric!r}, but the state has no metric of "
                        f"that name; metrics: {[m.name for m in self.require_state().metrics]}"
                    )
                metric = found[0]
            features.append(metric)
        return features

    def hyperparameters(self) -> dict[str, Any]:
        """What the dashboard gets: the free-standing Params first, then components', then engines' if asked."""
        config = self.require_state().config()
        order = {"params": 0, "engines": 2}
        paths = [p for p in config if self.engine_params or not p.startswith("engines.")]
        paths.sort(key=lambda path: order.get(path.split(".", 1)[0], 1))  # stable: keeps creation order within
        return {path: config[path] for path in paths}

    def write(self) -> None:
        """Write the configuration and the metrics' current values now."""
        from torch.utils.tensorboard.summary import hparams as hparams_summaries

        hparams = {path: _hparam_value(value) for path, value in self.hyperparameters().items()}
        metrics: dict[str, float] = {}
        for metric in self._metric_features():
            try:
                metrics[f"hparams/{metric.name}"] = scalar_value(metric.value, metric.value_ref.path)
            except TypeError:
                if self.metrics is not None:
                    raise  # a metric asked for by name must be a number
                # by default only the metrics holding a number: not one that
                # never produced a value, nor a per-class vector

        writer = find_writer(self.state, self.writer_choice, f"plugin {self.name!r}")
        summary_writer = writer.writer(self.run)
        step = self.n_written + 1
        for summary in hparams_summaries(hparams, metrics):
            summary_writer.file_writer.add_summary(summary, step)
        for tag, value in metrics.items():
            summary_writer.add_scalar(tag, value, step)
        self.last_hparams = hparams
        self.last_metrics = metrics
        self.n_written = step


def _hparam_value(value: Any) -> bool | int | float | str:
    """What the HParams dashboard can show: numbers, strings and booleans; anything else as text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "shape", None) in ((), []):
        return value.item()
    return repr(value)
