"""Quickstart: a trainer and two evaluators on the digits data set, in a few lines.

An MLP learns sklearn's 8x8 digits; a train-set evaluator and a validation
evaluator follow the trainer's epochs, each computing accuracy and loss.
`build()` wires the experiment into the current State (examples/demo.py reuses it).
Run: python examples/quickstart.py
"""

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import SupervisedEvaluator, SupervisedTrainer
from statefire.frame import state


def build() -> None:
    """The trainer, its two evaluators and the per-epoch report, in the current State."""
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a model this small trains faster on one thread

    # Data: 1797 digits, 64 pixels each, split 80/20.
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True,
                              generator=torch.Generator().manual_seed(0))
    train_eval_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=256)
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256)

    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.functional.cross_entropy

    # The experiment: one trainer, two evaluators following its epochs.
    SupervisedTrainer(model, optimizer, loss_fn, train_loader, n_epochs=10)
    for name, loader in [("train_evaluator", train_eval_loader), ("val_evaluator", val_loader)]:
        SupervisedEvaluator(model, loader, name=name, run_on=state.trainer.n_epoch_completed_ref,
                            metrics=["accuracy", "loss"], loss_fn=loss_fn)
    state.trainer.n_epoch_completed_ref.attach(report)


def report(epoch: int) -> None:
    # Evaluators run on this ref first (higher priority), so their metrics are current.
    m = state.metrics
    print(f"epoch {epoch:2d}  samples {state.trainer.n_samples:6d}  "
          f"train acc {m.train_evaluator_accuracy.value:.3f} loss {m.train_evaluator_loss.value:.3f}  "
          f"val acc {m.val_evaluator_accuracy.value:.3f} loss {m.val_evaluator_loss.value:.3f}")


if __name__ == "__main__":
    build()
    state.trainer.run()
    print(state)
