"""Components and the supervised pipelines, on real data, and against ignite."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import Model, Optimizer, OutputHandler, SupervisedEvaluator, SupervisedTrainer
from statefire.frame import State


@pytest.fixture(scope="module")
def digits(digit_tensors):
    x, y = digit_tensors
    return x[:600], y[:600], x[600:900], y[600:900]


def mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def test_optimizer_param_group_values_are_state_objects(s):
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(
        [{"params": [model.weight]}, {"params": [model.bias]}], lr=0.1, momentum=0.9, weight_decay=1e-4
    )
    sgd = Optimizer(optimizer)
    assert s.sgd is sgd and (sgd.lr, sgd.momentum, sgd.weight_decay) == (0.1, 0.9, 1e-4)
    seen: list = []
    sgd.lr_ref.attach(seen.append)
    sgd.lr = 0.01
    assert seen == [0.01] and [g["lr"] for g in optimizer.param_groups] == [0.01, 0.01]
    optimizer.param_groups[0]["lr"] = 0.5  # as a torch scheduler does
    assert sgd.lr == 0.5 and sgd.lr_ref.value == 0.5


def test_components_round_trip_through_the_state_dict(s):
    model = torch.nn.Linear(3, 2)
    adam = Optimizer(torch.optim.Adam(model.parameters(), lr=0.01))
    Model(model)
    model(torch.randn(4, 3)).sum().backward()
    adam.optimizer.step()
    saved = copy.deepcopy(s.state_dict())
    assert set(saved["components"]) == {"linear", "adam"}
    with torch.no_grad():
        model.weight.zero_()
    adam.lr = 0.5
    s.load_state_dict(saved)
    assert torch.equal(model.weight, saved["components"]["linear"]["module"]["weight"])
    assert adam.lr == 0.01


def test_component_wrappers_reject_other_objects(s):
    with pytest.raises(TypeError, match="Model wraps a torch.nn.Module, got str"):
        Model("net")
    with pytest.raises(TypeError, match="Optimizer wraps a torch.optim.Optimizer"):
        Optimizer(object())


def test_pipelines_share_one_model_component(s, digits):
    x, y, _, _ = digits
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(x, y), batch_size=64)
    SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, loader)
    for name in ("train_evaluator", "val_evaluator"):
        SupervisedEvaluator(model, loader, name=name, run_on=s.trainer.n_epoch_completed_ref, metrics=["accuracy"])
    assert [type(c).__name__ for c in s.components] == ["Model", "Optimizer"]
    assert s.val_evaluator.model is s.trainer.model


def test_training_on_digits_learns_and_evaluators_follow(s, digits):
    x, y, xv, yv = digits
    model = mlp()
    loss_fn = torch.nn.functional.cross_entropy
    train = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    trainer = SupervisedTrainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), loss_fn, train, n_epochs=5)
    evaluator = SupervisedEvaluator(
        model, DataLoader(TensorDataset(xv, yv), batch_size=100), name="val_evaluator",
        run_on=trainer.n_epoch_completed_ref, metrics=["accuracy", "loss"], loss_fn=loss_fn,
    )  # fmt: skip
    accuracies: list = []
    s.val_evaluator_accuracy.value_ref.attach(accuracies.append)
    trainer.run()
    assert len(accuracies) == 5 and accuracies[-1] > 0.8 and accuracies[-1] >= accuracies[0]  # chance is 0.1
    assert evaluator.n_run_completed == 5 and model.training  # the evaluator gave the mode back
    assert trainer.output.requires_grad is False and trainer.output.ndim == 0


def test_evaluator_output_is_the_prediction_pair_without_grad(s, digits):
    x, y, *_ = digits
    model = mlp()
    evaluator = SupervisedEvaluator(model, [(x[:10], y[:10])])
    evaluator.run()
    y_pred, target = evaluator.output
    assert y_pred.shape == (10, 10) and not y_pred.requires_grad and torch.equal(target, y[:10])


def test_trainer_output_transform_and_gradient_accumulation(s, digits):
    """Accumulating over 2 batches of 16 steps like one batch of 32 (mean losses)."""
    x, y, *_ = digits
    data16 = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    data32 = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 64, 32)]
    loss_fn = torch.nn.functional.cross_entropy
    a, b = mlp(), mlp()
    trainer = SupervisedTrainer(a, torch.optim.SGD(a.parameters(), lr=0.1), loss_fn, data16,
                                gradient_accumulation_steps=2, output_transform=lambda x, y, y_pred, loss: loss.item())
    trainer.run()
    assert isinstance(trainer.output, float)
    with State():
        SupervisedTrainer(b, torch.optim.SGD(b.parameters(), lr=0.1), loss_fn, data32).run()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_mixed_precision_steps_exactly_as_a_hand_written_autocast_loop(s, digits):
    """amp_mode="amp" with a GradScaler: the losses, weights and scaler state of torch's own recipe."""
    x, y, xv, yv = digits
    data = [(x[i:i + 50], y[i:i + 50]) for i in range(0, 300, 50)]
    loss_fn = torch.nn.functional.cross_entropy
    model = mlp()
    trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn, data,
                                n_epochs=2, amp_mode="amp", scaler=True)
    evaluator = SupervisedEvaluator(model, [(xv, yv)], name="val_evaluator", amp_mode="amp",
                                    run_on=trainer.n_epoch_completed_ref, metrics=["accuracy"])
    losses = []
    trainer.output_ref.attach(losses.append)
    trainer.run()

    by_hand = mlp()
    optimizer = torch.optim.SGD(by_hand.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    expected = []
    for _ in range(2):
        for xb, yb in data:
            optimizer.zero_grad()
            with torch.autocast("cpu"):
                loss = loss_fn(by_hand(xb), yb)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            expected.append(loss.detach())
    assert losses[0].dtype == torch.float32 and evaluator.output[0].dtype == torch.bfloat16  # autocast ran
    torch.testing.assert_close(torch.stack(losses), torch.stack(expected), rtol=0, atol=0)
    for p, q in zip(model.parameters(), by_hand.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert s.state_dict()["engines"]["trainer"]["scaler"] == scaler.state_dict()
    assert losses[-1] < losses[0] and s.val_evaluator_accuracy.value is not None


def test_the_scaler_is_restored_with_the_state(s):
    model = torch.nn.Linear(2, 2)
    trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.mse_loss,
                                [(torch.randn(4, 2), torch.randn(4, 2))], amp_mode="amp", scaler=True)
    saved = s.state_dict()
    saved["engines"]["trainer"]["scaler"]["scale"] = 1024.0
    s.load_state_dict(saved)
    assert trainer.scaler.get_scale() == 1024.0


def test_amp_arguments_are_checked(s):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(
        ValueError, match=r"amp_mode of engine 'trainer' must be None or 'amp', got 'apex'; apex is not"
    ):
        SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.mse_loss, [],
                          amp_mode="apex")
    with pytest.raises(TypeError, match=r"scaler of trainer 'trainer' must be a bool or a torch.amp.GradScaler, got 2"):
        SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.nn.functional.mse_loss, [],
                          scaler=2)


