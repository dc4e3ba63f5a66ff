"""What a Lightning user meets (issue 13): no silent defaults, validation by hand without side effects,
gradient clipping, predict, names after what metrics compute, a batch-size-weighted mean."""

from __future__ import annotations

import copy

import pytest
import torch
from ignite.metrics import (
    Accuracy as IgniteAccuracy,
)
from ignite.metrics import (
    Average,
    Fbeta,
    MeanAbsoluteError,
    MeanSquaredError,
    Precision,
    Recall,
    RootMeanSquaredError,
    TopKCategoricalAccuracy,
)
from ignite.metrics import (
    Loss as IgniteLoss,
)
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import (
    Accuracy,
    AverageOutput,
    Checkpoint,
    EarlyStopping,
    Engine,
    IgniteMetric,
    Loss,
    RunningAverage,
    SupervisedEvaluator,
    SupervisedTrainer,
    TensorBoard,
    predict,
)
from statefire.frame import State
from statefire.plugins import EnginesMetricsComparisonCharts

CE = torch.nn.functional.cross_entropy


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models on a shared machine: one thread is faster than several fighting over cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits(digit_tensors):
    x, y = digit_tensors
    return (x[:300], y[:300]), (x[1500:1700], y[1500:1700])


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def _pipeline(digits, *, lr=0.05, n_epochs=8, metrics=("accuracy", "loss"), **trainer_kwargs):
    (x, y), (xv, yv) = digits
    model = _model()
    trainer = SupervisedTrainer(
        model, torch.optim.SGD(model.parameters(), lr=lr), CE,
        DataLoader(TensorDataset(x, y), batch_size=50), n_epochs=n_epochs, **trainer_kwargs,
    )  # fmt: skip
    evaluator = SupervisedEvaluator(
        model, DataLoader(TensorDataset(xv, yv), batch_size=200), name="val_evaluator",
        run_on=trainer.n_epoch_completed_ref, metrics=list(metrics), loss_fn=CE,
    )  # fmt: skip
    return model, trainer, evaluator


# -- 1. metrics know their direction; the default mode comes from the watched metric ------------


def test_metrics_declare_which_way_is_better():
    """Built-ins and ignite's metrics say whether higher is better; averages of anything do not know."""
    assert (Loss.higher_is_better, Accuracy.higher_is_better) == (False, True)
    assert AverageOutput.higher_is_better is None and RunningAverage.higher_is_better is None
    with State():
        engine = Engine("evaluator", lambda e, b: b, data=[0])
        expected = {
            IgniteAccuracy(): True, Precision(): True, Recall(): True, Fbeta(1.0): True,
            TopKCategoricalAccuracy(k=3): True, MeanAbsoluteError(): False, MeanSquaredError(): False,
            RootMeanSquaredError(): False, IgniteLoss(CE): False, Average(): None,
        }  # fmt: skip
        for index, (metric, direction) in enumerate(expected.items()):
            wrapped = IgniteMetric(metric, engine=engine, name=f"m{index}")
            assert wrapped.higher_is_better is direction, type(metric).__name__
        assert IgniteMetric(Average(), engine=engine, name="declared", higher_is_better=False).higher_is_better is False


def test_early_stopping_on_a_loss_defaults_to_min_and_keeps_training_while_it_falls(digits):
    """The silent wrong stop of issue 13: watching a falling loss with the old default mode="max"
    stopped training at epoch 4 while the loss was still falling. The mode now comes from the Loss:
    training runs all its epochs."""
    losses = []
    with State() as s:
        _, trainer, _ = _pipeline(digits, n_epochs=6)
        s.val_evaluator_loss.value_ref.attach(losses.append)
        stopper = EarlyStopping(s.val_evaluator_loss.value_ref, 3, trainer=trainer)
        trainer.run()
        assert stopper.mode == "min" and not stopper.stopped and trainer.n_epoch_completed == 6
        assert losses == sorted(losses, reverse=True)  # it fell all along
        assert stopper.best_score == losses[-1]
    with State() as s:
        _, trainer, _ = _pipeline(digits, n_epochs=6)
        stopper = EarlyStopping(s.val_evaluator_loss.value_ref, 3, trainer=trainer, mode="max")
        trainer.run()
        assert stopper.stopped and trainer.n_epoch_completed == 4  # what the old default did


