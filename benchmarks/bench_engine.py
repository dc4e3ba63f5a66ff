"""The statefire Engine side by side with pytorch-ignite and plain loops.

Run it with::

    .venv/bin/python benchmarks/bench_engine.py [--quick]

Three parts, each measured in one process with the competitors interleaved
(one run of each, then the next repeat), reported as the median and the
minimum over the repeats:

a) dispatch overhead per iteration: a trivial `process` over 100k items, with
   0, 1 and 10 no-op callbacks on iteration-completed, and with 5 callbacks
   filtered `every=100`. ignite handlers take the engine (what ignite users
   write); statefire callbacks take nothing, and the 10-callback row is also
   measured with one-argument statefire callbacks (they get the counter).
   The raw loop calls its callbacks with nothing; the floor row is a bare
   loop calling 10 no-op functions per item.
b) the quickstart workload (an MLP on sklearn's digits, a trainer and two
   evaluators computing accuracy and loss each) as a hand-written PyTorch
   loop, with ignite and with statefire; same seeds, same model, same data.
   The trainer re-asserts train mode at every iteration, as ignite does; the
   cost of that check is printed after the workload, per iteration, and so
   is what building the statefire pipeline costs (a fixed part of the ratio).
c) memory: RSS of the statefire workload after 5 and after 50 epochs.

Targets (issue 3): statefire <= 0.06 x ignite with no callback and <= 0.10 x
ignite in every other dispatch row; on the workload statefire <= 1.03 x the
raw loop and <= 0.95 x ignite; RSS grows by < 5 MB from epoch 5 to epoch 50.
Times are CPU seconds of this process (`time.process_time`), not wall time:
everything timed runs in this process on one thread (DataLoaders without
workers, `torch.set_num_threads(1)`), and on a shared machine wall time would
also count the waits while other processes run. Contention still shows
(shared caches, frequency), so the load average is printed with each part.
PASS/MISS compare the ratio of medians with the target; the ratio of the
minimums is printed beside it, as the one least disturbed by other processes.
This is a report, not a test: timings are never asserted in the test suite.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import torch
from ignite.engine import Engine as IgniteEngine
from ignite.engine import Events, create_supervised_evaluator, create_supervised_trainer
from ignite.metrics import Accuracy as IgniteAccuracy
from ignite.metrics import Loss as IgniteLoss
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import Engine, SupervisedEvaluator, SupervisedTrainer
from statefire.frame import State

T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    """CPU seconds taken by `fn()` and its result, after a collection so earlier garbage is not billed to it."""
    gc.collect()
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def _summary(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), min(samples)


def _cell(median: float, best: float) -> str:
    return f"{median:.0f} ({best:.0f})"


def _verdict(ratio: float, target: float) -> str:
    return "PASS" if ratio <= target else "MISS"


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- a) dispatch overhead ------------------------------------------------------


def _process(engine: object, batch: int) -> int:
    return batch


def _noops(n: int, arity: int) -> list[Callable[..., None]]:
    """n distinct no-op functions taking `arity` (0 or 1) arguments."""
    if arity == 0:
        return [lambda: None for _ in range(n)]
    return [lambda value: None for _ in range(n)]


def raw_loop(data: range, callbacks: list[Callable[[], None]], every: int | None) -> None:
    """What an engine minimally does: call process, count, call the callbacks."""
    iteration = 0
    for batch in data:
        _process(None, batch)
        iteration += 1  # noqa: SIM113  # the counter an engine keeps is what this floor measures
        if every is None or iteration % every == 0:
            for fn in callbacks:
                fn()


def floor_loop(data: range, callbacks: list[Callable[[], None]]) -> None:
    """The floor for ten callbacks: a bare loop calling them, nothing else."""
    for _ in data:
        for fn in callbacks:
            fn()


def time_raw(data: range, n_callbacks: int, every: int | None) -> float:
    callbacks = _noops(n_callbacks, 0)
    return _timed(lambda: raw_loop(data, callbacks, every))[0]


def time_ignite(data: range, n_callbacks: int, every: int | None) -> float:
    engine = IgniteEngine(_process)
    event = Events.ITERATION_COMPLETED if every is None else Events.ITERATION_COMPLETED(every=every)
    for fn in _noops(n_callbacks, 1):
        engine.add_event_handler(event, fn)  # called as fn(engine)
    return _timed(lambda: engine.run(data, max_epochs=1))[0]


def time_statefire(data: range, n_callbacks: int, every: int | None, arity: int = 0) -> float:
    with State():
        engine = Engine("engine", _process, data=data)
        for fn in _noops(n_callbacks, arity):
            engine.n_iteration_completed_ref.attach(fn, every=every)
        return _timed(engine.run)[0]


# label, number of callbacks, every, statefire callback arity, target for statefire / ignite
DISPATCH_ROWS = [
    ("no callback", 0, None, 0, 0.06),
    ("1 callback", 1, None, 0, 0.10),
    ("10 callbacks", 10, None, 0, 0.10),
    ("10 callbacks, statefire fn(value)", 10, None, 1, 0.10),
    ("5 callbacks every=100", 5, 100, 0, 0.10),
]


def bench_dispatch(n_items: int, repeats: int) -> int:
    data = range(n_items)
    # ignite does not depend on the statefire callback arity: time it once per configuration.
    configs = sorted({(n, every) for _, n, every, _, _ in DISPATCH_ROWS}, key=lambda c: (c[1] is not None, c[0]))
    samples: dict[tuple, list[float]] = {}
    for competitor in (time_raw, time_ignite, time_statefire):  # warm-up, untimed: first calls pay extra
        competitor(range(1000), 1, None)
    for _ in range(repeats):
        for n, every in configs:
            samples.setdefault(("raw", n, every), []).append(time_raw(data, n, every))
            samples.setdefault(("ignite", n, every), []).append(time_ignite(data, n, every))
        for _, n, every, arity, _ in DISPATCH_ROWS:
            samples.setdefault(("statefire", n, every, arity), []).append(time_statefire(data, n, every, arity))
        floor_callbacks = _noops(10, 0)
        floor = _timed(lambda callbacks=floor_callbacks: floor_loop(data, callbacks))[0]
        samples.setdefault(("floor",), []).append(floor)

    def ns(key: tuple) -> tuple[float, float]:
        median, best = _summary(samples[key])
        return median / n_items * 1e9, best / n_items * 1e9

    print(f"a) dispatch overhead: trivial process over {n_items} items, ns per iteration, "
          f"median (min) of {repeats} interleaved repeats; {_load()}")
    header = f"{'callbacks on iteration completed':<36}{'raw loop':>18}{'ignite':>20}{'statefire':>18}"
    print(header + f"{'statefire/ignite':>20}{'target':>9}")
    print("-" * (len(header) + 29))
    misses = 0
    verdicts = []
    for label, n, every, arity, target in DISPATCH_ROWS:
        raw, ignite, statefire = ns(("raw", n, every)), ns(("ignite", n, every)), ns(("statefire", n, every, arity))
        ratio, ratio_of_mins = statefire[0] / ignite[0], statefire[1] / ignite[1]
        verdict = _verdict(ratio, target)
        misses += verdict == "MISS"
        verdicts.append(f"{verdict}  a) {label}: statefire/ignite {ratio:.3f} "
                        f"(target <= {target:.2f}; ratio of minimums {ratio_of_mins:.3f})")
        print(f"{label:<36}{_cell(*raw):>18}{_cell(*ignite):>20}{_cell(*statefire):>18}"
              f"{ratio:>11.3f} ({ratio_of_mins:.3f}){'<= ' + format(target, '.2f'):>9}")
    print(f"{'floor: bare loop, 10 no-op calls':<36}{_cell(*ns(('floor',))):>18}")
    print()
    print("\n".join(verdicts))
    print()
    return misses


# -- b) the quickstart workload -------------------------------------------------

LOSS_FN = torch.nn.functional.cross_entropy


def digits() -> tuple[torch.Tensor, ...]:
    """sklearn's 8x8 digits scaled to [0, 1], split 80/20 as in examples/quickstart.py."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    return tuple(train_test_split(x, y, test_size=0.2, random_state=0, stratify=y))


