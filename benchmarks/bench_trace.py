"""What tracing costs the engine loop: never imported, imported but inactive, active.

"Never imported" can only be measured in a process that never imported
`plugins.trace`, so each measurement runs in a fresh interpreter; the three
modes are interleaved round by round so that machine noise hits them alike.
Each process times the best of a few runs of an engine loop (ns per
iteration), with one ordinary callback attached (a metric) and without.

Run: python benchmarks/bench_trace.py [--rounds 5] [--iterations 20000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

MODES = ("never imported", "imported, inactive", "trace active")

_CHILD = r"""
import sys, time
mode, iterations, with_metric = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
from statefire.frame import State
from statefire.features import AverageOutput, Engine
if mode != "never imported":
    from statefire.plugins.trace import EventTrace
assert (mode == "never imported") == ("statefire.plugins.trace" not in sys.modules)
with State() as s:
    engine = Engine("engine", lambda e, b: b, data=list(range(iterations)))
    if with_metric:
        AverageOutput(engine=engine)
    trace = EventTrace(s, max_events=1_000) if mode == "trace active" else None
    if trace is not None:
        trace.start()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        engine.run()
        best = min(best, (time.perf_counter_ns() - start) / iterations)
    print(best)
"""


def _measure(mode: str, iterations: int, with_metric: bool) -> float:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(iterations), "1" if with_metric else "0"],
        capture_output=True, text=True, check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    for with_metric in (False, True):
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.rounds):
            for mode in MODES:  # interleaved: each round measures every mode once
                times[mode].append(_measure(mode, args.iterations, with_metric))
        base_min, base_median = min(times[MODES[0]]), statistics.median(times[MODES[0]])
        print(f"\nengine loop, {args.iterations} iterations, "
              f"{'one metric attached' if with_metric else 'no callback'} ({args.rounds} rounds)")
        print(f"{'mode':<20} {'min ns/it':>10} {'median ns/it':>13} {'ratio min':>10} {'ratio median':>13}")
        for mode in MODES:
            t_min, t_median = min(times[mode]), statistics.median(times[mode])
            print(f"{mode:<20} {t_min:>10.0f} {t_median:>13.0f} {t_min / base_min:>10.2f} "
                  f"{t_median / base_median:>13.2f}")


if __name__ == "__main__":
    main()
