"""Two processes train and evaluate one model with DistributedDataParallel (gloo, CPU).

Run by `test_distributed.py` as `python distributed_script.py OUT_DIR`. Each
process writes `rank<N>.json` with what it saw: every metric's value at each
evaluation, its own batch losses, and a checksum of its final weights; rank 0
also saves the final weights, which the test evaluates without statefire.
Both processes create a TensorBoard writer, chart plugins and a checkpoint,
as one script does; only the first writes files.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ignite.metrics import Precision
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from statefire.features import (
    AverageOutput,
    Checkpoint,
    RunningAverage,
    SupervisedEvaluator,
    SupervisedTrainer,
    TensorBoard,
)
from statefire.frame import State
from statefire.plugins import EnginesMetricsComparisonCharts

WORLD_SIZE = 2


def data() -> tuple[TensorDataset, TensorDataset]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16
    y = torch.tensor(digits.target)
    return TensorDataset(x[:400], y[:400]), TensorDataset(x[1000:1200], y[1000:1200])


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def worker(rank: int, out_dir: str) -> None:
    os.environ["LOCAL_RANK"] = str(rank)  # as torchrun sets it (ignite reads it)
    dist.init_process_group(
        "gloo", init_method=f"file://{os.path.join(out_dir, 'rendezvous')}", rank=rank, world_size=WORLD_SIZE
    )
    torch.set_num_threads(1)
    train, val = data()
    network = model()
    parallel = torch.nn.parallel.DistributedDataParallel(network)
    train_loader = DataLoader(train, batch_size=25, sampler=DistributedSampler(train, shuffle=True, seed=0))
    val_loader = DataLoader(val, batch_size=50, sampler=DistributedSampler(val, shuffle=False))
    seen: dict[str, list] = {"losses": []}
    with State() as state:
        trainer = SupervisedTrainer(parallel, torch.optim.SGD(parallel.parameters(), lr=0.5),
                                    torch.nn.functional.cross_entropy, train_loader, n_epochs=3)
        SupervisedEvaluator(network, val_loader, name="val_evaluator", run_on=trainer.n_epoch_completed_ref,
                            metrics=["accuracy", "loss", Precision(average=True)],
                            loss_fn=torch.nn.functional.cross_entropy)
        AverageOutput(engine=trainer, name="loss_mean")
        RunningAverage(engine=trainer, name="loss_smoothed", alpha=0.5)
        # Created on every process, as a script is: only the first one writes.
        TensorBoard(os.path.join(out_dir, "runs"))
        EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_samples_ref)
        Checkpoint(os.path.join(out_dir, "checkpoints"), trigger=trainer.n_epoch_completed_ref, n_saved=2)
        trainer.output_ref.attach(lambda loss: seen["losses"].append(float(loss)))
        for metric in state.metrics:
            seen[metric.name] = []
            metric.value_ref.attach(lambda value, name=metric.name: seen[name].append(float(value)))
        trainer.run()
        seen["epoch_lengths"] = [trainer.epoch_length, state.val_evaluator.epoch_length]
        seen["n_saves"] = state.checkpoint.n_saves
        state.tensor_board.close()
    seen["checksum"] = [float(p.detach().sum()) for p in network.parameters()]
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(seen))
    if rank == 0:
        torch.save(network.state_dict(), os.path.join(out_dir, "final.pt"))
    dist.barrier()  # both done before the group goes
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(sys.argv[1],), nprocs=WORLD_SIZE)
