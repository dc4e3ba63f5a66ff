"""The chart plugins, read back with TensorBoard's EventMultiplexer.

Each test records, with its own callback, the x value and the metric value
every time a metric fires, and compares them with what TensorBoard reads
from disk: the custom-scalars layout chart by chart, then every curve a
chart's regex selects.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata

from statefire.features import Accuracy, Clock, Engine, IgniteMetric, Loss, Metric, TensorBoard
from statefire.frame import Params, State, StateDictError
from statefire.plugins import EnginesMetricsCharts, EnginesMetricsComparisonCharts, HParams

LAYOUT_TAG = "custom_scalars__config__"


# -- building experiments -----------------------------------------------------


def three_engines(n_epochs=3, step_seconds=0.0):
    """A trainer whose weights drift each step, and two evaluators following its epochs."""
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(4, 3, generator=g), torch.randint(0, 3, (4,), generator=g)) for _ in range(6)]
    weights = torch.zeros(3, 3)

    def train_step(engine, batch):
        x, y = batch
        weights.add_(0.3 * torch.randn(3, 3, generator=g))
        time.sleep(step_seconds)
        return x @ weights, y

    def eval_step(engine, batch):
        x, y = batch
        return x @ weights, y

    trainer = Engine("trainer", train_step, data, n_epochs=n_epochs)
    Engine("cv_evaluator", eval_step, data[:2], run_on=trainer.n_epoch_completed_ref)
    Engine("val_evaluator", eval_step, data[2:], run_on=trainer.n_epoch_completed_ref)
    return trainer


def accuracy_and_loss(engine):
    return [Accuracy(engine=engine), Loss(torch.nn.functional.cross_entropy, engine=engine)]


class Scaled(Metric):
    """The mean output times a factor: five distinct metrics per engine in one line each."""

    def __init__(self, factor, **kwargs):
        self.factor = factor
        super().__init__(**kwargs)

    def reset(self):
        self.total, self.count = 0.0, 0

    def update(self, value):
        self.total += value
        self.count += 1

    def compute(self):
        return self.factor * self.total / self.count


def record(metrics, x_ref):
    """metric name -> [(x value, metric value)] at each firing, seen by an independent callback."""
    seen = {m.name: [] for m in metrics}
    for m in metrics:
        m.value_ref.attach(lambda value, name=m.name: seen[name].append((x_ref.value, float(value))))
    return seen


# -- reading back --------------------------------------------------------------


def load(log_dir):
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(log_dir))
    multiplexer.Reload()
    return multiplexer


def layout_of(multiplexer):
    """The last custom-scalars layout written to the log directory, decoded."""
    events = multiplexer.Tensors(".", LAYOUT_TAG)
    layout = layout_pb2.Layout()
    layout.ParseFromString(events[-1].tensor_proto.string_val[0])
    return layout


def curves(multiplexer, regex):
    """run -> [(step, value)] for every (run, tag) the chart regex selects, as TensorBoard matches it."""
    selected = {}
    for run, tags in multiplexer.Runs().items():
        for tag in tags["scalars"]:
            if re.match(regex, tag):
                assert run not in selected, f"regex {regex} selects two tags of run {run}"
                selected[run] = [(e.step, e.value) for e in multiplexer.Scalars(run, tag)]
    return selected


def assert_curve(curve, expected):
    assert [step for step, _ in curve] == [x for x, _ in expected]
    np.testing.assert_allclose([v for _, v in curve], [v for _, v in expected], rtol=1e-6, atol=1e-7)


# -- comparison charts -----------------------------------------------------------


def test_one_chart_per_metric_type_with_one_curve_per_engine(s, tmp_path):
    """Three engines with accuracy and loss: an accuracy chart and a loss chart of three curves each.

    The trainer's metrics exist before the plugin, the evaluators' are added
    after it, and the writer comes last: creation order does not matter.
    """
    trainer = three_engines()
    metrics = accuracy_and_loss(trainer)
    plugin = EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_samples_ref, n_identical_metric_name_suffixes=1)
    metrics += accuracy_and_loss(s.cv_evaluator) + accuracy_and_loss(s.val_evaluator)
    TensorBoard(tmp_path)
    seen = record(metrics, trainer.n_samples_ref)
    trainer.run()
    s.tensor_board.close()

    assert plugin.metric_types == {
        "accuracy": ["trainer", "cv_evaluator", "val_evaluator"],
        "loss": ["trainer", "cv_evaluator", "val_evaluator"],
    }
    multiplexer = load(tmp_path)
    layout = layout_of(multiplexer)
    assert [c.title for c in layout.category] == ["engines compared (x: trainer.n_samples)"]
    charts = layout.category[0].chart
    assert [c.title for c in charts] == ["accuracy", "loss"]
    for chart in charts:
        assert list(chart.multiline.tag) == [f"^{chart.title}(/\\d+)?$"]  # per-class curves: accuracy/0, ...
        selected = curves(multiplexer, chart.multiline.tag[0])
        assert sorted(selected) == ["cv_evaluator", "trainer", "val_evaluator"]
        for run, curve in selected.items():
            expected = seen[f"{run}_{chart.title}"]
            assert [x for x, _ in expected] == [24, 48, 72]  # the trainer's sample count at each epoch end
            assert_curve(curve, expected)


def test_ten_engines_with_five_metrics_give_five_charts_of_ten_curves(s, tmp_path):
    kinds = ["accuracy", "loss", "precision", "recall", "fbeta"]
    trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0, 2.0, 3.0], n_epochs=2)
    engines = [trainer] + [
        Engine(
            f"evaluator{i}", lambda engine, batch, i=i: batch + i, data=[1.0, 5.0], run_on=trainer.n_epoch_completed_ref
        )
        for i in range(9)
    ]
    TensorBoard(tmp_path)
    EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_epoch_completed_ref)
    metrics = [
        Scaled(k + 1, engine=engine, name=f"{engine.name}_{kind}") for engine in engines for k, kind in enumerate(kinds)
    ]
    seen = record(metrics, trainer.n_epoch_completed_ref)
    trainer.run()
    s.tensor_board.close()

    multiplexer = load(tmp_path)
    (category,) = layout_of(multiplexer).category
    assert [c.title for c in category.chart] == kinds
    for chart in category.chart:
        selected = curves(multiplexer, chart.multiline.tag[0])
        assert sorted(selected) == sorted(e.name for e in engines)
        for run, curve in selected.items():
            assert_curve(curve, seen[f"{run}_{chart.title}"])
            assert [step for step, _ in curve] == [1, 2]


def test_the_layout_is_rewritten_as_metric_types_are_added(s, tmp_path):
    trainer = three_engines(n_epochs=1)
    TensorBoard(tmp_path)
    EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_samples_ref)
    Accuracy(engine=s.val_evaluator)
    trainer.run()
    Loss(torch.nn.functional.cross_entropy, engine=s.cv_evaluator)  # after a run
    Accuracy(engine=s.cv_evaluator)  # a type already charted: no new layout
    trainer.run()
    s.tensor_board.close()

    multiplexer = load(tmp_path)
    layouts = multiplexer.Tensors(".", LAYOUT_TAG)
    assert len(layouts) == 2
    assert [c.title for c in layout_of(multiplexer).category[0].chart] == ["accuracy", "loss"]
    assert [step for step, _ in curves(multiplexer, "^loss$")["cv_evaluator"]] == [48]
    assert [step for step, _ in curves(multiplexer, "^accuracy$")["val_evaluator"]] == [24, 48]


def test_anchored_regexes_keep_similar_types_apart(s, tmp_path):
    """`loss` must not select `loss_scaled`: TensorBoard matches from the start, the regex also ends with $."""
    trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0])
    TensorBoard(tmp_path)
    EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_samples_ref, n_identical_metric_name_suffixes=2)
    Scaled(1, engine=trainer, name="trainer_loss_raw")
    Scaled(2, engine=trainer, name="trainer_loss_raw2")
    trainer.run()
    s.tensor_board.close()
    multiplexer = load(tmp_path)
    charts = layout_of(multiplexer).category[0].chart
    assert [c.title for c in charts] == ["loss_raw", "loss_raw2"]
    assert curves(multiplexer, charts[0].multiline.tag[0]) == {"trainer": [(1, 1.0)]}
    assert curves(multiplexer, charts[1].multiline.tag[0]) == {"trainer": [(1, 2.0)]}


def test_more_suffixes_separate_metrics_that_one_suffix_would_merge(s, tmp_path):
    """For names that do not start with their engine's, the type is the last n parts (the seed's rule)."""
    evaluator = Engine("evaluator", lambda engine, batch: batch, data=[1.0])
    EnginesMetricsComparisonCharts(x_axis_ref=evaluator.n_samples_ref, n_identical_metric_name_suffixes=2)
    Scaled(1, engine=evaluator, name="val_top1_accuracy")
    Scaled(5, engine=evaluator, name="val_top5_accuracy")
    assert list(s.engines_metrics_comparison_charts.metric_types) == ["top1_accuracy", "top5_accuracy"]

    with State():
        evaluator = Engine("evaluator", lambda engine, batch: batch, data=[1.0])
        EnginesMetricsComparisonCharts(x_axis_ref=evaluator.n_samples_ref)
        Scaled(1, engine=evaluator, name="val_top1_accuracy")
        with pytest.raises(ValueError, match=r"would write metrics 'val_top1_accuracy' and 'val_top5_accuracy' "
                           r"of engine 'evaluator' to the same tag 'accuracy'.*name each metric after its engine"):
            Scaled(5, engine=evaluator, name="val_top5_accuracy")


def test_ignites_default_metric_names_get_one_chart_each(s, tmp_path):
    """Regression: the built-in accuracy and ignite's TopKCategoricalAccuracy in one evaluator both end in
    `accuracy` and collided, with advice that could not work. The type is the name without the engine's name,
    so the two-line recipe charts them apart, and compares `accuracy` across engines with different names."""
    from ignite.metrics import ConfusionMatrix, TopKCategoricalAccuracy

    trainer = three_engines(n_epochs=1)
    TensorBoard(tmp_path)
    plugin = EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_samples_ref, n_identical_metric_name_suffixes=1)
    Accuracy(engine=trainer, input_ref=trainer.output_ref)
    for engine in (s.cv_evaluator, s.val_evaluator):
        Accuracy(engine=engine)
        IgniteMetric(TopKCategoricalAccuracy(k=2), engine=engine)
    IgniteMetric(ConfusionMatrix(num_classes=3), engine=s.val_evaluator)
    assert plugin.metric_types == {
        "accuracy": ["trainer", "cv_evaluator", "val_evaluator"],
        "top_k_categorical_accuracy": ["cv_evaluator", "val_evaluator"],
        "confusion_matrix": ["val_evaluator"],
    }


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"x_axis_ref": None}, TypeError, "x_axis_ref of EnginesMetricsComparisonCharts must be a ref"),
        ({"n_identical_metric_name_suffixes": 0}, ValueError, "n_identical_metric_name_suffixes of "
         "EnginesMetricsComparisonCharts must be a positive int, got 0"),
    ],
)
def test_invalid_arguments_are_named(s, kwargs, error, match):
    trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0])
    with pytest.raises(error, match=match):
        EnginesMetricsComparisonCharts(**{"x_axis_ref": trainer.n_samples_ref, **kwargs})
    assert len(s.plugins) == 0


# -- per-engine charts --------------------------------------------------------------


def test_one_section_per_engine_with_every_metric_against_each_x_axis(s, tmp_path):
    trainer = three_engines(n_epochs=2)
    x_axes = [trainer.n_samples_ref, trainer.n_epoch_completed_ref]
    plugin = EnginesMetricsCharts(x_axes_refs=x_axes)
    metrics = accuracy_and_loss(s.cv_evaluator) + accuracy_and_loss(s.val_evaluator)
    TensorBoard(tmp_path)
    seen = {x.name: record(metrics, x) for x in x_axes}
    trainer.run()
    s.tensor_board.close()

    assert plugin.sections == {
        engine: [
            f"{engine}/{kind}/trainer.{x}" for kind in ("accuracy", "loss") for x in ("n_samples", "n_epoch_completed")
        ]
        for engine in ("cv_evaluator", "val_evaluator")
    }
    multiplexer = load(tmp_path)
    layout = layout_of(multiplexer)
    assert [c.title for c in layout.category] == ["cv_evaluator metrics", "val_evaluator metrics"]
    for category in layout.category:
        engine = category.title.split()[0]
        assert [c.title for c in category.chart] == plugin.sections[engine]
        for chart in category.chart:
            _, kind, x_label = chart.title.split("/")
            assert list(chart.multiline.tag) == ["^" + re.escape(chart.title) + "(/\\d+)?$"]
            selected = curves(multiplexer, chart.multiline.tag[0])
            assert list(selected) == [engine]
            assert_curve(selected[engine], seen[x_label.split(".")[1]][f"{engine}_{kind}"])
    val_loss = curves(multiplexer, "^val_evaluator/loss/trainer.n_epoch_completed$")["val_evaluator"]
    assert [step for step, _ in val_loss] == [1, 2]


def test_engines_compared_against_wall_time_share_the_clocks_origin(s, tmp_path):
    """Against `clock.milliseconds`: each point's step is the time its metric fired, since the clock started."""
    started = time.time()
    clock = Clock()
    trainer = three_engines(n_epochs=3, step_seconds=0.01)
    plugin = EnginesMetricsComparisonCharts(x_axis_ref=clock.milliseconds_ref)
    metrics = accuracy_and_loss(trainer) + accuracy_and_loss(s.cv_evaluator) + accuracy_and_loss(s.val_evaluator)
    TensorBoard(tmp_path)
    seen = record(metrics, clock.milliseconds_ref)  # after the charts' callbacks, which refresh the clock
    trainer.run()
    s.tensor_board.close()

    multiplexer = load(tmp_path)
    layout = layout_of(multiplexer)
    assert [c.title for c in layout.category] == ["engines compared (x: clock.milliseconds)"]
    assert plugin.metric_types["accuracy"] == ["trainer", "cv_evaluator", "val_evaluator"]
    for chart in layout.category[0].chart:
        selected = curves(multiplexer, chart.multiline.tag[0])
        assert sorted(selected) == ["cv_evaluator", "trainer", "val_evaluator"]
        for run, curve in selected.items():
            assert_curve(curve, seen[f"{run}_{chart.title}"])
            steps = [step for step, _ in curve]
            assert steps == sorted(steps) and steps[-1] - steps[0] >= 2 * 60  # two epochs of 6 x 10 ms apart
            # The step is the elapsed time at which TensorBoard stamped the point.
            stamped = [1000 * (e.wall_time - started) for e in multiplexer.Scalars(run, chart.title)]
            assert all(abs(ms - step) < 250 for ms, step in zip(stamped, steps, strict=False)), (stamped, steps)