def test_early_stopping_on_accuracy_defaults_to_max(digits):
    with State() as s:
        _, trainer, _ = _pipeline(digits, n_epochs=2)
        stopper = EarlyStopping(s.val_evaluator_accuracy.value_ref, 3, trainer=trainer)
        trainer.run()
        assert stopper.mode == "max" and stopper.best_score == max(stopper.best_score, s.val_evaluator_accuracy.value)


def test_a_score_of_unknown_direction_needs_mode():
    """An engine's output or an average of anything: which way is better is not known, so mode= is required."""
    with State():
        trainer = Engine("trainer", lambda e, b: float(b), data=[1, 2], n_epochs=2)
        average = AverageOutput(engine=trainer)
        for ref in (trainer.output_ref, average.value_ref):
            with pytest.raises(ValueError, match=r"EarlyStopping needs mode=.*pass mode='max' \(higher is better\) "
                                                 r"or mode='min'") as caught:  # fmt: skip
                EarlyStopping(ref, 2, trainer=trainer)
            assert ref.path in str(caught.value)
        with pytest.raises(ValueError, match=r"AverageOutput 'trainer_average_output' does not say whether higher"):
            Checkpoint("unused", trigger=trainer.n_epoch_completed_ref, score_ref=average.value_ref)
        average.higher_is_better = False  # declared on the instance: the default follows
        assert EarlyStopping(average.value_ref, 2, trainer=trainer).mode == "min"
        assert EarlyStopping(trainer.output_ref, 2, trainer=trainer, mode="max", name="explicit").mode == "max"


def test_a_best_model_checkpoint_on_a_loss_keeps_the_lowest(digits, tmp_path):
    with State() as s:
        _, trainer, _ = _pipeline(digits, lr=0.5, n_epochs=4)
        losses = []
        s.val_evaluator_loss.value_ref.attach(losses.append)
        best = Checkpoint(tmp_path, trigger=trainer.n_epoch_completed_ref, score_ref=s.val_evaluator_loss.value_ref,
                          n_saved=1)  # fmt: skip
        trainer.run()
    assert best.mode == "min"
    assert best.kept[0][1] == min(losses) and Checkpoint.read(best.last_path)["score"] == min(losses)


# -- 2. validation by hand has no side effect on the handlers that judge training ------------


def test_validation_by_hand_spends_no_patience(digits):
    """Three validations by hand (Lightning's trainer.validate()) used to push n_bad from 3 to 6."""
    with State() as s:
        _, trainer, evaluator = _pipeline(digits, lr=0.0, n_epochs=4)  # lr 0: the loss never improves
        stopper = EarlyStopping(s.val_evaluator_loss.value_ref, 10, trainer=trainer)
        counting = EarlyStopping(s.val_evaluator_loss.value_ref, 10, trainer=trainer, manual_runs=True,
                                 name="counting")  # fmt: skip
        trainer.run()
        assert stopper.n_bad == counting.n_bad == 3
        for _ in range(3):
            evaluator.run()
        assert evaluator.n_epoch_completed == 7 and s.val_evaluator_loss.value is not None
        assert stopper.n_bad == 3 and not stopper.stopped  # measured, not judged
        assert counting.n_bad == 6  # told otherwise: every evaluation counts


def test_an_evaluator_run_from_a_trainer_callback_counts():
    """The ignite way, an evaluator run by a callback of the trainer (no run_on): it runs inside the
    training, so it is judged; the same evaluator run by hand afterwards is not."""
    with State():
        scores = iter([0.5, 0.4, 0.4, 0.3, 0.2, 0.1])
        trainer = Engine("trainer", lambda e, b: b, data=[0], n_epochs=5)
        evaluator = Engine("evaluator", lambda e, b: next(scores), data=[0])
        trainer.n_epoch_completed_ref.attach(lambda: evaluator.run())
        stopper = EarlyStopping(evaluator.output_ref(every=1), 2, trainer=trainer, mode="max")
        trainer.run()
        assert stopper.stopped and trainer.n_epoch_completed == 3 and stopper.n_bad == 2
        evaluator.run()
        assert stopper.n_bad == 2


