"""ScalarChart: y against the current value of x each time y fires, read back with TensorBoard's reader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import points
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from statefire.features import AverageOutput, Engine, ScalarChart, TensorBoard


def test_writes_y_against_the_current_x_each_time_y_fires(s, tmp_path):
    """Steps are the x values seen when y fired; values are y's, tensors read as floats."""
    trainer = Engine(
        "trainer", lambda engine, batch: torch.tensor(batch, dtype=torch.float32) / 3, data=[1, 2, 3, 4, 5]
    )
    average = AverageOutput(engine=trainer, mode="running")
    seen = []
    average.value_ref.attach(lambda value: seen.append((trainer.n_iteration_started, value)))
    chart = ScalarChart(average.value_ref, trainer.n_iteration_started_ref)
    writer = TensorBoard(tmp_path)
    trainer.run()
    writer.close()
    assert chart.name == "trainer_average_output_value_chart" and s.charts.trainer_average_output_value_chart is chart
    assert chart.tag == "metrics/trainer_average_output/value" and chart.run == "trainer"
    assert chart.n_written == 5
    written = points(tmp_path / "trainer", chart.tag)
    assert [step for step, _ in written] == [step for step, _ in seen] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([v for _, v in written], [v for _, v in seen], rtol=1e-6)


def test_the_writer_may_be_created_after_the_chart_or_given_by_name(s, tmp_path):
    trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0, 2.0])
    chart = ScalarChart(trainer.output_ref, trainer.n_iteration_started_ref, tag="raw", writer="second")
    TensorBoard(tmp_path / "first", name="first")
    TensorBoard(tmp_path / "second", name="second")
    trainer.run()
    assert chart.writer is s.second
    assert points(tmp_path / "second" / "trainer", "raw") == [(1, 1.0), (2, 2.0)]
    assert not (tmp_path / "first" / "trainer").exists()


def test_filtered_y_ref_writes_only_when_the_filter_passes(s, tmp_path):
    trainer = Engine("trainer", lambda engine, batch: batch, data=[1.0, 2.0, 3.0, 4.0])
    TensorBoard(tmp_path)
    ScalarChart(trainer.n_iteration_completed_ref(every=2), trainer.n_samples_ref, tag="every2")
    trainer.run()
    assert points(tmp_path / "trainer", "every2") == [(2, 2.0), (4, 4.0)]


def test_a_chart_of_an_output_handler_goes_to_its_engines_run(s, tmp_path):
    """Curves of a handler of an engine's output overlay with that engine's other curves."""
    from statefire.features import OutputHandler

    trainer = Engine("trainer", lambda engine, batch: {"loss": batch}, data=[3.0, 1.0])
    loss = OutputHandler(trainer.output_ref, lambda out: out["loss"], name="loss")
    halved = OutputHandler(loss.output_ref, lambda value: value / 2, name="halved")
    chart = ScalarChart(halved.output_ref, trainer.n_iteration_started_ref, tag="halved_loss")
    TensorBoard(tmp_path)
    trainer.run()
    s.tensor_board.close()
    assert chart.run == "trainer"
    assert points(tmp_path / "trainer", "halved_loss") == [(1, 1.5), (2, 0.5)]


def test_a_chart_of_a_feature_without_engine_goes_to_the_features_run(s, tmp_path):
    from statefire.frame import Params

    hp = Params(name="hp", lr=0.1)
    trainer = Engine("trainer", lambda engine, batch: batch, data=[0, 0, 0])
    chart = ScalarChart(hp.lr_ref, trainer.n_iteration_completed_ref)
    TensorBoard(tmp_path)
    trainer.n_iteration_completed_ref.attach(lambda n: setattr(hp, "lr", hp.lr / 2))
    trainer.run()
    assert (chart.run, chart.tag) == ("hp", "params/hp/lr")
    written = points(tmp_path / "hp", "params/hp/lr")
    assert [step for step, _ in written] == [1, 2, 3]
    np.testing.assert_allclose([v for _, v in written], [0.05, 0.025, 0.0125], rtol=1e-6)  # float32 on disk


