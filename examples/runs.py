"""Runs that remember their code: two learning rates on the digits, each in a Run, then compared.

Each run gets a directory under runs/digits/ with run.json (config, final
metrics, git snapshot), series.jsonl, the TensorBoard events, its
checkpoints and flow.svg; runs/registry.sqlite indexes them. Afterwards:
    statefire runs list
    statefire runs compare latest <other id> --plot val_evaluator_accuracy -o compare.png
Run: python examples/runs.py
"""

from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from statefire.frame import Params, State
from statefire.features import Checkpoint, SupervisedEvaluator, SupervisedTrainer, TensorBoard
from statefire.plugins import EnginesMetricsComparisonCharts, Registry, Run

torch.set_num_threads(1)
digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target)
train, val = TensorDataset(x[:1400], y[:1400]), TensorDataset(x[1400:], y[1400:])


def experiment(lr: float) -> Run:
    """One run, in its own State: the features, the Run, the training."""
    with State() as state:
        torch.manual_seed(0)
        hp = Params(name="hp", lr=lr, hidden=64)
        model = torch.nn.Sequential(torch.nn.Linear(64, hp.hidden), torch.nn.ReLU(), torch.nn.Linear(hp.hidden, 10))
        loader = DataLoader(train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
        trainer = SupervisedTrainer(model, torch.optim.SGD(model.parameters(), lr=hp.lr),
                                    torch.nn.functional.cross_entropy, loader, n_epochs=3)
        SupervisedEvaluator(model, DataLoader(val, batch_size=256), name="val_evaluator",
                            run_on=trainer.n_epoch_completed_ref, metrics=["accuracy", "loss"],
                            loss_fn=torch.nn.functional.cross_entropy)
        # The code snapshot is of the git work tree you run this from (none outside one: a warning).
        run = Run(experiment="digits", name=f"lr={lr}", snapshot=Path.cwd())
        TensorBoard()  # no directory: run.dir / "tb"
        EnginesMetricsComparisonCharts(x_axis_ref=trainer.n_samples_ref)
        Checkpoint(trigger=trainer.n_epoch_completed_ref, n_saved=1)  # run.dir / "checkpoints"
        trainer.run()
        run.finish()
        print(f"{run.display_name}: val accuracy {state.metrics.val_evaluator_accuracy.value:.3f} -> {run.dir}")
        return run


runs = [experiment(lr) for lr in (0.3, 0.03)]
registry = Registry()
print(registry.compare([run.id for run in runs]))
best = max(registry.runs(experiment="digits"), key=lambda r: r.metrics["val_evaluator_accuracy"])
print(f"best: {best.name} ({best.id}), accuracy by samples seen:",
      [(step, round(value, 3)) for step, value, _ in best.series("val_evaluator_accuracy")])