def test_validation_by_hand_writes_no_best_checkpoint(digits, tmp_path):
    with State() as s:
        _model, trainer, evaluator = _pipeline(digits, n_epochs=2)
        score = s.val_evaluator_accuracy.value_ref
        best = Checkpoint(tmp_path / "best", trigger=score, score_ref=score, n_saved=None)
        every = Checkpoint(tmp_path / "every", trigger=score, score_ref=score, n_saved=None, manual_runs=True,
                           name="every")  # fmt: skip
        trainer.run()
        assert best.n_saves == every.n_saves == 2
        evaluator.run()
        assert best.n_saves == 2 and sorted(p.name.split("_score=")[0] for p in (tmp_path / "best").iterdir()) == [
            "checkpoint_1", "checkpoint_2"]  # fmt: skip
        assert every.n_saves == 3
        trainer.run(n_epochs=1)  # a training again: its evaluations count again
        assert best.n_saves == 3


# -- 4. gradient clipping, as Lightning's gradient_clip_val / gradient_clip_algorithm -------------


def _hand_loop(digits, *, clip, n_epochs=2, scaler=None, accumulation=1, lr=0.5):
    """The reference: a plain torch loop doing what Lightning's fit does with gradient_clip_val."""
    (x, y), _ = digits
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    iteration = 0
    for _ in range(n_epochs):
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=50):
            iteration += 1
            if (iteration - 1) % accumulation == 0:
                optimizer.zero_grad()
            loss = CE(model(xb), yb) / accumulation
            (loss if scaler is None else scaler.scale(loss)).backward()
            if iteration % accumulation:
                continue
            if scaler is not None:
                scaler.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            if clip[0] == "norm":
                torch.nn.utils.clip_grad_norm_(params, clip[1])
            else:
                torch.nn.utils.clip_grad_value_(params, clip[1])
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)
                scaler.update()
    return model


@pytest.mark.parametrize("algorithm", ["norm", "value"])
@pytest.mark.parametrize("with_scaler", [False, True])
def test_clipping_matches_a_hand_written_torch_loop_bit_for_bit(digits, algorithm, with_scaler):
    limit = 0.5 if algorithm == "norm" else 0.01
    reference = _hand_loop(
        digits, clip=(algorithm, limit), scaler=torch.amp.GradScaler("cpu") if with_scaler else None
    )
    with State():
        model, trainer, _ = _pipeline(digits, lr=0.5, n_epochs=2, metrics=(), scaler=with_scaler,
                                      **{f"clip_grad_{algorithm}": limit})  # fmt: skip
        trainer.run()
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    with State():
        unclipped, trainer, _ = _pipeline(digits, lr=0.5, n_epochs=2, metrics=())
        trainer.run()
    clipped = not all(torch.equal(a, b) for a, b in zip(model.parameters(), unclipped.parameters(), strict=True))
    assert clipped


def test_clipping_with_gradient_accumulation_clips_the_accumulated_gradient(digits):
    reference = _hand_loop(digits, clip=("norm", 0.3), accumulation=2)
    with State():
        model, trainer, _ = _pipeline(digits, lr=0.5, n_epochs=2, metrics=(), clip_grad_norm=0.3,
                                      gradient_accumulation_steps=2)  # fmt: skip
        trainer.run()
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours, theirs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"clip_grad_norm": 1.0, "clip_grad_value": 0.5},
            ValueError,
            r"takes clip_grad_norm or clip_grad_value, not both",
        ),
        (
            {"clip_grad_norm": 0},
            ValueError,
            r"clip_grad_norm of trainer 'trainer' must be a positive number or None, got 0",
        ),
        (
            {"clip_grad_value": "1"},
            TypeError,
            r"clip_grad_value of trainer 'trainer' must be a positive number or None",
        ),
    ],
)  # fmt: skip
def test_clipping_arguments_are_checked(kwargs, error, message):
    with State() as s:
        model = torch.nn.Linear(2, 1)
        with pytest.raises(error, match=message):
            SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), CE, [], **kwargs)
        assert list(s.features) == []  # refused before anything was registered


# -- 5. predict -----------------------------------------------------------------------------------