def test_a_non_numeric_value_raises_an_error_naming_the_ref(s, tmp_path):
    trainer = Engine("trainer", lambda engine, batch: "text", data=[0])
    TensorBoard(tmp_path)
    ScalarChart(trainer.output_ref, trainer.n_samples_ref)
    with pytest.raises(
        TypeError, match=r"cannot chart engines.trainer.output: its value 'text' of type str is not a number"
    ):
        trainer.run()


def test_a_1d_value_is_one_curve_per_element(s, tmp_path):
    """A per-class value (a 1-D tensor, array or list) writes `<tag>/<index>` curves; one element is a number."""
    outputs = iter([torch.tensor([0.5, 0.25, 1.0]), torch.tensor([0.75, 0.5, 0.0])])
    trainer = Engine("trainer", lambda engine, batch: next(outputs), data=[0, 1])
    TensorBoard(tmp_path)
    chart = ScalarChart(trainer.output_ref, trainer.n_iteration_started_ref, tag="per_class")
    lists = Engine("lists", lambda engine, batch: [batch, 2 * batch] if batch else torch.tensor([7.0]), data=[1, 0])
    ScalarChart(lists.output_ref, lists.n_iteration_started_ref, tag="listed")
    trainer.run()
    lists.run()
    s.tensor_board.close()
    assert chart.n_written == 2
    assert points(tmp_path / "trainer", "per_class/0") == [(1, 0.5), (2, 0.75)]
    assert points(tmp_path / "trainer", "per_class/1") == [(1, 0.25), (2, 0.5)]
    assert points(tmp_path / "trainer", "per_class/2") == [(1, 1.0), (2, 0.0)]
    assert points(tmp_path / "lists", "listed/0") == [(1, 1.0)]
    assert points(tmp_path / "lists", "listed/1") == [(1, 2.0)]
    assert points(tmp_path / "lists", "listed") == [(2, 7.0)]  # a one-element tensor is a number


def test_a_matrix_is_refused_naming_the_ref(s, tmp_path):
    trainer = Engine("trainer", lambda engine, batch: torch.ones(3, 3), data=[0])
    TensorBoard(tmp_path)
    ScalarChart(trainer.output_ref, trainer.n_samples_ref)
    with pytest.raises(TypeError, match=r"cannot chart engines.trainer.output: it holds Tensor of shape \(3, 3\); "
                                        r"a chart takes a number or a 1-D value"):
        trainer.run()


def test_a_lenient_chart_skips_what_it_cannot_chart_with_one_warning(s, tmp_path):
    """strict=False (what the chart plugins use): the training goes on, one warning says why."""
    values = iter([1.0, torch.ones(2, 2), torch.ones(2, 2), 4.0])
    trainer = Engine("trainer", lambda engine, batch: next(values), data=[0, 1, 2, 3])
    TensorBoard(tmp_path)
    chart = ScalarChart(trainer.output_ref, trainer.n_iteration_started_ref, tag="mixed", strict=False)
    with pytest.warns(UserWarning, match=r"chart 'trainer_output_chart' skips .* shape \(2, 2\)") as caught:
        trainer.run()
    assert len(caught) == 1
    s.tensor_board.close()
    assert "shape (2, 2)" in chart.skipped
    assert points(tmp_path / "trainer", "mixed") == [(1, 1.0), (4, 4.0)]


def test_an_x_value_that_is_not_a_whole_number_is_refused(s, tmp_path):
    from statefire.frame import Params

    clock = Params(name="clock", seconds=0.5)
    trainer = Engine("trainer", lambda engine, batch: 1.0, data=[0])
    TensorBoard(tmp_path)
    ScalarChart(trainer.output_ref, clock.seconds_ref)
    with pytest.raises(TypeError, match=r"cannot use params.clock.seconds as the x axis: its value 0.5"):
        trainer.run()