def test_per_class_metrics_give_a_curve_per_class_and_matrices_are_skipped(s, tmp_path):
    """A 1-D metric is charted element by element in its type's chart; a matrix is skipped with a warning."""
    from ignite.metrics import ConfusionMatrix, Precision

    trainer = three_engines(n_epochs=2)
    plugin = EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_samples_ref)
    hparams = HParams()
    engines = [s.cv_evaluator, s.val_evaluator]
    precisions = [IgniteMetric(Precision(average=False), engine=engine) for engine in engines]
    for engine in engines:
        IgniteMetric(ConfusionMatrix(num_classes=3), engine=engine)
    TensorBoard(tmp_path)
    seen = {m.name: [] for m in precisions}
    for m in precisions:
        m.value_ref.attach(lambda value, name=m.name: seen[name].append((trainer.n_samples, value.tolist())))
    with pytest.warns(
        UserWarning, match=r"skips what it cannot chart: .*confusion_matrix.value: it holds Tensor of shape \(3, 3\)"
    ):
        trainer.run()
    s.tensor_board.close()

    assert plugin.metric_types == {
        "precision": ["cv_evaluator", "val_evaluator"], "confusion_matrix": ["cv_evaluator", "val_evaluator"]
    }
    multiplexer = load(tmp_path)
    chart = layout_of(multiplexer).category[0].chart[0]
    assert chart.title == "precision"
    for engine in engines:
        curves_of_engine = {
            tag: [(e.step, e.value) for e in multiplexer.Scalars(engine.name, tag)]
            for tag in multiplexer.Runs()[engine.name]["scalars"]
            if re.match(chart.multiline.tag[0], tag)
        }
        assert sorted(curves_of_engine) == ["precision/0", "precision/1", "precision/2"]
        for k in range(3):
            expected = [(x, per_class[k]) for x, per_class in seen[f"{engine.name}_precision"]]
            assert_curve(curves_of_engine[f"precision/{k}"], expected)
        assert not any("matrix" in tag for tag in multiplexer.Runs()[engine.name]["scalars"])
    assert not any("precision" in name or "matrix" in name for name in hparams.last_metrics)  # numbers only


