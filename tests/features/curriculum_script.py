"""A curriculum training run that resumes from its latest checkpoint; run by test_component.py.

    python curriculum_script.py WORKDIR[:N] [WORKDIR[:N] ...]

Trains a small MLP on digits (prepared by the test in WORKDIR/data.pt) with
Gaussian pixel noise whose strength is an attribute of the data set,
exposed as `Component(train_set, ["strength"], name="noise")`. A callback
raises the strength every 2 epochs; a checkpoint is saved at every epoch
end. On start it loads `Checkpoint.latest(...)` if there is one and logs
`resumed <iteration> <strength>`, the strength read from the data set
itself. Every iteration logs `it <n> <loss> <strength>` with one `os.write`
on an O_APPEND file, so the log survives a SIGKILL. `--kill-at N` makes the
process SIGKILL itself once iteration N completed. At the end it writes
WORKDIR/final.pt: the weights, the strength and the data set's noise
generator state.

Each `WORKDIR[:N]` is one training run (`:N` for `--kill-at N`), in a child
process forked from this one, one after the other: this process imports
torch and statefire once, so a run costs its training only. Each run's exit
code is printed as `exit <code>` (-9 for a SIGKILL).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from forked import fork_call, wait_exit  # noqa: E402  (this script's folder is on sys.path)

from statefire.features import Checkpoint, Component, SupervisedTrainer  # noqa: E402
from statefire.frame import state  # noqa: E402

EPOCHS = 6
BATCH = 32


class NoisyDigits(torch.utils.data.Dataset):
    """Digits with Gaussian pixel noise of standard deviation `strength`, from its own generator."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, strength: float = 0.0, seed: int = 0) -> None:
        self.x, self.y, self.strength = x, y, strength
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(self.x.shape[1], generator=self.generator)
        return self.x[i] + self.strength * noise, self.y[i]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.generator.set_state(state_dict["generator"])


def train(workdir: Path, kill_at: int | None) -> None:
    log_fd = os.open(workdir / "log.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(*words: object) -> None:
        os.write(log_fd, (" ".join(map(str, words)) + "\n").encode())

    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = torch.load(workdir / "data.pt", weights_only=True)
    train_set = NoisyDigits(data["x"], data["y"], strength=0.0, seed=2)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(1)
    )
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, loader, n_epochs=EPOCHS)
    noise = Component(train_set, ["strength"], name="noise")

    @trainer.n_epoch_completed_ref.attach(every=2)
    def harder() -> None:
        noise.strength = round(noise.strength + 0.25, 6)

    Checkpoint(workdir / "ckpt", trigger=trainer.n_epoch_completed_ref, n_saved=2)

    @trainer.n_iteration_completed_ref.attach
    def record(n: int) -> None:
        log("it", n, repr(float(trainer.output)), noise.strength)
        if n == kill_at:
            log("killed", n)
            os.kill(os.getpid(), signal.SIGKILL)

    latest = Checkpoint.latest(workdir / "ckpt")
    if latest is None:
        log("started")
    else:
        Checkpoint.load(latest)
        log("resumed", trainer.n_iteration_completed, train_set.strength)
    trainer.run()
    torch.save(
        {
            "model": model.state_dict(),
            "strength": train_set.strength,
            "generator": train_set.generator.get_state(),
            "config": state.config(),
        },
        workdir / "final.pt",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", help="WORKDIR or WORKDIR:N (SIGKILL after iteration N)")
    for run in parser.parse_args().runs:
        workdir, _, kill_at = run.partition(":")
        pid = fork_call(train, Path(workdir), int(kill_at) if kill_at else None)
        print("exit", wait_exit(pid), flush=True)


if __name__ == "__main__":
    main()