def test_no_writer_is_reported_at_the_first_write(s):
    trainer = Engine("trainer", lambda engine, batch: 1.0, data=[0])
    ScalarChart(trainer.output_ref, trainer.n_samples_ref)
    with pytest.raises(RuntimeError, match=r"chart 'trainer_output_chart' has nothing to write to"):
        trainer.run()


def test_two_charts_writing_the_same_tag_in_the_same_run_are_refused(s):
    trainer = Engine("trainer", lambda engine, batch: 1.0, data=[0])
    first = ScalarChart(trainer.output_ref, trainer.n_samples_ref)
    with pytest.raises(
        ValueError,
        match=r"chart 'trainer_output_chart' already writes tag 'engines/trainer/output' in run "
        r"'trainer' \(engines.trainer.output against engines.trainer.n_samples\); pass tag=",
    ):
        ScalarChart(trainer.output_ref, trainer.n_epoch_completed_ref, name="by_epoch")
    assert list(s.charts) == [first]  # the refused chart is not registered
    second = ScalarChart(trainer.output_ref, trainer.n_epoch_completed_ref, name="by_epoch", tag="output_by_epoch")
    assert list(s.charts) == [first, second]


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((None, None), {}, r"y_ref of ScalarChart must be a ref like state.trainer.n_epoch_completed_ref, got None"),
        (("y", None), {}, "y_ref of ScalarChart must be a ref"),
    ],
)
def test_arguments_that_are_not_refs_are_named(s, args, kwargs, match):
    with pytest.raises(TypeError, match=match):
        ScalarChart(*args, **kwargs)


def test_a_feature_instead_of_a_ref_gets_a_hint(s):
    trainer = Engine("trainer", lambda engine, batch: 1.0, data=[0])
    with pytest.raises(TypeError, match=r"x_ref of ScalarChart .*a feature was given: pass one of its refs"):
        ScalarChart(trainer.output_ref, trainer)
    with pytest.raises(TypeError, match=r"tag of ScalarChart must be a non-empty str, got ''"):
        ScalarChart(trainer.output_ref, trainer.n_samples_ref, tag="")


# -- ModelCharts -------------------------------------------------------------------


def test_model_charts_write_weight_and_gradient_histograms_and_norms(s, tmp_path):
    """Each epoch: a histogram and an L2 norm of every weight and gradient, as the model had them then."""
    from sklearn.datasets import load_digits

    from statefire.features import ModelCharts, SupervisedTrainer

    digits = load_digits()
    x = torch.tensor(digits.data[:256], dtype=torch.float32) / 16
    y = torch.tensor(digits.target[:256])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    data = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 256, 64)]
    trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.5),
                                torch.nn.functional.cross_entropy, data, n_epochs=3)
    charts = ModelCharts(model, trigger=trainer.n_epoch_completed_ref, x_ref=trainer.n_samples_ref)
    seen = []
    trainer.n_epoch_completed_ref.attach(lambda: seen.append(
        (trainer.n_samples, {n: (p.detach().clone(), p.grad.clone()) for n, p in model.named_parameters()})))
    TensorBoard(tmp_path)
    trainer.run()
    s.tensor_board.close()

    assert charts.name == "sequential_charts" and charts.run == "trainer" and charts.n_written == 3
    accumulator = EventAccumulator(str(tmp_path / "trainer"), size_guidance={"histograms": 0, "scalars": 0})
    accumulator.Reload()
    assert sorted(accumulator.Tags()["histograms"]) == sorted(t for t in charts.tags if "_norm/" not in t)
    assert sorted(accumulator.Tags()["scalars"]) == sorted(t for t in charts.tags if "_norm/" in t)
    for kind, index in (("weights", 0), ("grads", 1)):
        for name in ("0.weight", "0.bias", "2.weight", "2.bias"):
            tag = name.replace(".", "/")  # ignite's tags: fc1/weight
            histograms = accumulator.Histograms(f"{kind}/{tag}")
            norms = accumulator.Scalars(f"{kind}_norm/{tag}")
            assert [h.step for h in histograms] == [n.step for n in norms] == [256, 512, 768]
            for histogram, norm, (_, tensors) in zip(histograms, norms, seen, strict=False):
                tensor = tensors[name][index]
                value = histogram.histogram_value
                assert value.num == tensor.numel()
                assert (value.min, value.max) == pytest.approx((tensor.min().item(), tensor.max().item()))
                assert value.sum == pytest.approx(tensor.sum().item(), rel=1e-4, abs=1e-5)
                assert norm.value == pytest.approx(torch.linalg.vector_norm(tensor).item(), rel=1e-6)


