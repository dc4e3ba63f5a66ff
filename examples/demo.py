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

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import SupervisedEvaluator, SupervisedTrainer, TensorBoard
from statefire.frame import state
from statefire.plugins import DataFlowGraph, EnginesMetricsComparisonCharts, Run

out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
torch.manual_seed(0)
torch.set_num_threads(1)  # a model this small trains faster on one thread

# Data: 1797 digits, 64 pixels each, split 80/20.
digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)
x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True,
                          generator=torch.Generator().manual_seed(0))
train_eval_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=256)
val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256)

model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
loss_fn = torch.nn.functional.cross_entropy

# The experiment: one trainer, two evaluators following its epochs.
SupervisedTrainer(model, optimizer, loss_fn, train_loader, n_epochs=10)
for name, loader in [("train_evaluator", train_eval_loader), ("val_evaluator", val_loader)]:
    SupervisedEvaluator(model, loader, name=name, run_on=state.trainer.n_epoch_completed_ref,
                        metrics=["accuracy", "loss"], loss_fn=loss_fn)

# The charts: one accuracy chart and one loss chart, each comparing both evaluators.
TensorBoard(out)
EnginesMetricsComparisonCharts(x_axis_ref=state.trainer.n_samples_ref, n_identical_metric_name_suffixes=1)

# The record: a run directory with the config, the code snapshot (when run from a git work tree),
# every metric's series and the final values, indexed in runs/registry.sqlite.
run = Run("runs", experiment="quickstart", name="demo")


@state.trainer.n_epoch_completed_ref.attach
def report(epoch: int) -> None:
    # Evaluators run on this ref first (higher priority), so their metrics are current.
    m = state.metrics
    print(f"epoch {epoch:2d}  samples {state.trainer.n_samples:6d}  "
          f"train acc {m.train_evaluator_accuracy.value:.3f} loss {m.train_evaluator_loss.value:.3f}  "
          f"val acc {m.val_evaluator_accuracy.value:.3f} loss {m.val_evaluator_loss.value:.3f}")


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