def setup(split: tuple[torch.Tensor, ...]) -> tuple:
    """A freshly seeded model, optimizer and loaders: every approach starts from the same weights."""
    x_train, x_val, y_train, y_val = split
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True,
                              generator=torch.Generator().manual_seed(0))
    eval_loaders = [DataLoader(TensorDataset(x_train, y_train), batch_size=256),
                    DataLoader(TensorDataset(x_val, y_val), batch_size=256)]
    return model, optimizer, train_loader, eval_loaders


def raw_workload(model, optimizer, train_loader, eval_loaders, n_epochs: int) -> float:
    """The same training and evaluations, written by hand. Returns the final validation accuracy."""

    def evaluate(loader: DataLoader) -> tuple[float, float]:
        model.eval()
        correct, total_loss, n = 0, 0.0, 0
        with torch.no_grad():
            for x, y in loader:
                y_pred = model(x)
                correct = correct + (y_pred.argmax(dim=1) == y).sum()
                total_loss = total_loss + LOSS_FN(y_pred, y) * len(y)
                n += len(y)
        model.train()
        return float(correct) / n, float(total_loss) / n

    model.train()
    for _ in range(n_epochs):
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = LOSS_FN(model(x), y)
            loss.backward()
            optimizer.step()
        results = [evaluate(loader) for loader in eval_loaders]
    return results[-1][0]


