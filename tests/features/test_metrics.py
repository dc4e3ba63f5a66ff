"""Metrics as peers: modes, default names, inputs from any ref, ignite metrics, state dicts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.metrics import ConfusionMatrix, Precision, Recall
from sklearn.metrics import confusion_matrix, precision_score, recall_score

from statefire.features import (
    Accuracy,
    AverageOutput,
    Engine,
    IgniteMetric,
    Loss,
    Metric,
    OutputHandler,
    RunningAverage,
)  # fmt: skip
from statefire.frame import State


def identity(engine, batch):
    return batch


def classification_batches(seed: int = 0, n_batches: int = 5, n: int = 16, classes: int = 4):
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(n, classes, generator=generator), torch.randint(0, classes, (n,), generator=generator))
        for _ in range(n_batches)
    ]


def test_accuracy_and_loss_match_a_direct_computation(s):
    batches = classification_batches()
    evaluator = Engine("evaluator", identity, data=batches)
    accuracy = Accuracy(engine=evaluator)
    loss = Loss(torch.nn.functional.cross_entropy, engine=evaluator)
    evaluator.run()
    y_pred = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert accuracy.value == pytest.approx((y_pred.argmax(1) == y).float().mean().item())
    assert loss.value == pytest.approx(torch.nn.functional.cross_entropy(y_pred, y).item(), rel=1e-6)
    assert (accuracy.name, loss.name) == ("evaluator_accuracy", "evaluator_loss")


def test_binary_accuracy_thresholds_probabilities(s):
    batch = (torch.tensor([0.9, 0.2, 0.6, 0.4]), torch.tensor([1, 0, 0, 0]))
    evaluator = Engine("evaluator", identity, data=[batch])
    accuracy = Accuracy(engine=evaluator)
    evaluator.run()
    assert accuracy.value == 0.75


def test_epoch_mode_resets_each_epoch_and_publishes_at_its_end(s):
    """value fires once per epoch with that epoch's result."""
    engine = Engine("e", identity, data=[1.0, 2.0, 3.0], n_epochs=2)
    average = AverageOutput(engine=engine)
    seen: list = []
    average.value_ref.attach(seen.append)
    engine.run()
    assert seen == [2.0, 2.0]


def test_running_and_batch_modes(s):
    engine = Engine("e", identity, data=[1.0, 3.0, 5.0])
    running = AverageOutput(engine=engine, mode="running", name="running")
    batch = AverageOutput(engine=engine, mode="batch", name="batch")
    seen_running: list = []
    seen_batch: list = []
    running.value_ref.attach(seen_running.append)
    batch.value_ref.attach(seen_batch.append)
    engine.run()
    assert seen_running == [1.0, 2.0, 3.0]
    assert seen_batch == [1.0, 3.0, 5.0]


def test_running_average_is_an_exponential_moving_average(s):
    engine = Engine("e", identity, data=[1.0, 2.0, 3.0])
    ema = RunningAverage(engine=engine, alpha=0.5)
    engine.run()
    assert ema.value == pytest.approx(0.5 * (0.5 * 1.0 + 0.5 * 2.0) + 0.5 * 3.0)


def test_running_average_over_a_run_matches_ignites_default(s):
    """reset_on="run" carries the average over the epochs of a run, value for value as ignite's does."""
    import ignite.engine
    import ignite.metrics

    data, n_epochs = [4.0, 2.0, 3.0], 3
    ignite_engine = ignite.engine.Engine(lambda engine, batch: batch)
    ignite.metrics.RunningAverage(output_transform=lambda x: x, alpha=0.5).attach(ignite_engine, "ema")
    expected = []
    ignite_engine.add_event_handler(
        ignite.engine.Events.ITERATION_COMPLETED, lambda engine: expected.append(engine.state.metrics["ema"])
    )
    ignite_engine.run(data, max_epochs=n_epochs)

    engine = Engine("e", identity, data=data, n_epochs=n_epochs)
    per_run = RunningAverage(engine=engine, alpha=0.5, reset_on="run", name="per_run")
    per_epoch = RunningAverage(engine=engine, alpha=0.5, name="per_epoch")
    seen = {"per_run": [], "per_epoch": []}
    for metric in (per_run, per_epoch):
        metric.value_ref.attach(seen[metric.name].append)
    engine.run()
    assert seen["per_run"] == pytest.approx(expected)
    assert seen["per_epoch"] == pytest.approx([4.0, 3.0, 3.0] * n_epochs)
    engine.run()  # a new run starts afresh
    assert seen["per_run"][n_epochs * 3 :] == pytest.approx(expected)
    with pytest.raises(ValueError, match="reset_on of a RunningAverage must be 'epoch' or 'run', got 'iteration'"):
        RunningAverage(engine=engine, reset_on="iteration")


def test_a_metric_can_follow_an_output_handler(s):
    """input_ref accepts any ref: here the pair an output handler derives from the raw output."""
    batches = classification_batches()
    engine = Engine("e", lambda e, b: {"logits": b[0], "target": b[1]}, data=batches)
    pair = OutputHandler(engine.output_ref, lambda out: (out["logits"], out["target"]), name="pair")
    accuracy = Accuracy(engine=engine, input_ref=pair.output_ref)
    engine.run()
    y_pred = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert accuracy.value == pytest.approx((y_pred.argmax(1) == y).float().mean().item())