def test_predict_returns_the_outputs_and_leaves_everything_as_it_was(digits):
    (x, y), _ = digits
    with State() as s:
        model, trainer, _ = _pipeline(digits, n_epochs=1)
        trainer.run()
        features, saved = list(s.features), copy.deepcopy(s.state_dict())
        model.train()
        model[0].eval()  # a submodule in its own mode (a frozen layer) gets it back too
        shuffled = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
        torch.manual_seed(5)
        outputs = predict(model, shuffled)
        after = torch.rand(3)
        torch.manual_seed(5)
        assert torch.equal(after, torch.rand(3))  # the loader's draws were put back
        assert [len(o) for o in outputs] == [64, 64, 64, 64, 44] and outputs[0].requires_grad is False
        assert list(s.features) == features and s.state_dict().keys() == saved.keys()
        counters = {name: {k: v for k, v in engine.items() if k != "data_state"}  # the RNG was reseeded above
                    for name, engine in s.state_dict()["engines"].items()}  # fmt: skip
        assert counters == {name: {k: v for k, v in engine.items() if k != "data_state"}
                            for name, engine in saved["engines"].items()}  # no counter moved  # fmt: skip
        assert model.training and not model[0].training and model[2].training
        ordered = predict(model, DataLoader(TensorDataset(x), batch_size=128))  # batches of x alone
        model.eval()
        with torch.no_grad():
            assert torch.equal(torch.cat(ordered), model(x))


def test_predict_says_what_batch_it_cannot_read():
    model = torch.nn.Linear(2, 1)
    with pytest.raises(TypeError, match=r"batch 0 is a dict; pass prepare_batch=fn\(batch, device, non_blocking\)"):
        predict(model, [{"x": torch.zeros(1, 2)}])
    with pytest.raises(TypeError, match=r"predict needs a torch.nn.Module .* got 'model'"):
        predict("model", [])
    out = predict(model, [{"x": torch.zeros(1, 2)}], prepare_batch=lambda b, device, nb: (b["x"], None))
    assert out[0].shape == (1, 1) and model.training


# -- 6. names after what a metric computes; the batch-size-weighted mean ---------------------------


def test_fbeta_is_named_after_what_it_computes_and_charted_as_fbeta(digits, tmp_path):
    with State() as s:
        _, trainer, _ = _pipeline(digits, n_epochs=2, metrics=("accuracy", Fbeta(1.0)))
        charts = EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_epoch_completed_ref)
        writer = TensorBoard(tmp_path)
        trainer.run()
        writer.close()
        assert "val_evaluator_fbeta" in s.metrics and 0 < s.val_evaluator_fbeta.value <= 1
        assert "fbeta" in charts.metric_types
    events = EventAccumulator(str(tmp_path / "val_evaluator"))
    events.Reload()
    assert [e.step for e in events.Scalars("fbeta")] == [1, 2]


def test_a_named_function_names_its_metrics_lambda():
    from ignite.metrics import MetricsLambda

    def harmonic_mean(p, r):
        return 2 * p * r / (p + r + 1e-15)

    with State():
        engine = Engine("evaluator", lambda e, b: b, data=[0])
        metric = IgniteMetric(MetricsLambda(harmonic_mean, Precision(), Recall()), engine=engine)
        assert metric.name == "evaluator_harmonic_mean" and metric.higher_is_better is None


def test_weighted_average_output_is_the_loss_over_all_samples(digits):
    """With an uneven last batch the mean of batch losses is not the loss of the data; weighted=True is."""
    (x, y), _ = digits
    model = _model()
    loader = DataLoader(TensorDataset(x, y), batch_size=128)  # 128, 128, 44
    with State(), torch.no_grad():
        engine = Engine("losses", lambda e, batch: CE(model(batch[0]), batch[1]), data=loader)
        unweighted = AverageOutput(engine=engine)
        weighted = AverageOutput(engine=engine, weighted=True, name="weighted")
        engine.run()
        whole = CE(model(x), y).item()
        assert weighted.value == pytest.approx(whole, rel=1e-6)
        assert abs(unweighted.value - whole) > 1e-4
    with State(), pytest.raises(TypeError, match=r"weighted of an AverageOutput must be True or False, got 'yes'"):
        AverageOutput(engine=Engine("e", lambda e, b: b, data=[0]), weighted="yes")


def test_predict_with_autocast_and_a_device():
    model = torch.nn.Linear(4, 2)
    batches = [(torch.randn(3, 4), torch.zeros(3)), (torch.randn(2, 4), torch.zeros(2))]
    outputs = predict(model, batches, amp_mode="amp", device="cpu")
    assert [o.dtype for o in outputs] == [torch.bfloat16, torch.bfloat16] and [len(o) for o in outputs] == [3, 2]
    with pytest.raises(ValueError, match=r"amp_mode of predict must be None or 'amp', got 'apex'"):
        predict(model, batches, amp_mode="apex")
