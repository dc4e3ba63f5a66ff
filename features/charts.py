"""Charts: peers that write a state object against another to a writer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from statefire.frame import Counter, Feature, FilteredRef, Ref, State, as_ref, check

from ._warnings import warn_user
from .clock import Clock
from .engine import engine_behind
from .tensorboard import TensorBoard, find_writer, run_of, scalar_values, step_value

__all__ = ["ScalarChart", "ModelCharts"]


class _Chart(Feature):
    """What every chart shares: its category, and a writer found at the first write."""

    category = "charts"

    x_ref: Ref
    _writer_choice: TensorBoard | str | None
    _writer: TensorBoard | None

    def _choose_writer(self, writer: TensorBoard | str | None) -> None:
        self._writer_choice = writer
        self._writer = writer if isinstance(writer, TensorBoard) else None

    @property
    def writer(self) -> TensorBoard:
        """The writer this chart writes to (looked up on first use)."""
        if self._writer is None:
            self._writer = find_writer(self.state, self._writer_choice, f"chart {self.name!r}")
        return self._writer

    def _step(self) -> int:
        """The current value of `x_ref` as a TensorBoard step."""
        owner = self.x_ref.owner
        if isinstance(owner, Clock):
            owner.refresh()  # a clock is read, not followed: bring it up to date first
        return step_value(self.x_ref.value, self.x_ref.path)


class ScalarChart(_Chart):
    """Writes `y` against the current value of `x` every time `y` fires (or `trigger` does).

    A number is one curve; a 1-D value (a per-class metric such as
    `Precision(average=False)`) is one curve per element, tagged
    `<tag>/0`, `<tag>/1`, ...

    A value set inside an engine's iteration (its `output`, an output
    handler's, a per-batch metric's) is written when that iteration
    completes, at the x of its own iteration: `n_samples` moves after
    `output` is set, and a point written at once would sit one batch behind.

    The point goes to the run directory of `y`'s engine (the engine itself,
    a metric's engine, or the engine behind a chain of output handlers), so
    the same tag from several engines overlays in TensorBoard. Tensors are read as Python floats when written, never
    before. The writer is looked up at the first write, so the chart may be
    created before the `TensorBoard` feature.

    Args:
        y_ref: the ref to plot (a filtered ref, `ref(every=10)`, writes only
            when the filter passes).
        x_ref: the ref whose current value is the step (an int: a counter
            such as `trainer.n_samples_ref`, or a `Clock`'s
            `seconds_ref`/`milliseconds_ref` for wall time, read fresh).
        trigger: when to write `y`'s current value, if not when `y`
            fires: `trainer.n_iteration_completed_ref(every=100)` logs the
            loss every 100 iterations, after the iteration's counters (the
            x axis) moved on.
        tag: the curve's tag; by default `y_ref`'s path with `/`
            (`metrics/val_evaluator_accuracy/value`).
        writer: a `TensorBoard` feature or its name; by default the only
            one in the state.
        run: the run directory under the writer's `log_dir`; by default
            the name of `y`'s engine, else of `y`'s feature.
        strict: with False, a value that cannot be charted (a matrix, a
            string) is skipped with one warning instead of raising; the
            chart plugins use this, so an automatic chart never stops a
            training.
        name: the feature's name; by default `<y feature>_<y object>_chart`
            (`_2`, `_3`, ... for more charts of the same ref).

    Raises:
        TypeError: when a written value is neither a number nor a 1-D value
            (naming the ref; unless `strict=False`), or the x value is not
            a whole number.
        ValueError: when another chart already writes the same tag in the
            same run.

    Example:
        >>> import tempfile
        >>> from statefire.frame import State
        >>> from statefire.features import Engine, AverageOutput, ScalarChart, TensorBoard
        >>> with State() as s, tempfile.TemporaryDirectory() as log_dir:
        ...     trainer = Engine("trainer", lambda engine, batch: batch / 2, data=[1, 2, 3, 4], n_epochs=2)
        ...     average = AverageOutput(engine=trainer)
        ...     chart = ScalarChart(average.value_ref, trainer.n_samples_ref)
        ...     writer = TensorBoard(log_dir)
        ...     _ = trainer.run()
        ...     writer.close()
        ...     print(chart.name, chart.run, chart.tag, chart.n_written)
        trainer_average_output_value_chart trainer metrics/trainer_average_output/value 2
    """

    n_written = Counter(doc="points written")

    def __init__(
        self,
        y_ref: Ref | FilteredRef,
        x_ref: Ref | FilteredRef,
        *,
        trigger: Ref | FilteredRef | None = None,
        tag: str | None = None,
        writer: TensorBoard | str | None = None,
        run: str | None = None,
        strict: bool = True,
        name: str | None = None,
    ) -> None:
        y = as_ref(y_ref, "y_ref of ScalarChart")
        if trigger is not None:
            trigger = as_ref(trigger, "trigger of ScalarChart")
            if isinstance(y, FilteredRef):
                raise ValueError(
                    f"ScalarChart takes a filter on y_ref ({y!r}) or a trigger ({trigger.path}), not both; "
                    "filter the trigger"
                )
        x = as_ref(x_ref, "x_ref of ScalarChart").ref  # read, not followed: its filter means nothing
        if tag is not None and (not isinstance(tag, str) or not tag):
            raise TypeError(f"tag of ScalarChart must be a non-empty str, got {tag!r}")
        if run is not None and (not isinstance(run, str) or not run):
            raise TypeError(f"run of ScalarChart must be a non-empty str, got {run!r}")
        if name is None:  # charts of one ref against several axes are common: number them
            name = State.current().free_name(f"{_feature_name(y.owner)}_{y.name}_chart")
        super().__init__(name=name)
        same_state = check.same_state(self)
        for ref, argument in ((y, "y_ref"), (x, "x_ref"), (trigger, "trigger")):
            check.optional(same_state)(ref, argument, f"ScalarChart {self.name!r}")
        self.y_ref = y
        self.x_ref = x
        self.tag = tag or y.path.replace(".", "/")
        self.run = run or run_of_ref(y)
        self._choose_writer(writer)
        self.strict = strict
        #: why the values of `y` were skipped (strict=False), or None
        self.skipped: str | None = None
        self._check_unique_curve()
        self._engine = engine = engine_behind(y.owner)
        self._held: tuple[Any] | None = None  # a value set mid-iteration, written when the iteration completes
        if trigger is not None:
            trigger.attach(self._write_current, owner=self)
        elif engine is None:
            y.attach(self.write, owner=self)
        else:
            y.attach(self._write_or_hold, owner=self)
            engine.n_iteration_completed_ref.attach(self._write_held, owner=self)
        self.trigger = trigger

    def write(self, value: Any) -> None:
        """Write `value` at the current value of `x` (what happens when `y` fires)."""
        try:
            y = scalar_values(value, self.y_ref.path)
        except TypeError as error:
            if self.strict:
                raise
            if self.skipped is None:
                self.skipped = str(error)
                warn_user(f"chart {self.name!r} skips what it cannot chart: {error}")
            return
        step = self._step()
        if isinstance(y, float):
            self.writer.add_scalar(self.run, self.tag, y, step)
        else:
            for index, element in enumerate(y):
                self.writer.add_scalar(self.run, f"{self.tag}/{index}", element, step)
        self.n_written += 1

    def _write_current(self) -> None:
        self.write(self.y_ref.value)

    def _write_or_hold(self, value: Any) -> None:
        engine = self._engine  # attached only when there is one
        if engine is not None and engine.n_iteration_started > engine.n_iteration_completed:  # inside an iteration: x has not moved yet
            self._held = (value,)
        else:
            self.write(value)

    def _write_held(self) -> None:
        if self._held is not None:
            (value,) = self._held
            self._held = None
            self.write(value)

    def _check_unique_curve(self) -> None:
        for other in self.require_state().charts:
            if other is self or not isinstance(other, ScalarChart):
                continue
            if other.run == self.run and other.tag == self.tag and _same_writer(other, self):
                raise ValueError(
                    f"chart {other.name!r} already writes tag {self.tag!r} in run {self.run!r} "
                    f"({other.y_ref.path} against {other.x_ref.path}); pass tag=... to plot "
                    f"{self.y_ref.path} against {self.x_ref.path} as another curve"
                )


class ModelCharts(_Chart):
    """Histograms and norms of a model's weights and gradients, each time `trigger` fires.

    ignite's `WeightsHistHandler`, `GradsHistHandler`, `WeightsScalarHandler`
    and `GradsScalarHandler` in one feature, with ignite's tags: for every
    parameter `<p>` (`fc1.weight` becomes `fc1/weight`, as ignite writes it)
    it writes the histograms `weights/<p>` and `grads/<p>` and the scalars
    `weights_norm/<p>` and `grads_norm/<p>` (L2 norms), at the current value
    of `x_ref`, so dashboards and tag filters made for ignite carry over.
    Gradients are read as the last backward pass left them, so trigger on an
    iteration's or an epoch's completion; a parameter without a gradient is
    skipped.

    Args:
        model: a `torch.nn.Module` or its `Model` component.
        trigger: when to write, e.g. `trainer.n_epoch_completed_ref` or
            `trainer.n_iteration_completed_ref(every=100)`.
        x_ref: the step; by default the trigger itself (a counter).
        histograms: write the histograms (the heavier part on disk).
        norms: write the norms.
        grads: include the gradients, not only the weights.
        whitelist: which parameters to chart, as ignite's: a list of name
            prefixes (`["fc1", "fc2.weight"]`) or a callable
            `(name, parameter) -> bool`; by default every parameter.
        tag: a prefix for every tag (`<tag>/weights/...`), as ignite's `tag`.
        writer: a `TensorBoard` feature or its name; by default the only one.
        run: the run directory; by default the trigger's engine.
        name: the feature's name (default `<model>_charts`).

    Example:
        >>> import tempfile, torch
        >>> from statefire.frame import State
        >>> from statefire.features import ModelCharts, SupervisedTrainer, TensorBoard
        >>> with State() as s, tempfile.TemporaryDirectory() as log_dir:
        ...     model = torch.nn.Linear(3, 2)
        ...     data = [(torch.randn(4, 3), torch.randn(4, 2))] * 3
        ...     trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
        ...                                 torch.nn.functional.mse_loss, data, n_epochs=2)
        ...     charts = ModelCharts(model, trigger=trainer.n_epoch_completed_ref)
        ...     writer = TensorBoard(log_dir)
        ...     _ = trainer.run()
        ...     writer.close()
        ...     print(charts.name, charts.run, charts.n_written, charts.tags[:2])
        linear_charts trainer 2 ['weights/weight', 'weights/bias']
    """

    n_written = Counter(doc="times the model was charted")

    def __init__(
        self,
        model: Any,
        *,
        trigger: Ref | FilteredRef,
        x_ref: Ref | FilteredRef | None = None,
        histograms: bool = True,
        norms: bool = True,
        grads: bool = True,
        whitelist: Sequence[str] | Callable[[str, Any], bool] | None = None,
        tag: str | None = None,
        writer: TensorBoard | str | None = None,
        run: str | None = None,
        name: str | None = None,
    ) -> None:
        from .components import Model

        module = model.module if isinstance(model, Model) else model
        if not callable(getattr(module, "named_parameters", None)):
            raise TypeError(f"model of ModelCharts must be a torch.nn.Module or a Model component, got {model!r}")
        trigger = as_ref(trigger, "trigger of ModelCharts")
        x = as_ref(trigger if x_ref is None else x_ref, "x_ref of ModelCharts").ref
        if not (histograms or norms):
            raise ValueError("ModelCharts with histograms=False and norms=False would write nothing")
        if tag is not None and (not isinstance(tag, str) or not tag):
            raise TypeError(f"tag of ModelCharts must be a non-empty string or None, got {tag!r}")
        parameters = _whitelisted(module, whitelist)
        component = Model.of(module)
        super().__init__(name=name or f"{component.name}_charts")
        for ref, argument in ((trigger, "trigger"), (x, "x_ref")):
            check.same_state(self)(ref, argument, f"ModelCharts {self.name!r}")
        self.module = module
        self.parameters = parameters
        self.prefix = f"{tag}/" if tag else ""
        self.x_ref = x
        self.histograms, self.norms, self.grads = histograms, norms, grads
        self.run = run or run_of_ref(trigger)
        self._choose_writer(writer)
        trigger.attach(self.write, owner=self)

    @property
    def tags(self) -> list[str]:
        """Every tag this chart writes, for the parameters the model has now."""
        kinds = ["weights", "grads"] if self.grads else ["weights"]
        names = [name.replace(".", "/") for name, _ in self.parameters]
        tags = []
        for kind in kinds:
            if self.histograms:
                tags += [f"{self.prefix}{kind}/{name}" for name in names]
            if self.norms:
                tags += [f"{self.prefix}{kind}_norm/{name}" for name in names]
        return tags

    def write(self) -> None:
        """Write the histograms and norms of every parameter now."""
        import torch

        step = self._step()
        writer, run = self.writer, self.run
        with torch.no_grad():
            for name, parameter in self.parameters:
                name = self.prefix + name.replace(".", "/")
                tensors = [("weights", parameter)]
                if self.grads and parameter.grad is not None:
                    tensors.append(("grads", parameter.grad))
                for kind, tensor in tensors:
                    values = tensor.detach().float().cpu()
                    if self.histograms:
                        writer.add_histogram(run, f"{kind}/{name}", values, step)
                    if self.norms:
                        writer.add_scalar(run, f"{kind}_norm/{name}", torch.linalg.vector_norm(values).item(), step)
        self.n_written += 1


def _whitelisted(module: Any, whitelist: Any) -> list[tuple[str, Any]]:
    """The (name, parameter) pairs `whitelist` selects, as ignite's weight handlers select them."""
    parameters = list(module.named_parameters())
    if whitelist is None:
        return parameters
    if callable(whitelist):
        chosen = [(name, p) for name, p in parameters if whitelist(name, p)]
    elif isinstance(whitelist, (list, tuple)) and all(isinstance(w, str) for w in whitelist):
        chosen = [(name, p) for name, p in parameters if name.startswith(tuple(whitelist))]
    else:
        raise TypeError(
            f"whitelist of ModelCharts must be a list of parameter-name prefixes or a callable "
            f"(name, parameter) -> bool, got {whitelist!r}"
        )
    if not chosen:
        raise ValueError(
            f"whitelist of ModelCharts selects no parameter of the model; its parameters are "
            f"{[name for name, _ in parameters]}"
        )
    return chosen


def _feature_name(owner: Any) -> str:
    return str(getattr(owner, "name", None) or getattr(owner, "category", "state"))


def run_of_ref(ref: Ref | FilteredRef) -> str:
    """The run directory of `ref`'s curves: the name of its engine, else of its feature."""
    owner = ref.owner
    if getattr(owner, "name", None) is None:  # a container: state.metrics.added_ref
        return _feature_name(owner)
    return run_of(owner)


def _same_writer(a: ScalarChart, b: ScalarChart) -> bool:
    chosen_a, chosen_b = a._writer_choice, b._writer_choice
    if chosen_a is None or chosen_b is None:
        return True  # either may end up with the other's writer
    name_a = chosen_a if isinstance(chosen_a, str) else chosen_a.name
    name_b = chosen_b if isinstance(chosen_b, str) else chosen_b.name
    return name_a == name_b
