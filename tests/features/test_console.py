"""EpochLog: the epoch summary line ignite users print by hand."""

from __future__ import annotations

import io
import re

import pytest
import torch

from statefire.features import AverageOutput, Engine, EpochLog, SupervisedEvaluator, SupervisedTrainer


def test_one_line_per_epoch_with_the_evaluators_current_metrics(s):
    """Each line shows the epoch of the run, the trainer's and the evaluator's metrics as they are after the
    evaluation of that epoch (the evaluator ran first), and the epoch's time."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data[:384], dtype=torch.float32) / 16
    y = torch.tensor(digits.target[:384])
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    loss_fn = torch.nn.functional.cross_entropy
    train = [(x[i:i + 64], y[i:i + 64]) for i in range(0, 256, 64)]
    trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.5), loss_fn, train, n_epochs=3)
    AverageOutput(engine=trainer, name="trainer_loss")
    SupervisedEvaluator(model, [(x[256:], y[256:])], name="val_evaluator", run_on=trainer.n_epoch_completed_ref,
                        metrics=["accuracy", "loss"], loss_fn=loss_fn)
    out = io.StringIO()
    log = EpochLog(trainer, file=out)
    expected = []
    trainer.n_epoch_completed_ref.attach(lambda: expected.append(
        (s.trainer_loss.value, s.val_evaluator_accuracy.value, s.val_evaluator_loss.value)), priority=-1)
    trainer.run()

    lines = out.getvalue().splitlines()
    assert lines == log.lines and log.n_lines == 3
    pattern = re.compile(
        r"^Epoch\[(\d)/3\] trainer loss (\S+) \| val_evaluator accuracy (\S+) loss (\S+) \| \d+\.\d\d s$"
    )
    for epoch, (line, (loss, accuracy, val_loss)) in enumerate(zip(lines, expected, strict=True), start=1):
        match = pattern.match(line)
        assert match, line
        assert int(match[1]) == epoch
        assert float(match[2]) == pytest.approx(float(loss), rel=1e-3)
        assert float(match[3]) == pytest.approx(float(accuracy), rel=1e-3)
        assert float(match[4]) == pytest.approx(float(val_loss), rel=1e-3)


def test_every_and_a_chosen_metric(s):
    trainer = Engine("trainer", lambda engine, batch: float(batch), data=[1, 2], n_epochs=4)
    shown = AverageOutput(engine=trainer, name="trainer_mean")
    AverageOutput(engine=trainer, name="trainer_hidden")
    out = io.StringIO()
    EpochLog(trainer, [shown], every=2, file=out)
    trainer.run()
    lines = out.getvalue().splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["Epoch[2/4] trainer mean 1.5", "Epoch[4/4] trainer mean 1.5"]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"engine": 3}, TypeError, "engine of EpochLog must be an Engine, got 3"),
        ({"every": 0}, ValueError, "every of EpochLog must be a positive int, got 0"),
        ({"metrics": ["trainer_loss"]}, TypeError, "metrics of EpochLog must be metric features, got 'trainer_loss'"),
    ],
)
def test_bad_arguments(s, kwargs, error, match):
    trainer = Engine("trainer", lambda engine, batch: batch, data=[1])
    with pytest.raises(error, match=re.escape(match)):
        EpochLog(**{"engine": trainer, **kwargs})