def test_a_clock_continues_from_the_checkpoints_time(s):
    """The elapsed time is state: after a restore the clock counts on from the saved value."""
    clock = Clock()
    time.sleep(0.02)
    clock.refresh()
    assert 20 <= clock.milliseconds < 1000 and clock.seconds == 0
    time.sleep(0.02)
    saved = s.state_dict()  # the time at the save, though nothing read the clock since
    assert saved["handlers"]["clock"] == {"elapsed_ms": saved["handlers"]["clock"]["elapsed_ms"]}
    assert saved["handlers"]["clock"]["elapsed_ms"] >= clock.milliseconds + 20
    with State() as other:
        restored = Clock()
        seen = []
        restored.milliseconds_ref.attach(seen.append)
        other.load_state_dict({"handlers": {"clock": {"elapsed_ms": 61_500}}})
        assert restored.seconds == 61 and 61_500 <= restored.milliseconds < 62_500
        assert seen == []  # a restore is not an event
        assert 61_500 <= restored.refresh() < 62_500 and restored.seconds == 61


def test_a_damaged_clock_time_is_refused_before_anything_is_restored(s):
    clock = Clock()
    for bad in (-1, 1.5, "61500", True):
        with pytest.raises(StateDictError, match=r"handlers\.clock\.elapsed_ms: expected whole milliseconds"):
            s.load_state_dict({"handlers": {"clock": {"elapsed_ms": bad}}})
    assert clock.refresh() < 60_000