def ignite_workload(model, optimizer, train_loader, eval_loaders, n_epochs: int) -> float:
    trainer = create_supervised_trainer(model, optimizer, LOSS_FN)
    evaluators = []
    for loader in eval_loaders:
        evaluator = create_supervised_evaluator(
            model, metrics={"accuracy": IgniteAccuracy(), "loss": IgniteLoss(LOSS_FN)}
        )
        trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda _, e=evaluator, d=loader: e.run(d))
        evaluators.append(evaluator)
    trainer.run(train_loader, max_epochs=n_epochs)
    return evaluators[-1].state.metrics["accuracy"]


def statefire_pipeline(model, optimizer, train_loader, eval_loaders, n_epochs: int) -> SupervisedTrainer:
    """The quickstart's trainer, with its two evaluators and their metrics, in the current State."""
    trainer = SupervisedTrainer(model, optimizer, LOSS_FN, train_loader, n_epochs=n_epochs)
    for name, loader in zip(["train_evaluator", "val_evaluator"], eval_loaders, strict=False):
        SupervisedEvaluator(model, loader, name=name, run_on=trainer.n_epoch_completed_ref,
                            metrics=["accuracy", "loss"], loss_fn=LOSS_FN)
    return trainer


def statefire_workload(model, optimizer, train_loader, eval_loaders, n_epochs: int) -> float:
    with State() as state:
        statefire_pipeline(model, optimizer, train_loader, eval_loaders, n_epochs).run()
        return state.val_evaluator_accuracy.value


WORKLOADS = {"raw PyTorch loop": raw_workload, "ignite": ignite_workload, "statefire": statefire_workload}


def bench_workload(n_epochs: int, repeats: int) -> int:
    split = digits()
    seconds: dict[str, list[float]] = {name: [] for name in WORKLOADS}
    accuracy: dict[str, float] = {}
    for workload in WORKLOADS.values():  # warm-up, untimed: first forward, backward and step pay extra
        workload(*setup(split), 1)
    names = list(WORKLOADS)
    for repeat in range(repeats):
        for name in names[repeat % 3:] + names[:repeat % 3]:  # rotate who goes first
            workload = WORKLOADS[name]
            parts = setup(split)
            elapsed, accuracy[name] = _timed(lambda workload=workload, parts=parts: workload(*parts, n_epochs))
            seconds[name].append(elapsed)

    print(f"b) quickstart workload: trainer + 2 evaluators + 4 metrics, {n_epochs} epochs, "
          f"torch.set_num_threads(1), median (min) of {repeats} interleaved repeats; {_load()}")
    print(f"{'approach':<20}{'CPU seconds':>18}{'final val accuracy':>21}")
    print("-" * 59)
    for name in WORKLOADS:
        median, best = _summary(seconds[name])
        print(f"{name:<20}{median:>10.3f} ({best:.3f}){accuracy[name]:>21.4f}")
    print()
    raw_over_ignite = statistics.median(seconds["raw PyTorch loop"]) / statistics.median(seconds["ignite"])
    print(f"raw/ignite {raw_over_ignite:.3f}: statefire/ignite if statefire cost nothing beyond the raw loop")
    statefire = _summary(seconds["statefire"])
    checks = []
    for label, other, target in [("statefire/raw", "raw PyTorch loop", 1.03), ("statefire/ignite", "ignite", 0.95)]:
        median, best = _summary(seconds[other])
        ratio = statefire[0] / median
        checks.append((label, ratio, target))
        print(f"{_verdict(ratio, target)}  b) {label} {ratio:.3f} "
              f"(target <= {target:.2f}; ratio of minimums {statefire[1] / best:.3f})")
    print()
    bench_setup(split, statistics.median(seconds["statefire"]), repeats)
    n_steps = n_epochs * len(setup(split)[2])
    bench_train_mode(statistics.median(seconds["statefire"]) / n_steps)
    return sum(_verdict(ratio, target) == "MISS" for _, ratio, target in checks)


