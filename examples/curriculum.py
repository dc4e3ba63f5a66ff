"""Curriculum learning: noise augmentation raised every 2 epochs, charted, resumed exactly.

An MLP learns sklearn's 8x8 digits with Gaussian noise added to each
training image. The noise strength is an attribute of the data set,
`train_set.strength`; `Component(train_set, ["strength"], name="noise")`
makes it a state object, `state.noise.strength`. So one callback raises it
every 2 epochs, a `ScalarChart` writes it against the trainer's sample
count (next to the validation accuracy), it is in `state.config()`, and a
checkpoint saves it together with the data set's own noise generator (the
data set has `state_dict`/`load_state_dict`, which the component saves too).

The script trains three times, each in a fresh State: straight through;
again, stopped by a crash in the middle of epoch 7; and resumed from that
run's latest checkpoint (saved at every epoch end). The resumed run ends
with the same noise strength and bit-identical weights as the run that was
never stopped.

Run: python examples/curriculum.py [out_dir]     (default ./runs/curriculum)
Then: tensorboard --logdir runs/curriculum/resumed/tb
"""

import sys
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, TensorDataset

from statefire.features import Checkpoint, Component, ScalarChart, SupervisedEvaluator, SupervisedTrainer, TensorBoard
from statefire.frame import State

out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/curriculum")
N_EPOCHS, RAISE_EVERY, STEP = 10, 2, 0.15
torch.set_num_threads(1)  # a model this small trains fastest on one thread

pixels, labels = load_digits(return_X_y=True)
x_train, x_val, y_train, y_val = train_test_split(
    torch.tensor(pixels, dtype=torch.float32) / 16.0, torch.tensor(labels), test_size=0.2, random_state=0
)


class NoisyDigits(Dataset):
    """Digits plus Gaussian noise of standard deviation `strength`, drawn from the set's own generator."""

    def __init__(self, x, y, strength=0.0, seed=0):
        self.x, self.y, self.strength = x, y, strength
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i] + self.strength * torch.randn(self.x.shape[1], generator=self.generator), self.y[i]

    # The generator's position is part of the run: the component saves and restores it.
    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state_dict):
        self.generator.set_state(state_dict["generator"])


class Crash(Exception):
    """What stops the second run in the middle of an epoch, as a killed job would stop."""


def build(run_dir):
    """Every feature of the experiment, in the current State; returns the trainer and the model."""
    torch.manual_seed(0)
    train_set = NoisyDigits(x_train, y_train, strength=0.0, seed=1)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(2))
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=512)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.functional.cross_entropy

    trainer = SupervisedTrainer(model, optimizer, loss_fn, train_loader, n_epochs=N_EPOCHS)
    evaluator = SupervisedEvaluator(model, val_loader, name="val_evaluator", run_on=trainer.n_epoch_completed_ref,
                                    metrics=["accuracy"])
    noise = Component(train_set, ["strength"], name="noise")

    @trainer.n_epoch_completed_ref.attach(every=RAISE_EVERY)
    def harder():
        noise.strength = round(noise.strength + STEP, 6)

    # The strength at every epoch end, on the same x axis as the accuracy.
    ScalarChart(noise.strength_ref, trainer.n_samples_ref, trigger=trainer.n_epoch_completed_ref, run="trainer")
    ScalarChart(evaluator.metrics[0].value_ref, trainer.n_samples_ref)
    TensorBoard(run_dir / "tb")
    Checkpoint(run_dir / "checkpoints", trigger=trainer.n_epoch_completed_ref, n_saved=2)
    return trainer, model


def log_epochs(state):
    trainer, noise, accuracy = state.trainer, state.noise, state.val_evaluator_accuracy
    trainer.n_epoch_completed_ref.attach(
        lambda epoch: print(
            f"  epoch {epoch:2d}  val accuracy {accuracy.value:.3f}  noise from now on {noise.strength:.2f}"
        ),
        priority=-1,  # after the evaluator and the raise
    )


print("straight through:")
with State() as straight:
    trainer, reference = build(out_dir / "straight")
    log_epochs(straight)
    trainer.run()
    straight.tensor_board.close()
    print("  config:", {k: v for k, v in straight.config().items() if k.startswith("components.")})

print("stopped by a crash in epoch 7:")
with State() as crashed:
    trainer, _ = build(out_dir / "resumed")
    log_epochs(crashed)

    @trainer.n_iteration_completed_ref.attach(once=6 * len(trainer.data) + 10)
    def crash():
        raise Crash("the job was killed")

    try:
        trainer.run()
    except Crash:
        print(f"  crashed at iteration {trainer.n_iteration_completed}, noise {crashed.noise.strength}")
    crashed.tensor_board.close()

print("resumed from the latest checkpoint:")
with State() as resumed:
    trainer, model = build(out_dir / "resumed")
    log_epochs(resumed)
    info = Checkpoint.load(Checkpoint.latest(out_dir / "resumed" / "checkpoints"))
    print(f"  loaded {info.path.name}: epoch {trainer.n_epoch_completed}, noise {resumed.noise.strength}")
    trainer.run()
    resumed.tensor_board.close()

same_weights = all(
    torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True)
)
same_noise = resumed.noise.strength == straight.noise.strength
print(f"resumed run identical to the straight one: weights {same_weights}, noise strength {same_noise}")
if not (same_weights and same_noise):
    sys.exit("the resumed run differs from the uninterrupted one")
print(f"charts in {out_dir}; see them with: tensorboard --logdir {out_dir / 'resumed' / 'tb'}")