def test_one_x_axis_gives_short_tags_and_both_plugins_share_one_layout(s, tmp_path):
    trainer = three_engines(n_epochs=1)
    TensorBoard(tmp_path)
    EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_samples_ref)
    per_engine = EnginesMetricsCharts(x_axes_refs=trainer.n_samples_ref)
    accuracy_and_loss(trainer)
    trainer.run()
    s.tensor_board.close()
    assert [c.tag for c in per_engine.charts] == ["trainer/accuracy", "trainer/loss"]
    layout = layout_of(load(tmp_path))
    assert [c.title for c in layout.category] == ["engines compared (x: trainer.n_samples)", "trainer metrics"]


def test_x_axes_refs_must_be_refs(s):
    trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0])
    with pytest.raises(ValueError, match=r"x_axes_refs of EnginesMetricsCharts must hold at least one ref, got \[\]"):
        EnginesMetricsCharts(x_axes_refs=[])
    with pytest.raises(TypeError, match="x_axes_refs of EnginesMetricsCharts must be a ref"):
        EnginesMetricsCharts(x_axes_refs=[trainer.n_samples_ref, "n_epoch"])
    with pytest.raises(ValueError, match="holds the same ref twice"):
        EnginesMetricsCharts(x_axes_refs=[trainer.n_samples_ref, trainer.n_samples_ref])


