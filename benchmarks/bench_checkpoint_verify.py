"""What verifying a checkpoint's CRCs costs, and what the retry bookkeeping costs the engine loop.

Run it with::

    .venv/bin/python benchmarks/bench_checkpoint_verify.py [--mb 100] [--repeats 5]

a) A checkpoint of a model with `--mb` megabytes of float32 weights is
   written once; then, interleaved per repeat, it is read with plain
   `torch.load(weights_only=True)` (what loading cost before), verified
   alone (`zipfile.testzip`, every entry's CRC-32), read with
   `Checkpoint.read` (verify, then load) and found with `Checkpoint.latest`
   (which verifies the newest file). The file is in the page cache after the
   first read, so this is the CPU cost of the check, not of the disk.
b) The engine loop with the retry bookkeeping (a few local stores per
   iteration, so that a retry never runs `process` twice on one batch)
   against the loop of `--base` (default: the commit before the change; `git show <base>:features/engine.py`,
   loaded as a separate module), 100k trivial iterations, no callbacks.
   When that file cannot be read or imported, part b is skipped.
c) A set of a state object with 1 and with 10 callbacks, the dispatch of
   this branch (an `except AttributeError` clause per dispatch loop, for the
   note on ignite-style callbacks) against the `frame` of `--base`,
   package, loaded from git as a separate package.

Times are `time.perf_counter` medians (minimums beside them). A report, not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from statefire.features import Checkpoint, Engine, Model
from statefire.features.checkpoint import _VERIFIED, _verify
from statefire.frame import State

#: The git revision parts b and c compare against (`--base`): by default the commit the retry
#: bookkeeping and the engine-parameter note were built on (its engine imports standalone).
BASE = "4c25ed2"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _report(rows: dict[str, list[float]], base: str) -> None:
    base_median = statistics.median(rows[base])
    for name, times in rows.items():
        median, best = statistics.median(times), min(times)
        print(f"  {name:<38} median {median * 1e3:8.1f} ms  min {best * 1e3:8.1f} ms  "
              f"ratio {median / base_median:5.2f} x {base}")


def checkpoint_part(mb: int, repeats: int) -> None:
    print(f"a) a {mb} MB checkpoint, {repeats} repeats")
    with tempfile.TemporaryDirectory() as tmp, State():
        Model(torch.nn.Linear(mb * 1024 * 1024 // 4 // 1024, 1024, bias=False), name="net")
        path = Checkpoint.write(Path(tmp) / "checkpoint_1.pt")
        print(f"  file: {path.stat().st_size / 1e6:.1f} MB, {len(zipfile.ZipFile(path).infolist())} zip entries")
        rows: dict[str, list[float]] = {"torch.load (no check)": [], "verify only (testzip)": [],
                                        "Checkpoint.read (verify + load)": [], "Checkpoint.latest (verify)": [],
                                        "latest, then read (verified once)": []}
        torch.load(path, weights_only=True)  # warm the page cache
        for _ in range(repeats):
            # Each timing starts with no file known verified (a verified, unchanged file is not read twice).
            rows["torch.load (no check)"].append(_timed(lambda: torch.load(path, weights_only=True)))
            _VERIFIED.clear()
            rows["verify only (testzip)"].append(_timed(lambda: _verify(path)))
            _VERIFIED.clear()
            rows["Checkpoint.read (verify + load)"].append(_timed(lambda: Checkpoint.read(path)))
            _VERIFIED.clear()
            rows["Checkpoint.latest (verify)"].append(_timed(lambda: Checkpoint.latest(tmp)))
            _VERIFIED.clear()
            rows["latest, then read (verified once)"].append(_timed(lambda: Checkpoint.read(Checkpoint.latest(tmp))))
        _report(rows, "torch.load (no check)")


def _git(*args: str) -> str:
    """The output of `git *args` in this repository (OSError or CalledProcessError when git cannot answer)."""
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=Path(__file__).parent).stdout


def _main_branch_engine() -> type | None:
    try:
        source = _git("show", f"{BASE}:features/engine.py")
    except (OSError, subprocess.CalledProcessError):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location("_main_engine", file.name)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # that revision's engine does not fit this frame: say so, measure the rest
        print(f"  (the engine of {BASE} does not import against this frame: {error!r:.80})")
        return None
    return module.Engine


def engine_part(old_engine: type, repeats: int) -> None:
    n = 100_000
    print(f"b) engine loop, {n} iterations, no callback, {repeats} repeats")
    data = list(range(n))
    rows: dict[str, list[float]] = {"base loop": [], "loop with retry bookkeeping": []}
    with State():
        old = old_engine("old", lambda engine, batch: batch, data=data)
        new = Engine("new", lambda engine, batch: batch, data=data)
        for _ in range(repeats):
            rows["base loop"].append(_timed(old.run))
            rows["loop with retry bookkeeping"].append(_timed(new.run))
    _report(rows, "base loop")


def _main_branch_frame() -> object | None:
    """The `frame` package of `--base`, written to a temp dir and imported as `_main_frame`."""
    root = Path(tempfile.mkdtemp()) / "_main_frame"
    root.mkdir()
    try:
        for name in _git("ls-tree", "--full-tree", "--name-only", BASE, "frame/").split():
            if name.endswith(".py"):
                (root / Path(name).name).write_text(_git("show", f"{BASE}:{name}"))
    except (OSError, subprocess.CalledProcessError):
        return None
    sys.path.insert(0, str(root.parent))
    import _main_frame  # type: ignore[import-not-found]

    return _main_frame


def dispatch_part(old_frame: object, repeats: int) -> None:
    """A set with one callback (and with ten): the `except AttributeError` clauses are on the hot path."""
    from statefire import frame as new_frame

    n = 200_000
    print(f"c) {n} sets of a state object with 1 and with 10 one-argument callbacks, {repeats} repeats")
    rows: dict[str, list[float]] = {}
    features = {}
    for label, package in (("base", old_frame), ("with the engine-parameter note", new_frame)):
        class Box(package.Feature):  # type: ignore[name-defined,misc]
            category = "boxes"
            value = package.StateObject(0)

        state = package.State()
        with state:
            one, ten = Box(name="one"), Box(name="ten")
        one.value_ref.attach(lambda v: None)
        for _ in range(10):
            ten.value_ref.attach(lambda v: None)
        features[label] = (one, ten)

    def sets(box) -> None:
        for i in range(n):
            box.value = i

    for _ in range(repeats):
        for label, (one, ten) in features.items():
            rows.setdefault(f"1 callback, {label}", []).append(_timed(lambda one=one: sets(one)))
            rows.setdefault(f"10 callbacks, {label}", []).append(_timed(lambda ten=ten: sets(ten)))
    _report({k: v for k, v in rows.items() if k.startswith("1 ")}, "1 callback, base")
    _report({k: v for k, v in rows.items() if k.startswith("10 ")}, "10 callbacks, base")


def main() -> None:
    global BASE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--base", default=BASE,
                        help=f"the git revision whose engine and frame parts b and c compare against (default: {BASE}, "
                             "the commit before the change)")
    args = parser.parse_args()
    BASE = args.base
    torch.set_num_threads(1)
    checkpoint_part(args.mb, args.repeats)
    # Parts b and c measure against the code of --base; without it they are skipped, said so.
    old_engine = _main_branch_engine()
    if old_engine is None:
        print("b) skipped: the engine of --base cannot be read or imported")
    else:
        engine_part(old_engine, args.repeats * 2)
    old_frame = _main_branch_frame()
    if old_frame is None:
        print("c) skipped: the main branch's frame cannot be read with git")
    else:
        dispatch_part(old_frame, args.repeats * 2)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