def test_a_metric_finds_its_engine_behind_its_input_ref(s):
    """Without engine=, the engine is the input's owner, or the one behind a chain of output handlers."""
    engine = Engine("e", lambda e, b: {"loss": b}, data=[1.0, 3.0], n_epochs=2)
    loss = OutputHandler(engine.output_ref, lambda out: out["loss"], name="loss")
    doubled = OutputHandler(loss.output_ref, lambda value: 2 * value, name="doubled")
    average = AverageOutput(input_ref=doubled.output_ref)
    running = RunningAverage(input_ref=loss.output_ref, alpha=0.5)
    outputs = AverageOutput(input_ref=engine.n_samples_ref(every=2), name="samples")
    assert average.engine is running.engine is outputs.engine is engine
    assert average.name == "e_average_output" and running.name == "e_running_average"
    engine.run()
    assert average.value == 4.0  # reset at each epoch start: the second epoch's mean of 2, 6
    assert outputs.value == 4.0  # n_samples passes every=2 at 2 and 4; the second epoch sees only 4
    from statefire.frame import Params

    knob = Params(name="knob", level=1.0)
    with pytest.raises(TypeError, match=r"a AverageOutput on params.knob.level needs engine=\.\.\.: its epochs reset"):
        AverageOutput(input_ref=knob.level_ref)


def test_metrics_on_an_evaluator_publish_before_the_trainer_callbacks_run(s):
    trainer = Engine("trainer", identity, data=[0], n_epochs=2)
    evaluator = Engine("evaluator", identity, data=classification_batches(), run_on=trainer.n_epoch_completed_ref)
    accuracy = Accuracy(engine=evaluator)
    seen: list = []
    trainer.n_epoch_completed_ref.attach(lambda: seen.append(accuracy.value))
    trainer.run()
    assert seen[0] is not None and len(seen) == 2


def test_a_metric_needing_tensors_names_itself_and_the_ref(s):
    engine = Engine("e", identity, data=[3])
    Accuracy(engine=engine)
    with pytest.raises(TypeError, match="metric 'e_accuracy' needs \\(y_pred, y\\) from engines.e.output"):
        engine.run()


def test_bad_metric_arguments(s):
    engine = Engine("e", identity, data=[1])
    with pytest.raises(ValueError, match="mode of a Accuracy must be one of"):
        Accuracy(engine=engine, mode="weekly")
    with pytest.raises(TypeError, match="engine of a Accuracy must be an Engine"):
        Accuracy(engine="trainer")
    with pytest.raises(ValueError, match="alpha of a RunningAverage must be in"):
        RunningAverage(engine=engine, alpha=1.5)


def test_a_custom_metric(s):
    class Maximum(Metric):
        accumulators = ("best",)

        def reset(self):
            self.best = None

        def update(self, value):
            self.best = value if self.best is None else max(self.best, value)

        def compute(self):
            return self.best

    engine = Engine("e", identity, data=[3, 9, 4])
    maximum = Maximum(engine=engine)
    engine.run()
    assert (maximum.name, maximum.value) == ("e_maximum", 9)


@pytest.mark.parametrize("average", [False, True])
def test_ignite_precision_and_recall_match_sklearn(s, average):
    batches = classification_batches(seed=1, n_batches=6)
    evaluator = Engine("evaluator", identity, data=batches)
    precision = IgniteMetric(Precision(average=average), engine=evaluator)
    recall = IgniteMetric(Recall(average=average), engine=evaluator)
    evaluator.run()
    y_pred = torch.cat([b[0] for b in batches]).argmax(1).numpy()
    y = torch.cat([b[1] for b in batches]).numpy()
    sk_average = "macro" if average else None
    np.testing.assert_allclose(
        np.asarray(precision.value, dtype=float),
        precision_score(y, y_pred, average=sk_average, zero_division=0),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        np.asarray(recall.value, dtype=float), recall_score(y, y_pred, average=sk_average, zero_division=0), rtol=1e-6
    )
    assert (precision.name, recall.name) == ("evaluator_precision", "evaluator_recall")


def test_ignite_confusion_matrix_matches_sklearn(s):
    batches = classification_batches(seed=2, n_batches=4)
    evaluator = Engine("evaluator", identity, data=batches)
    matrix = IgniteMetric(ConfusionMatrix(num_classes=4), engine=evaluator)
    evaluator.run()
    y_pred = torch.cat([b[0] for b in batches]).argmax(1).numpy()
    y = torch.cat([b[1] for b in batches]).numpy()
    np.testing.assert_array_equal(matrix.value.numpy(), confusion_matrix(y, y_pred, labels=range(4)))
    assert matrix.name == "evaluator_confusion_matrix"


def test_ignite_output_transform_is_applied(s):
    batches = classification_batches(seed=3)
    evaluator = Engine("evaluator", lambda e, b: {"y_pred": b[0], "y": b[1]}, data=batches)
    precision = IgniteMetric(
        Precision(average=True, output_transform=lambda o: (o["y_pred"], o["y"])), engine=evaluator
    )
    evaluator.run()
    assert 0.0 <= float(precision.value) <= 1.0


def test_ignite_metric_rejects_something_else(s):
    engine = Engine("e", identity, data=[1])
    with pytest.raises(TypeError, match="IgniteMetric wraps an ignite.metrics.Metric"):
        IgniteMetric(object(), engine=engine)


def test_accumulators_survive_a_state_dict_round_trip(s):
    """A metric restored mid-epoch computes the same result as one never interrupted."""
    engine = Engine("e", identity, data=[1.0, 2.0, 3.0, 6.0])
    average = AverageOutput(engine=engine)
    engine.n_iteration_completed_ref.attach(lambda: engine.terminate(), once=2)
    engine.run()
    saved = average.state_dict()
    assert saved["accumulated"] == {"total": 3.0, "count": 2}
    with State():
        other_engine = Engine("e", identity, data=[1.0])
        other = AverageOutput(engine=other_engine)
        other.load_state_dict(saved)
        other.update(3.0)
        other.update(6.0)
        assert other.compute() == 3.0
