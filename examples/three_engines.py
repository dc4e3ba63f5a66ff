"""Three engines compared in TensorBoard with two lines.

A trainer learns sklearn's 8x8 digits; a cross-validation evaluator scores a
200-sample subset of the training data and a validation evaluator the
held-out data, both after every training epoch. Each of the three engines
has accuracy and loss. `EnginesMetricsComparisonCharts` turns that into one
accuracy chart and one loss chart, each with three curves against the
trainer's sample count; `EnginesMetricsCharts` adds one section per engine;
`HParams` sends the configuration and the final metrics to the HParams
dashboard.

Run: python examples/three_engines.py [log_dir]     (default ./runs/three_engines)
Then: tensorboard --logdir runs/three_engines
"""

import sys

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import Accuracy, Loss, SupervisedEvaluator, SupervisedTrainer, TensorBoard
from statefire.frame import Params, state
from statefire.plugins import EnginesMetricsCharts, EnginesMetricsComparisonCharts, HParams

log_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/three_engines"
hp = Params(name="hp", lr=1e-3, batch_size=32, hidden=64, n_epochs=8, seed=0)
torch.manual_seed(hp.seed)
torch.set_num_threads(1)  # a model this small trains fastest on one thread

# Data: 1797 digits, 64 pixels each, shuffled and split 80/20; the
# cross-validation set is 200 of the training samples.
pixels, labels = load_digits(return_X_y=True)
x_train, x_val, y_train, y_val = train_test_split(
    torch.tensor(pixels, dtype=torch.float32) / 16.0, torch.tensor(labels), test_size=0.2, random_state=hp.seed
)
subset = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(hp.seed))[:200]
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=hp.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(hp.seed))
cv_loader = DataLoader(TensorDataset(x_train[subset], y_train[subset]), batch_size=200)
val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=400)

model = torch.nn.Sequential(torch.nn.Linear(64, hp.hidden), torch.nn.ReLU(), torch.nn.Linear(hp.hidden, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr)
loss_fn = torch.nn.functional.cross_entropy

# The trainer outputs (y_pred, y) so that it gets accuracy and loss over each epoch too.
trainer = SupervisedTrainer(model, optimizer, loss_fn, train_loader, n_epochs=hp.n_epochs,
                            output_transform=lambda x, y, y_pred, loss: (y_pred.detach(), y))
Accuracy(engine=trainer)
Loss(loss_fn, engine=trainer)
for name, loader in [("cv_evaluator", cv_loader), ("val_evaluator", val_loader)]:
    SupervisedEvaluator(model, loader, name=name, run_on=state.trainer.n_epoch_completed_ref,
                        metrics=["accuracy", "loss"], loss_fn=loss_fn)

# The charts: two lines, whatever the number of engines and metrics.
EnginesMetricsComparisonCharts(x_axis_ref=state.trainer.n_samples_ref, n_identical_metric_name_suffixes=1)
EnginesMetricsCharts(x_axes_refs=state.trainer.n_samples_ref, n_identical_metric_name_suffixes=1)
HParams()
TensorBoard(log_dir)

state.trainer.run()
m = state.metrics
print(f"after {state.trainer.n_samples} samples: "
      + ", ".join(f"{metric.name} {metric.value:.3f}" for metric in m))
print(f"charts written to {log_dir}; see them with: tensorboard --logdir {log_dir}")