# -- hyperparameters -------------------------------------------------------------------


def test_hparams_dashboard_gets_every_param_and_the_final_metrics_once_per_run(s, tmp_path):
    Params(name="hp", lr=0.01, optimizer="adam", hidden=None)
    trainer = three_engines(n_epochs=2)
    metrics = accuracy_and_loss(s.val_evaluator)
    hparams = HParams()
    TensorBoard(tmp_path)
    trainer.run()
    assert hparams.n_written == 1  # the evaluators' runs inside the trainer's run do not count
    final = {f"hparams/{m.name}": m.value for m in metrics}
    s.tensor_board.close()

    multiplexer = load(tmp_path)
    content = multiplexer.PluginRunToTagToContent(hparams_metadata.PLUGIN_NAME)["hparams"]
    experiment = hparams_metadata.parse_experiment_plugin_data(content[hparams_metadata.EXPERIMENT_TAG])
    session = hparams_metadata.parse_session_start_info_plugin_data(content[hparams_metadata.SESSION_START_INFO_TAG])
    assert [h.name for h in experiment.hparam_infos] == ["params.hp.lr", "params.hp.optimizer", "params.hp.hidden"]
    assert session.hparams["params.hp.lr"].number_value == 0.01
    assert session.hparams["params.hp.optimizer"].string_value == "adam"
    assert session.hparams["params.hp.hidden"].string_value == "None"
    assert [m.name.tag for m in experiment.metric_infos] == list(final)
    for tag, value in final.items():
        (event,) = multiplexer.Scalars("hparams", tag)
        assert event.step == 1
        np.testing.assert_allclose(event.value, value, rtol=1e-6)

    with State():
        Params(name="hp", lr=0.1)
        trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0])
        writer, hparams = TensorBoard(tmp_path / "second"), HParams(metrics=[])
        trainer.run()
        trainer.run()
        assert hparams.n_written == 2
        writer.close()


