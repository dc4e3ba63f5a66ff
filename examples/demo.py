"""The five-minute demo: the quickstart, plus what statefire is for.

A trainer and two evaluators (train set, validation set) on sklearn's 8x8
digits; the two-line recipe turns their metrics into TensorBoard charts that
compare the engines, and the data-flow graph draws the experiment's wiring.
The last lines say where each artifact is and how to look at the charts.

Run: python examples/demo.py [out_dir]      (default ./runs/demo; `make demo` does this)
Then: tensorboard --logdir runs/demo --host 127.0.0.1      (`make tensorboard`)
"""

import sys
from pathlib import Path

from quickstart import build  # examples/ is on sys.path when this script runs

from statefire.features import TensorBoard
from statefire.frame import state
from statefire.plugins import DataFlowGraph, EnginesMetricsComparisonCharts, Run

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
build()  # the quickstart's trainer, evaluators and report

# The charts: one accuracy chart and one loss chart, each comparing both evaluators.
TensorBoard(out)
EnginesMetricsComparisonCharts(x_axis_ref=state.trainer.n_samples_ref, n_identical_metric_name_suffixes=1)

# The record: a run directory with the config, the code snapshot (when run from a git work tree),
# every metric's series and the final values, indexed in runs/registry.sqlite.
# The snapshot is of the work tree you run the demo from (`make demo`: this repository).
run = Run("runs", experiment="quickstart", name="demo", snapshot=Path.cwd())

state.trainer.run()
flow = out / "flow.png"
DataFlowGraph(state).save(flow)
run.finish()

print()
print(state)
print()
print("Artifacts:")
print(f"  comparison charts (TensorBoard event files): {out}/  one run directory per engine")
print(f"  data-flow graph (picture):                   {flow}")
command = Path(sys.executable).with_name("statefire")  # the venv's command, as a path a shell finds
command = command.relative_to(Path.cwd()) if command.is_relative_to(Path.cwd()) else command
print(f"  the run's record (config, code, series):     {run.dir}/run.json  ({command} runs show {run.id[:15]})")
print("Look at the charts (Custom Scalars tab: 'engines compared'):")
print(f"  make tensorboard      (or: .venv/bin/tensorboard --logdir {out} --host 127.0.0.1 --port 6006)")
print("  then open http://127.0.0.1:6006")
