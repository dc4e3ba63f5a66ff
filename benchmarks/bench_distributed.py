"""What deciding together costs: `TerminateOnNan` in one process and in two (gloo, CPU).

Run it with::

    .venv/bin/python benchmarks/bench_distributed.py [--quick]

a) One process, no process group: an engine whose `process` returns a loss
   tensor, with nothing attached, with `TerminateOnNan` as it was before it
   learnt to agree (the same check, subclassed here), and with
   `TerminateOnNan`. The last two must cost the same: the agreement is off
   the single-process path (one `process_group()` look-up, also timed alone).
b) Two processes (`torch.multiprocessing.spawn`, gloo on 127.0.0.1): the same
   engine with the check alone and with `TerminateOnNan`, which adds one
   all-reduce of one number per iteration; then a DistributedDataParallel
   training step of a small MLP on digits (batch 32 per process), with and
   without `TerminateOnNan` on its loss, to show the agreement against the
   step it guards. Also the checkpoint's gather of both processes' RNG
   states, per save.

Times are wall-clock medians (minimums in brackets) over repeats,
interleaved; in part b the processes wait for each other, so CPU time would
miss the waits. On a shared machine the spread is large: read the ratios.
This is a report, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from statefire.features import Engine, SupervisedTrainer, TerminateOnNan
from statefire.features.checkpoint import _gather_process_states
from statefire.features.distributed import process_group
from statefire.features.handlers import _all_finite
from statefire.frame import State


class TerminateOnNanAlone(TerminateOnNan):
    """`TerminateOnNan` as it was before it learnt to agree: the same finiteness check, no process group look-up."""

    def check(self, value) -> None:
        if not _all_finite(value):
            self.terminated_at = self.engine.n_iteration_started
            self.engine.terminate()


def engine_loop(kind: str, n: int) -> float:
    """Seconds per iteration of an engine over `n` items returning a loss tensor."""
    loss = torch.tensor(0.5)
    with State():
        engine = Engine("trainer", lambda e, b: loss, data=range(n))
        if kind == "check":
            TerminateOnNanAlone(engine.output_ref)
        elif kind == "terminate_on_nan":
            TerminateOnNan(engine.output_ref)
        start = time.perf_counter()
        engine.run()
        return (time.perf_counter() - start) / n


def lookup(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        process_group()
    return (time.perf_counter() - start) / n


def measure(kinds: list[str], fn, repeats: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(repeats):
        for kind in kinds:  # interleaved, so a load spike hits every row
            samples[kind].append(fn(kind))
    return samples


def row(label: str, values: list[float], unit: float = 1e6) -> str:
    return f"{label:<52}{statistics.median(values) * unit:>10.2f} ({min(values) * unit:.2f})"


def single_process(n: int, repeats: int) -> None:
    samples = measure(["none", "check", "terminate_on_nan"], lambda kind: engine_loop(kind, n), repeats)
    looked = [lookup(n) for _ in range(repeats)]
    print(f"a) one process, no process group: engine over {n} items, microseconds per iteration")
    print(row("engine, nothing attached", samples["none"]))
    print(row("engine + TerminateOnNan before the agreement", samples["check"]))
    print(row("engine + TerminateOnNan", samples["terminate_on_nan"]))
    print(row("process_group() alone (the single-process path)", looked))
    ratio = statistics.median(samples["terminate_on_nan"]) / statistics.median(samples["check"])
    best = min(samples["terminate_on_nan"]) / min(samples["check"])
    print(f"TerminateOnNan now / before: {ratio:.3f} (minimums {best:.3f}); 1.00 = the agreement costs nothing here")
    print()


def digits_loader(rank: int):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16
    y = torch.tensor(digits.target)
    dataset = torch.utils.data.TensorDataset(x, y)
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
    return torch.utils.data.DataLoader(dataset, batch_size=32, sampler=sampler, drop_last=True)


def ddp_step(kind: str, loader, epochs: int) -> float:
    """Seconds per iteration of a DDP training of a small MLP on digits."""
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    model = torch.nn.parallel.DistributedDataParallel(network)
    with State():
        trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
                                    torch.nn.functional.cross_entropy, loader, n_epochs=epochs)
        if kind == "ddp+check":
            TerminateOnNanAlone(trainer.output_ref)
        elif kind == "ddp+terminate_on_nan":
            TerminateOnNan(trainer.output_ref)
        dist.barrier()
        start = time.perf_counter()
        trainer.run()
        return (time.perf_counter() - start) / trainer.n_iteration_completed


def gather_cost(repeats: int) -> float:
    with State() as state:
        Engine("trainer", lambda e, b: b, data=range(3))
        state_dict = state.state_dict()
        dist.barrier()
        start = time.perf_counter()
        for _ in range(repeats):
            _gather_process_states(state_dict)
        return (time.perf_counter() - start) / repeats


def worker(rank: int, init: str, n: int, repeats: int, epochs: int, results: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        loops = measure(["check", "terminate_on_nan"], lambda kind: engine_loop(kind, n), repeats)
        loader = digits_loader(rank)
        steps = measure(["ddp+check", "ddp+terminate_on_nan"], lambda kind: ddp_step(kind, loader, epochs), repeats)
        gathers = [gather_cost(20) for _ in range(repeats)]
        if rank == 0:
            torch.save({**loops, **steps, "gather": gathers}, results)
    finally:
        dist.destroy_process_group()


def two_processes(n: int, repeats: int, epochs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = os.path.join(tmp, "results.pt")
        init = f"file://{os.path.join(tmp, 'rendezvous')}"
        mp.spawn(worker, args=(init, n, repeats, epochs, results), nprocs=2)
        samples = torch.load(results)
    print("b) two processes (gloo, CPU), microseconds per iteration, measured on the first process")
    print(row(f"engine over {n} items + the check alone (no agreement)", samples["check"]))
    print(row("engine + TerminateOnNan (one all-reduce each)", samples["terminate_on_nan"]))
    agreement = statistics.median(samples["terminate_on_nan"]) - statistics.median(samples["check"])
    print(f"{'  the agreement alone':<52}{agreement * 1e6:>10.2f}")
    print(row("DDP step, MLP 64-64-10, batch 32 + the check alone", samples["ddp+check"]))
    print(row("DDP step + TerminateOnNan", samples["ddp+terminate_on_nan"]))
    ratio = statistics.median(samples["ddp+terminate_on_nan"]) / statistics.median(samples["ddp+check"])
    best = min(samples["ddp+terminate_on_nan"]) / min(samples["ddp+check"])
    print(f"DDP step with TerminateOnNan / without the agreement: {ratio:.3f} (minimums {best:.3f})")
    print(row("checkpoint: gather of both processes' states, per save", samples["gather"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items and repeats")
    args = parser.parse_args()
    n, repeats, epochs = (2_000, 3, 1) if args.quick else (20_000, 7, 3)
    print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")
    print()
    single_process(n, repeats)
    two_processes(n // 4, repeats, epochs)


if __name__ == "__main__":
    main()
