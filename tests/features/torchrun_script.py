"""Two processes launched by torchrun (gloo, CPU); run by `test_torchrun.py` as

    python -m torch.distributed.run --standalone --nproc_per_node=2 torchrun_script.py OUT {first,second} [--kill-at N]

OUT holds `data.pt` (digits tensors, prepared by the test). Each process writes
`OUT/<mode>_rank<N>.json` with what it saw. Two launches, to start torch as
few times as possible:

- `first --kill-at N`: a training checkpointing into `OUT/killed/`, where
  the first process SIGKILLs both processes when iteration N completed.
- `second`: (1) the killed training relaunched: it resumes from its latest
  checkpoint and ends in `OUT/killed/final.pt`; (2) a NaN loss on the second
  process only, at iteration 5, with a `TerminateOnNan`; (3) an
  `EarlyStopping` whose patience runs out on the second process only; (4) a
  model trained through `auto_model`, `auto_optim` and `auto_dataloader`
  (final weights in `OUT/auto.pt`); (5) the killed training again,
  uninterrupted from scratch, in `OUT/full/`. The launch exits 0.

The resume run has per-process randomness in every generator: dropout
(torch), input noise (numpy) and a noise scale (python's `random`), each
seeded differently on each process, so a resume that gave every process the
first one's RNG states would end with other weights.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from statefire.features import (
    AverageOutput,
    Checkpoint,
    EarlyStopping,
    Engine,
    SupervisedTrainer,
    TerminateOnNan,
    auto_dataloader,
    auto_model,
    auto_optim,
)
from statefire.frame import State

NAN_AT = 5  # the iteration whose loss is NaN on the second process
BATCH = 32  # the global batch: 16 per process
EPOCHS = 3
EVERY = 4  # checkpoint every 4 iterations


def mlp(dropout: float = 0.0) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(32, 10)
    )


def dataset(out: Path) -> torch.utils.data.TensorDataset:
    data = torch.load(out / "data.pt", weights_only=True)
    return torch.utils.data.TensorDataset(data["x"], data["y"])


def nan_on_one_process(out: Path, rank: int) -> dict:
    with State():
        model = auto_model(mlp())
        optimizer = auto_optim(torch.optim.SGD(model.parameters(), lr=0.1))
        loader = auto_dataloader(dataset(out), batch_size=BATCH, shuffle=True)

        def poisoned(batch, device, non_blocking):
            x, y = batch
            if rank == 1 and trainer.n_iteration_started == NAN_AT:
                x = x * float("nan")
            return x, y

        trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, loader,
                                    n_epochs=EPOCHS, prepare_batch=poisoned)
        guard = TerminateOnNan(trainer.output_ref)
        trainer.run()
        return {
            "terminated_at": guard.terminated_at,
            "n_iteration_completed": trainer.n_iteration_completed,
            "n_run_completed": trainer.n_run_completed,
            "last_loss_finite": bool(torch.isfinite(trainer.output)),
        }


def patience_on_one_process(rank: int) -> dict:
    """The score improves every epoch on the first process, stalls from epoch 3 on the second."""
    scores = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] if rank == 0 else [1, 2, 3, 3, 3, 3, 3, 3, 3, 3]
    with State():
        trainer = Engine("trainer", lambda engine, batch: scores[engine.n_epoch_started - 1], data=[0], n_epochs=10)
        stopper = EarlyStopping(trainer.output_ref, 2, trainer=trainer, mode="max")
        trainer.run()
        return {"n_epoch_started": trainer.n_epoch_started, "stopped": stopper.stopped, "n_bad": stopper.n_bad}


def auto_helpers(out: Path, rank: int) -> dict:
    with State() as state:
        model = auto_model(mlp())
        optimizer = auto_optim(torch.optim.SGD(model.parameters(), lr=0.2))
        loader = auto_dataloader(dataset(out), batch_size=BATCH, shuffle=True)
        trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, loader, n_epochs=2)
        trainer.run()
        if rank == 0:
            torch.save(model.module.state_dict(), out / "auto.pt")
        return {
            "model": type(model).__name__,
            "batch_size": loader.batch_size,
            "sampler": type(loader.sampler).__name__,
            "components": [feature.name for feature in state.components],
            "n_iteration_completed": trainer.n_iteration_completed,
        }


def train(workdir: Path, out: Path, rank: int, kill_at: int | None) -> dict:
    workdir.mkdir(exist_ok=True)
    pids = [None, None]
    dist.all_gather_object(pids, os.getpid())
    with State() as state:
        model = auto_model(mlp(dropout=0.3))
        optimizer = auto_optim(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        loader = auto_dataloader(dataset(out), batch_size=BATCH, shuffle=True)
        torch.manual_seed(100 + rank)
        np.random.seed(200 + rank)
        random.seed(300 + rank)

        def noisy(batch, device, non_blocking):
            x, y = batch
            noise = torch.from_numpy(np.random.normal(0.0, 0.05, size=tuple(x.shape))).float()
            return x + noise * random.choice([0.5, 1.0]), y

        trainer = SupervisedTrainer(model, optimizer, torch.nn.functional.cross_entropy, loader,
                                    n_epochs=EPOCHS, prepare_batch=noisy)
        means = []
        AverageOutput(engine=trainer, name="loss_mean").value_ref.attach(
            lambda value: means.append([trainer.n_epoch_completed, float(value)])
        )
        Checkpoint(workdir / "ckpt", trigger=trainer.n_iteration_completed_ref(every=EVERY), n_saved=2)
        latest = Checkpoint.latest(workdir / "ckpt")
        resumed_at = None
        if latest is not None:
            Checkpoint.load(latest)
            resumed_at = trainer.n_iteration_completed
        if kill_at is not None and rank == 0:

            def kill_both(n: int) -> None:
                if n == kill_at:
                    os.kill(pids[1], signal.SIGKILL)
                    os.kill(pids[0], signal.SIGKILL)

            trainer.n_iteration_completed_ref.attach(kill_both)
        trainer.run()
        if rank == 0:
            torch.save(model.module.state_dict(), workdir / "final.pt")
        return {
            "resumed_at": resumed_at,
            "epoch_means": means,
            "n_iteration_completed": trainer.n_iteration_completed,
            "components": [feature.name for feature in state.components],
        }


def main() -> None:
    out, mode = Path(sys.argv[1]), sys.argv[2]
    kill_at = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--kill-at" else None
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    if mode == "first":
        train(out / "killed", out, rank, kill_at)  # SIGKILLed at iteration kill_at
    seen = {
        "resumed": train(out / "killed", out, rank, None),
        "nan": nan_on_one_process(out, rank),
        "patience": patience_on_one_process(rank),
        "auto": auto_helpers(out, rank),
        "full": train(out / "full", out, rank, None),
    }
    (out / f"{mode}_rank{rank}.json").write_text(json.dumps(seen))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