def bench_setup(split: tuple[torch.Tensor, ...], workload_seconds: float, repeats: int) -> None:
    """What building the statefire pipeline costs (the State, the trainer, the evaluators, their
    metrics and callbacks; no iteration), as a share of the statefire workload: a fixed cost
    the raw loop does not have, inside the statefire/raw ratio."""

    def build(parts: tuple) -> None:
        with State():
            statefire_pipeline(*parts, 1)

    samples = []
    for _ in range(repeats):
        parts = setup(split)  # the model and loaders are not part of it: the raw loop has them too
        samples.append(_timed(lambda parts=parts: build(parts))[0])
    median, best = _summary(samples)
    print(f"   statefire set-up (State, trainer, 2 evaluators, 4 metrics, no iteration): {median * 1e3:.2f} ms "
          f"({best * 1e3:.2f}), {median / workload_seconds:.2%} of the statefire workload")


def bench_train_mode(seconds_per_step: float, n: int = 1_000_000) -> None:
    """What re-asserting train mode at every iteration costs: the check the trainer makes, timed
    against an empty loop, and as a share of one quickstart iteration (step plus evaluations)."""
    module = torch.nn.Linear(2, 2)

    def check() -> None:
        for _ in range(n):
            if not module.training:
                module.train()

    def empty() -> None:
        for _ in range(n):
            pass

    cost = min(_timed(check)[0] - _timed(empty)[0] for _ in range(5)) / n
    print(f"   train mode re-asserted every iteration (`if not model.training: model.train()`): "
          f"{cost * 1e9:.0f} ns per iteration, {cost / seconds_per_step:.5%} of a quickstart iteration "
          f"({seconds_per_step * 1e6:.0f} us)")
    print()


# -- c) memory ------------------------------------------------------------------


def rss_mb() -> float:
    """Resident set size of this process, in MB, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_memory(first: int, last: int) -> int:
    model, optimizer, train_loader, eval_loaders = setup(digits())
    with State():
        trainer = statefire_pipeline(model, optimizer, train_loader, eval_loaders, first)
        trainer.run()
        gc.collect()
        after_first = rss_mb()
        trainer.run(n_epochs=last - first)  # a second run of the same engines: counters go on
        gc.collect()
        after_last = rss_mb()
        assert trainer.n_epoch_completed == last
    growth = after_last - after_first
    print("c) memory: RSS of the statefire quickstart workload (one State, one process)")
    print(f"{'after epoch':<20}{'RSS MB':>10}")
    print("-" * 30)
    print(f"{first:<20}{after_first:>10.1f}")
    print(f"{last:<20}{after_last:>10.1f}")
    print()
    verdict = "PASS" if growth < 5 else "MISS"
    print(f"{verdict}  c) RSS growth from epoch {first} to {last}: {growth:+.2f} MB (target < 5 MB)")
    return verdict == "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer items, epochs and repeats (about a minute; ratios are noisier)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one thread: steadier timings on a shared 2-core machine
    if args.quick:
        n_items, dispatch_repeats, n_epochs, workload_repeats = 20_000, 3, 2, 3
    else:
        n_items, dispatch_repeats, n_epochs, workload_repeats = 100_000, 7, 5, 11
    print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, ignite {__import__('ignite').__version__}, "
          f"torch threads {torch.get_num_threads()}{', --quick' if args.quick else ''}\n")
    misses = bench_dispatch(n_items, dispatch_repeats)
    misses += bench_workload(n_epochs, workload_repeats)
    misses += bench_memory(5, 50)
    print(f"\n{misses} target(s) missed")


if __name__ == "__main__":
    main()