def test_hparams_shows_the_users_params_first_and_engine_bookkeeping_only_when_asked(s, tmp_path):
    """Regression: every engine's n_epochs/epoch_length came first in the dashboard and hid lr, batch_size,
    hidden. The user's Params lead, even when created after the engines; engines' Params come on request."""
    trainer = three_engines(n_epochs=2)
    Params(name="hp", lr=0.01, batch_size=4, hidden=16)
    TensorBoard(tmp_path)
    default, everything = HParams(run="default"), HParams(run="everything", engine_params=True, name="all")
    trainer.run()
    assert list(default.last_hparams) == ["params.hp.lr", "params.hp.batch_size", "params.hp.hidden"]
    assert list(everything.last_hparams)[:3] == ["params.hp.lr", "params.hp.batch_size", "params.hp.hidden"]
    assert everything.last_hparams["engines.trainer.n_epochs"] == 2
    s.tensor_board.close()
    content = load(tmp_path).PluginRunToTagToContent(hparams_metadata.PLUGIN_NAME)["default"]
    experiment = hparams_metadata.parse_experiment_plugin_data(content[hparams_metadata.EXPERIMENT_TAG])
    assert [h.name for h in experiment.hparam_infos] == ["params.hp.lr", "params.hp.batch_size", "params.hp.hidden"]


def test_hparams_named_metrics_must_exist(s, tmp_path):
    trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0])
    TensorBoard(tmp_path)
    HParams(metrics=["trainer_accuracy"])
    with pytest.raises(
        ValueError, match=r"reports metric 'trainer_accuracy', but the state has no metric of that name"
    ):
        trainer.run()
    with pytest.raises(TypeError, match="metrics of HParams must be metric features or their names, got 3"):
        HParams(metrics=[3], name="other")