def test_model_charts_whitelist_and_tags_match_ignites(s, tmp_path):
    """`whitelist=` charts only the chosen parameters, and tags are ignite's (`fc1/weight`, not `fc1.weight`):
    the same tags ignite's WeightsHistHandler and WeightsScalarHandler write for the same model."""
    from ignite.engine import Engine as IgniteEngine
    from ignite.engine import Events
    from ignite.handlers.tensorboard_logger import TensorboardLogger, WeightsHistHandler, WeightsScalarHandler

    from statefire.features import ModelCharts

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)

    model = Net()
    engine = Engine("trainer", lambda engine, batch: batch, data=[0])
    charts = ModelCharts(model, trigger=engine.n_epoch_completed_ref, grads=False, whitelist=["fc1", "head.bias"])
    TensorBoard(tmp_path / "ours")
    engine.run()
    s.tensor_board.close()

    ignite_engine = IgniteEngine(lambda e, b: None)
    logger = TensorboardLogger(log_dir=str(tmp_path / "ignite"))
    for handler in (WeightsHistHandler(model, whitelist=["fc1", "head.bias"]),
                    WeightsScalarHandler(model, whitelist=["fc1", "head.bias"])):
        handler(ignite_engine, logger, Events.EPOCH_COMPLETED)
    logger.close()

    def tags(directory):
        accumulator = EventAccumulator(str(directory), size_guidance={"histograms": 0, "scalars": 0})
        accumulator.Reload()
        return sorted(accumulator.Tags()["histograms"] + accumulator.Tags()["scalars"])

    expected = ["weights/fc1/bias", "weights/fc1/weight", "weights/head/bias",
                "weights_norm/fc1/bias", "weights_norm/fc1/weight", "weights_norm/head/bias"]
    assert tags(tmp_path / "ours" / "trainer") == tags(tmp_path / "ignite") == expected
    assert sorted(charts.tags) == expected


def test_values_set_inside_an_iteration_are_charted_at_their_own_iterations_x(s, tmp_path):
    """An output handler's output and a per-batch metric fire mid-iteration too: each point gets the
    n_samples of its own iteration; a value set outside an iteration (an epoch metric) is written at once."""
    from statefire.features import AverageOutput, OutputHandler

    trainer = Engine("trainer", lambda engine, batch: float(batch), data=[1, 2, 3], n_epochs=2)
    doubled = OutputHandler(trainer.output_ref, lambda value: 2 * value, name="doubled")
    per_batch = AverageOutput(engine=trainer, mode="batch", name="per_batch")
    per_epoch = AverageOutput(engine=trainer, name="per_epoch")
    charted = ((doubled.output_ref, "doubled"), (per_batch.value_ref, "per_batch"), (per_epoch.value_ref, "epoch"))
    for ref, tag in charted:
        ScalarChart(ref, trainer.n_samples_ref, tag=tag)
    TensorBoard(tmp_path)
    trainer.run()
    s.tensor_board.close()
    assert points(tmp_path / "trainer", "doubled") == [(n, 2.0 * (1 + (n - 1) % 3)) for n in range(1, 7)]
    assert points(tmp_path / "trainer", "per_batch") == [(n, 1.0 + (n - 1) % 3) for n in range(1, 7)]
    assert points(tmp_path / "trainer", "epoch") == [(3, 2.0), (6, 2.0)]


