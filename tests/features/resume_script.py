"""A small training run that resumes from its latest checkpoint; run by test_resume.py.

    python resume_script.py WORKDIR {own,global} [--kill KIND:N]
    python resume_script.py --serve


Trains a tiny MLP on digits (the tensors are prepared by the test in
WORKDIR/data.pt), checkpointing every 4 iterations into WORKDIR/ckpt. On
start it loads `Checkpoint.latest(...)` if there is one. Every logged value
is appended to WORKDIR/log.txt with one `os.write` on an O_APPEND file, so it
survives a SIGKILL. `--kill` makes the process SIGKILL itself at a precise
point:

- `iter:N`  after iteration N completed (before a checkpoint on it is saved);
- `step:N`  inside iteration N, after the optimizer step, before it completes;
- `save:N`  halfway through writing the checkpoint of iteration N;
- `epoch:N` when epoch N completed, after the evaluator ran.

At the end it writes WORKDIR/final.pt (model and optimizer state dicts).

`--serve` reads one JSON argument list per stdin line and runs each in a
child process forked from this one (which has imported torch already, so a
restart costs no import time); it answers `pid <pid>` when the child starts
and `exit <code>` when it ends (-9 for a SIGKILL).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
from pathlib import Path

import torch
from forked import fork_call, wait_exit  # this script's folder is on sys.path

from statefire.features import AverageOutput, Checkpoint, SupervisedEvaluator, SupervisedTrainer
from statefire.features import checkpoint as checkpoint_module
from statefire.frame import state

BATCH = 32
EPOCHS = 3
EVERY = 4


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("loader", choices=["own", "global"])
    parser.add_argument("--kill", default=None)
    args = parser.parse_args(argv)
    workdir: Path = args.workdir
    log_fd = os.open(workdir / "log.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(*words: object) -> None:
        os.write(log_fd, (" ".join(map(str, words)) + "\n").encode())

    def die() -> None:
        log("killed", args.kill)
        os.kill(os.getpid(), signal.SIGKILL)

    torch.manual_seed(0)
    data = torch.load(workdir / "data.pt", weights_only=True)
    train = torch.utils.data.TensorDataset(data["x_train"], data["y_train"])
    val = torch.utils.data.TensorDataset(data["x_val"], data["y_val"])
    generator = torch.Generator().manual_seed(1) if args.loader == "own" else None
    train_loader = torch.utils.data.DataLoader(train, batch_size=BATCH, shuffle=True, generator=generator)
    val_loader = torch.utils.data.DataLoader(val, batch_size=64)

    model = torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(32, 10)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, train_loader, n_epochs=EPOCHS)
    SupervisedEvaluator(
        model, val_loader, name="val_evaluator", run_on=trainer.n_epoch_completed_ref,
        metrics=["accuracy", "loss"], loss_fn=torch.nn.functional.cross_entropy,
    )  # fmt: skip
    average = AverageOutput(engine=trainer)  # its sums are saved mid-epoch
    Checkpoint(workdir / "ckpt", trigger=trainer.n_iteration_completed_ref(every=EVERY), n_saved=2)

    trainer.n_iteration_completed_ref.attach(lambda n: log("it", n, float(trainer.output).hex()))
    average.value_ref.attach(lambda v: log("avg", trainer.n_epoch_completed, float(v).hex()))
    state.val_evaluator_accuracy.value_ref.attach(lambda v: log("acc", trainer.n_epoch_completed, float(v).hex()))
    state.val_evaluator_loss.value_ref.attach(lambda v: log("val", trainer.n_epoch_completed, float(v).hex()))

    if args.kill:
        kind, at = args.kill.split(":")
        at = int(at)
        if kind == "iter":
            trainer.n_iteration_completed_ref.attach(lambda n: die() if n == at else None)
        elif kind == "step":
            trainer.output_ref.attach(lambda: die() if trainer.n_iteration_started == at else None)
        elif kind == "epoch":
            trainer.n_epoch_completed_ref.attach(lambda n: die() if n == at else None)
        elif kind == "save":
            real_save = checkpoint_module._AtomicDiskSaver._save_func

            def half_save(saver, payload, path, func):
                def write_half_then_die(obj, file):
                    buffer = io.BytesIO()
                    func(obj, buffer)
                    file.write(buffer.getvalue()[: buffer.tell() // 2])
                    file.flush()
                    os.fsync(file.fileno())
                    die()

                at_point = trainer.n_iteration_completed == at
                return real_save(saver, payload, path, write_half_then_die if at_point else func)

            checkpoint_module._AtomicDiskSaver._save_func = half_save
        else:
            raise SystemExit(f"unknown kill point {args.kill!r}")

    latest = Checkpoint.latest(workdir / "ckpt")
    if latest is not None:
        info = Checkpoint.load(latest)
        log("resumed", info.save_number, trainer.n_iteration_completed, latest.name)
    else:
        log("started")
    trainer.run()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, workdir / "final.pt")
    log("done", trainer.n_iteration_completed)


def serve() -> None:
    """Run each stdin line's arguments in a forked child; report its pid and exit code."""
    for line in sys.stdin:
        argv = json.loads(line)
        pid = fork_call(main, argv)
        print("pid", pid, flush=True)
        print("exit", wait_exit(pid), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main()
