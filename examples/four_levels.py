"""Animus' four-level loop (experiment -> epoch -> dataset -> batch), each level with its own metrics.

Animus writes the loop out:

    for epoch in experiment.epochs:
        for dataset in epoch.datasets:          # "train", "valid"
            for batch in dataset.batches:
                handle_batch(batch)

with `batch_metrics`, `dataset_metrics`, `epoch_metrics` and
`experiment_metrics`. In statefire each level is a pair of refs and each
metrics store a feature, so every store is in `print(state)`, in the state
dict and in a checkpoint:

- batch: one engine iteration; metrics with `mode="batch"`.
- dataset: one epoch of the engine that reads that dataset (the train
  engine, the valid engine that follows it); metrics with `mode="epoch"`.
- epoch: the train engine's epoch and the evaluations that follow it;
  `EpochMetrics` gathers every dataset's metrics once all have run.
- experiment: the train engine's run; `ExperimentMetrics` keeps the best
  epoch, final when the run completes.

Run: python examples/four_levels.py
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import Accuracy, Engine, Loss, Metric, SupervisedEvaluator, SupervisedTrainer
from statefire.frame import Counter, Feature, Ref, StateObject, state

torch.manual_seed(0)
torch.set_num_threads(1)  # a model this small trains faster on one thread

pixels, labels = load_digits(return_X_y=True)
x_train, x_val, y_train, y_val = train_test_split(
    torch.tensor(pixels, dtype=torch.float32) / 16.0, torch.tensor(labels), test_size=0.2, random_state=0
)
loaders = {
    "train": DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(0)),
    "valid": DataLoader(TensorDataset(x_val, y_val), batch_size=120),
}
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
loss_fn = torch.nn.functional.cross_entropy


class EpochMetrics(Feature):
    """Animus' `epoch_metrics`: `{dataset: {metric: value}}` of every dataset engine, once the epoch's datasets ran."""

    category = "stores"

    value = StateObject(None, doc="{dataset: {metric: value}} of the last epoch")
    n_epochs = Counter(doc="epochs recorded")

    def __init__(self, epoch_ref: Ref, datasets: list[Engine], *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.datasets = datasets
        # Default priority 0: after the evaluations that follow the same ref (RUN_ON_PRIORITY)
        # and after the train engine's own epoch metrics (METRIC_PRIORITY).
        epoch_ref.attach(self.collect)

    def collect(self) -> None:
        self.n_epochs += 1
        self.value = {engine.name: self.dataset_metrics(engine) for engine in self.datasets}

    @staticmethod
    def dataset_metrics(engine: Engine) -> dict[str, float]:
        """Animus' `dataset_metrics`: the engine's `mode="epoch"` metrics, by what they measure."""
        return {
            m.name.removeprefix(f"{engine.name}_"): float(m.value)
            for m in engine.state.metrics
            if isinstance(m, Metric) and m.engine is engine and m.mode == "epoch"
        }


class ExperimentMetrics(Feature):
    """Animus' `experiment_metrics`: the best epoch by one dataset's metric, final when the run completes."""

    category = "stores"

    best = StateObject(None, doc="the best value of the watched metric")
    best_epoch = Counter(doc="the epoch it was reached at")
    final = StateObject(None, doc="the epoch metrics when the run completed")

    def __init__(self, epochs: EpochMetrics, run_completed_ref: Ref, *, dataset: str, metric: str,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.epochs, self.dataset, self.metric = epochs, dataset, metric
        epochs.value_ref.attach(self.update)
        run_completed_ref.attach(self.complete)

    def update(self, epoch_metrics: dict[str, dict[str, float]]) -> None:
        value = epoch_metrics[self.dataset][self.metric]
        if self.best is None or value > self.best:
            self.best, self.best_epoch = value, self.epochs.n_epochs

    def complete(self) -> None:
        self.final = self.epochs.value


# dataset "train": the train engine; its output is (y_pred, y) so it has metrics of its own
train = SupervisedTrainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), loss_fn, loaders["train"],
                          name="train", n_epochs=4,
                          output_transform=lambda x, y, y_pred, loss: (y_pred.detach(), y))
# dataset "valid": an evaluator after each train epoch
valid = SupervisedEvaluator(model, loaders["valid"], name="valid", run_on=train.n_epoch_completed_ref,
                            metrics=["accuracy", "loss"], loss_fn=loss_fn)

# batch metrics: reset and set at every iteration
Loss(loss_fn, engine=train, mode="batch", name="train_batch_loss")
# dataset metrics: over one engine's epoch (the valid engine's come from metrics=[...] above)
Accuracy(engine=train)
Loss(loss_fn, engine=train)
# epoch and experiment metrics
epoch_metrics = EpochMetrics(train.n_epoch_completed_ref, [train, valid])
experiment_metrics = ExperimentMetrics(epoch_metrics, train.n_run_completed_ref, dataset="valid", metric="accuracy")

# Animus' on_{level}_start / on_{level}_end: the counters of each level
batch_losses: list[float] = []
state.metrics.train_batch_loss.value_ref.attach(batch_losses.append)       # on_batch_end
train.n_run_started_ref.attach(lambda: print("experiment start"))           # on_experiment_start
valid.n_epoch_completed_ref.attach(                                          # on_dataset_end
    lambda: print(f"  dataset valid done, {valid.n_samples} samples so far"))


@epoch_metrics.value_ref.attach                                              # on_epoch_end
def report(metrics: dict[str, dict[str, float]]) -> None:
    print(f"epoch {epoch_metrics.n_epochs}: " + "  ".join(
        f"{dataset} " + " ".join(f"{k}={v:.3f}" for k, v in sorted(values.items()))
        for dataset, values in metrics.items()))


train.run()
print(f"experiment end: best valid accuracy {experiment_metrics.best:.3f} at epoch {experiment_metrics.best_epoch}; "
      f"{len(batch_losses)} batch losses, last {batch_losses[-1]:.3f}")
print(experiment_metrics)

# The four stores, as a user relies on them
assert len(batch_losses) == train.n_iteration_completed == 4 * len(loaders["train"])
assert epoch_metrics.n_epochs == 4 and set(epoch_metrics.value) == {"train", "valid"}
assert set(epoch_metrics.value["valid"]) == {"accuracy", "loss"}
assert experiment_metrics.final == epoch_metrics.value and experiment_metrics.best > 0.9
assert state.state_dict()["stores"]["experiment_metrics"]["best_epoch"] == experiment_metrics.best_epoch