def test_model_charts_arguments_are_checked(s):
    from statefire.features import ModelCharts

    engine = Engine("trainer", lambda engine, batch: batch, data=[0])
    with pytest.raises(TypeError, match="model of ModelCharts must be a torch.nn.Module or a Model component, got 3"):
        ModelCharts(3, trigger=engine.n_epoch_completed_ref)
    with pytest.raises(ValueError, match="histograms=False and norms=False would write nothing"):
        ModelCharts(torch.nn.Linear(1, 1), trigger=engine.n_epoch_completed_ref, histograms=False, norms=False)
    with pytest.raises(ValueError, match=r"selects no parameter of the model; its parameters are \['weight', 'bias'\]"):
        ModelCharts(torch.nn.Linear(1, 1), trigger=engine.n_epoch_completed_ref, whitelist=["fc"])
    with pytest.raises(TypeError, match="whitelist of ModelCharts must be a list of parameter-name prefixes"):
        ModelCharts(torch.nn.Linear(1, 1), trigger=engine.n_epoch_completed_ref, whitelist="weight")


def test_a_trigger_writes_ys_current_value_after_the_iteration_moved_the_x_axis(s, tmp_path):
    """Logging the loss every 2 iterations against n_samples, on the output or on a trigger: the x is the
    iteration's own, not the one before (an output is set before n_samples moves)."""
    trainer = Engine("trainer", lambda engine, batch: 10.0 * batch, data=[1, 2, 3, 4])
    on_output = ScalarChart(trainer.output_ref(every=2), trainer.n_samples_ref, tag="on_output")
    on_trigger = ScalarChart(trainer.output_ref, trainer.n_samples_ref, tag="on_trigger",
                             trigger=trainer.n_iteration_completed_ref(every=2))
    TensorBoard(tmp_path)
    trainer.run()
    s.tensor_board.close()
    assert on_trigger.trigger.path == "engines.trainer.n_iteration_completed"
    assert on_output.n_written == on_trigger.n_written == 2 and on_output.name == "trainer_output_chart"
    assert on_trigger.name == "trainer_output_chart_2"  # default names are numbered
    # Regression: the output's point was written at once, at the previous iteration's n_samples ([(1, 20.0), ...]).
    assert points(tmp_path / "trainer", "on_output") == [(2, 20.0), (4, 40.0)]
    assert points(tmp_path / "trainer", "on_trigger") == [(2, 20.0), (4, 40.0)]
    with pytest.raises(ValueError, match=r"takes a filter on y_ref .* or a trigger .*, not both"):
        ScalarChart(trainer.output_ref(every=2), trainer.n_samples_ref, tag="both",
                    trigger=trainer.n_iteration_completed_ref)


def test_a_chart_warning_points_at_the_users_line(s, tmp_path):
    """Regression: the warning of a chart skipping a value pointed at frame/dispatch.py; it names the user's line."""
    trainer = Engine("trainer", lambda engine, batch: torch.zeros(2, 2), data=[1])
    ScalarChart(trainer.output_ref, trainer.n_iteration_completed_ref, strict=False)
    TensorBoard(tmp_path)
    with pytest.warns(UserWarning, match="skips what it cannot chart") as record:
        trainer.run()  # the line the warning must name
    s.tensor_board.close()
    (warning,) = [w for w in record if "skips what it cannot chart" in str(w.message)]
    assert warning.filename == __file__
    assert warning.lineno == test_a_chart_warning_points_at_the_users_line.__code__.co_firstlineno + 6