def test_evaluator_metric_specs(s, digits):
    from ignite.metrics import Precision

    from statefire.features import Accuracy

    x, y, *_ = digits
    model = mlp()
    evaluator = SupervisedEvaluator(
        model, [(x[:50], y[:50])], name="ev",
        metrics=["accuracy", Precision(average=True), lambda engine: Accuracy(engine=engine, name="ev_acc2")],
    )  # fmt: skip
    evaluator.run()
    assert sorted(m.name for m in s.metrics) == ["ev_acc2", "ev_accuracy", "ev_precision"]
    assert s.ev_accuracy.value == s.ev_acc2.value
    with pytest.raises(ValueError, match="metric 'loss' of evaluator 'ev2' needs loss_fn"):
        SupervisedEvaluator(model, [(x, y)], name="ev2", metrics=["loss"])
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        SupervisedEvaluator(model, [(x, y)], name="ev3", metrics=["f1"])


def test_a_batch_that_is_not_a_pair_gets_a_clear_error(s):
    model = torch.nn.Linear(2, 2)
    trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
                                torch.nn.functional.mse_loss, [torch.zeros(3, 2)])
    with pytest.raises(TypeError, match="a supervised batch must be a pair"):
        trainer.run()


def test_a_trainer_holds_at_most_the_last_loss_and_none_after_its_run(s, digits):
    """Each loss (graph and all) lives until the next iteration's forward pass, as a hand-written
    loop's `loss` variable does, never longer; when the run ends, none is held."""
    import gc
    import weakref

    x, y, *_ = digits
    losses: list = []

    def keep_a_weak_reference(x, y, y_pred, loss):
        losses.append(weakref.ref(loss))
        return loss.detach().item()

    model = mlp()
    trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.05), torch.nn.functional.cross_entropy,
                                [(x[i:i + 50], y[i:i + 50]) for i in range(0, 300, 50)], n_epochs=2,
                                output_transform=keep_a_weak_reference)
    alive: list = []
    trainer.n_iteration_completed_ref.attach(lambda: alive.append(sum(ref() is not None for ref in losses)))
    trainer.run()
    gc.collect()
    assert len(losses) == 12 and max(alive) <= 1  # at most the iteration's own loss: the previous ones let go
    assert all(ref() is None for ref in losses)  # the run is over: nothing held


def test_same_losses_and_weights_as_ignite(digits):
    """Same model, data and seed: ignite's supervised trainer and statefire's agree exactly."""
    from ignite.engine import Events, create_supervised_trainer

    x, y, *_ = digits
    loss_fn = torch.nn.functional.cross_entropy

    def loader():
        return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(1))

    ignite_model = mlp(seed=5)
    ignite_trainer = create_supervised_trainer(
        ignite_model, torch.optim.SGD(ignite_model.parameters(), lr=0.05, momentum=0.9), loss_fn
    )
    ignite_losses: list = []
    ignite_trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: ignite_losses.append(e.state.output))
    ignite_trainer.run(loader(), max_epochs=3)

    with State():
        model = mlp(seed=5)
        trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                                    loss_fn, loader(), n_epochs=3)
        losses: list = []
        OutputHandler(trainer.output_ref, float, name="loss_value").output_ref.attach(losses.append)
        trainer.run()

    assert losses == ignite_losses  # exactly, iteration by iteration (hence epoch by epoch)
    n = len(losses) // 3
    epoch_means = [sum(losses[i * n:(i + 1) * n]) / n for i in range(3)]
    assert epoch_means == [sum(ignite_losses[i * n:(i + 1) * n]) / n for i in range(3)]
    for mine, theirs in zip(model.state_dict().values(), ignite_model.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs)


def test_two_pipelines_with_models_of_one_class_get_distinct_components(s):
    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    data = [(torch.randn(4, 2), torch.randn(4, 1))]
    SupervisedTrainer(a, torch.optim.SGD(a.parameters(), lr=0.1), torch.nn.functional.mse_loss, data, name="ta")
    SupervisedTrainer(b, torch.optim.SGD(b.parameters(), lr=0.1), torch.nn.functional.mse_loss, data, name="tb")
    assert [c.name for c in s.components] == ["linear", "sgd", "linear_2", "sgd_2"]
    assert s.tb.model.module is b
