"""A small digits experiment as an experiment tree, for test_trees.py.

Imported by the tests, and run as a script (`python tree_experiment.py DIR`)
by the tests that need a separate process: one killed with SIGKILL mid-node,
one holding the tree's lock. Recipes read environment variables the tests
set to pause in a node (`TREE_PAUSE_IN=<recipe>`: after one epoch, write
`<DIR>.paused` and sleep) or to log each call (`TREE_CALLS=<file>`).
"""

from __future__ import annotations

import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.utils import prune as torch_prune
from torch.utils.data import DataLoader, TensorDataset

from statefire.features import Checkpoint, ScalarChart, SupervisedEvaluator, SupervisedTrainer, TensorBoard
from statefire.frame import State
from statefire.plugins import ExperimentTree

_DATA: list[torch.Tensor] = []


def digits() -> list[torch.Tensor]:
    """1000 training and 300 validation digits, loaded once per process."""
    if not _DATA and os.environ.get("TREE_DIGITS"):  # saved by the tests: no sklearn import per process
        _DATA.extend(torch.load(os.environ["TREE_DIGITS"], weights_only=True))
    if not _DATA:
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.tensor(data.data, dtype=torch.float32) / 16
        y = torch.tensor(data.target)
        _DATA.extend([x[:1000], y[:1000], x[1000:1300], y[1000:1300]])
    return _DATA


def build() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y, x_val, y_val = digits()
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.5)
    loader = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True, generator=torch.Generator().manual_seed(0))
    trainer = SupervisedTrainer(model, optimizer, F.cross_entropy, loader)
    evaluator = SupervisedEvaluator(model, DataLoader(TensorDataset(x_val, y_val), batch_size=300),
                                    name="val_evaluator", run_on=trainer.n_epoch_completed_ref,
                                    metrics=["accuracy", "loss"], loss_fn=F.cross_entropy)  # fmt: skip
    TensorBoard()
    ScalarChart(trainer.output_ref, trainer.n_samples_ref, tag="loss")
    ScalarChart(State.current().val_evaluator_accuracy.value_ref, trainer.n_samples_ref, tag="val_accuracy")
    Checkpoint(trigger=trainer.n_epoch_completed_ref, n_saved=1)
    assert evaluator is State.current().val_evaluator


def _log(state: State, name: str, **kwargs: object) -> None:
    calls = os.environ.get("TREE_CALLS")
    if calls:
        with open(calls, "a", encoding="utf-8") as file:
            file.write(json.dumps([os.getpid(), name, kwargs]) + "\n")


def _maybe_pause(state: State, name: str) -> None:
    if os.environ.get("TREE_PAUSE_IN") == name:
        state.trainer.run(n_epochs=1)  # some events on disk, then wait to be killed
        with open(os.environ["TREE_PAUSE_MARK"], "w", encoding="utf-8") as file:
            file.write(str(os.getpid()))
        time.sleep(float(os.environ.get("TREE_PAUSE_SECONDS", "60")))


def train(state: State, n_epochs: int) -> None:
    _log(state, "train", n_epochs=n_epochs)
    _maybe_pause(state, "train")
    state.trainer.run(n_epochs=n_epochs)


def prune(state: State, amount: float) -> None:
    _log(state, "prune", amount=amount)
    for layer in state.sequential.module:
        if isinstance(layer, torch.nn.Linear):
            torch_prune.l1_unstructured(layer, "weight", amount=amount)
            torch_prune.remove(layer, "weight")  # keeps the state loadable into build()'s model
    state.val_evaluator.run()


def finetune(state: State, n_epochs: int) -> None:
    _log(state, "finetune", n_epochs=n_epochs)
    state.sgd.lr = 0.05
    _maybe_pause(state, "finetune")
    state.trainer.run(n_epochs=n_epochs)


def make_tree(directory: str) -> ExperimentTree:
    """root -> train(2) -> prune {0.3, 0.6} -> finetune(2): six nodes."""
    tree = ExperimentTree(directory, build)
    trained = tree.root().then(train, n_epochs=2)
    for amount in (0.3, 0.6):
        trained.then(prune, amount=amount).then(finetune, n_epochs=2)
    return tree


if __name__ == "__main__":
    tree = make_tree(sys.argv[1])
    result = tree.run()
    print(json.dumps({"computed": [n.path for n in result.computed], "cached": [n.path for n in result.cached]}))
